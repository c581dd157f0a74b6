//! The whole configuration file: YAML shaped like the OpenTelemetry
//! Collector's, `${env:VAR}` substitution, unknown keys refused, and every
//! problem reported with its file, line and field.

mod env;
mod locate;
mod sections;
mod storage;
#[cfg(test)]
mod tests;

pub use sections::*;
pub use storage::*;
