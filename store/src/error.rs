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
    /// PostgreSQL refused an operation or could not be reached.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The database's schema could not be brought up to date.
    #[error("PostgreSQL migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A setting is unusable (the operator's fault).
    #[error("{0}")]
    Config(String),
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
