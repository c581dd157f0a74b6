//! The API router and its shared state.

mod events;
mod incidents;
mod metrics;
mod rca;
mod red;
mod router;
mod services;
pub mod session;
mod signals;
mod sql;
#[cfg(test)]
mod tests;
mod traces;
mod ui;

pub use router::*;
