//! Opening a DuckDB file (or memory) with a schema: what every store here
//! does first.

use std::path::Path;

use duckdb::Connection;

use crate::error::{Error, Result};

/// Opens (creating the directory and file if needed) the database at
/// `path`, or an in-memory one for `None`, and applies `schema`.
pub(crate) fn connect(path: Option<&Path>, schema: &str) -> Result<Connection> {
    let conn = match path {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            Connection::open(path)?
        }
        None => Connection::open_in_memory()?,
    };
    conn.execute_batch(schema)?;
    Ok(conn)
}
