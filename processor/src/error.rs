//! Errors of the processor.

/// What can go wrong asking the processor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stage has stopped (shutdown): no answer will come.
    #[error("the processor is shutting down")]
    Stopped,
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
