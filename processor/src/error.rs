//! Errors of the processor.

/// What can go wrong asking the processor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stage has stopped (shutdown): no answer will come.
    #[error("the processor is shutting down")]
    Stopped,
    /// A payload is not well-formed OTLP (the receiver validates payloads,
    /// so from the ingest path this is a bug; from replayed files, bad data).
    #[error("invalid OTLP payload: {0}")]
    Decode(#[from] causeway_model::wire::WireError),
    /// A batch lacks a column of the span schema (a bug).
    #[error("internal error: {0}")]
    Schema(String),
    /// Arrow refused a batch we built (a bug).
    #[error("internal error building Arrow data: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
