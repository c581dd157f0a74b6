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

/// Rewrites the database at `path` into a fresh file and reopens `conn` on
/// it. DuckDB marks deleted rows and reuses their blocks later, so after a
/// tenant's rows are deleted its values can still be read from the file;
/// a copy holds only live rows (`COPY FROM DATABASE`). The copy is made
/// beside the file and renamed over it, so a crash leaves either file
/// whole.
pub(crate) fn rewrite(conn: &mut Connection, path: &Path, schema: &str) -> Result<()> {
    let tmp = path.with_extension("rewrite.duckdb");
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(tmp.with_extension("duckdb.wal"));
    let name: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    let quoted = tmp.display().to_string().replace('\'', "''");
    conn.execute_batch(&format!(
        "ATTACH '{quoted}' AS causeway_rewrite;
         COPY FROM DATABASE \"{}\" TO causeway_rewrite;
         DETACH causeway_rewrite;",
        name.replace('"', "\"\"")
    ))?;
    // Close the old file (a checkpoint folds its WAL in) before replacing it.
    drop(std::mem::replace(conn, Connection::open_in_memory()?));
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    let _ = std::fs::remove_file(path.with_extension("duckdb.wal"));
    *conn = connect(Some(path), schema)?;
    Ok(())
}
