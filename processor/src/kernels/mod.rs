//! Pure functions over OTLP bytes and Arrow batches: no I/O, no state.

pub mod otlp_to_arrow;
