//! Wiring the stages together and running them until a signal.

mod wiring;

pub(crate) use wiring::run;
