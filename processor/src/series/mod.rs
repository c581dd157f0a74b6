//! Windowed series: per key, per event-time window, a call count, an error
//! count and an HdrHistogram of durations; shared by RED and the graph.
//!
//! ```text
//! span (event time t) ─> window floor(t / w) ─> open cell (full histogram)
//!                                                  │ watermark passes end + lateness
//!                                                  ▼
//!                     sealed cell (serialized histogram) ─> emitted once, rolled up to 1 m, 1 h
//! ```
//!
//! A span for an already-sealed window (a collector retrying after an outage)
//! still merges into that window and its roll-ups; lateness only decides when
//! a window is first handed on. Histograms merge across windows and
//! instances because they share one layout (2 significant figures, i.e.
//! values within 1%, in microseconds).

mod cell;
mod set;
#[cfg(test)]
mod tests;

pub use cell::{Cell, CellStats};
pub use set::*;
