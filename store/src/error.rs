//! Errors of the store, by who is at fault.

/// What can go wrong persisting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The disk or the database file (the environment's fault).
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// DuckDB refused an operation.
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    /// Parquet reading or writing failed.
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow refused a batch.
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Stored data does not read back (corruption, or a bug).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
