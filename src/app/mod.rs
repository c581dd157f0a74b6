//! Wiring the stages together and running them until a signal.

mod replay;
mod wiring;

pub(crate) use replay::{Session, replay};
pub(crate) use wiring::run;
