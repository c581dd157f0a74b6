//! Correlator errors, by who is at fault.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The span store could not be read (our side: disk, corrupt file).
    #[error("reading spans: {0}")]
    Store(#[from] causeway_store::Error),
    /// Stored spans are not in the expected shape (a bug or a foreign file).
    #[error("span data: {0}")]
    Data(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
