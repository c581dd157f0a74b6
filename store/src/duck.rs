//! The embedded default [`Store`]: one DuckDB file.

use std::path::Path;

use causeway_model::TenantId;
use duckdb::{Connection, OptionalExt, params};

use crate::error::{Error, Result};
use crate::queue::Position;
use crate::{CellRow, Family, ServiceRow, StateRow, Store};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cells (
    tenant     VARCHAR  NOT NULL,
    family     VARCHAR  NOT NULL,
    a          VARCHAR  NOT NULL,
    b          VARCHAR  NOT NULL,
    c          TINYINT  NOT NULL,
    d          TINYINT  NOT NULL,
    resolution UTINYINT NOT NULL,
    start_ns   BIGINT   NOT NULL,
    calls      UBIGINT  NOT NULL,
    errors     UBIGINT  NOT NULL,
    hist       BLOB     NOT NULL,
    handed_on  BOOLEAN  NOT NULL,
    PRIMARY KEY (tenant, family, a, b, c, d, resolution, start_ns)
);
CREATE TABLE IF NOT EXISTS services (
    tenant   VARCHAR NOT NULL,
    name     VARCHAR NOT NULL,
    spans    UBIGINT NOT NULL,
    errors   UBIGINT NOT NULL,
    first_ns UBIGINT NOT NULL,
    last_ns  UBIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
-- What a tenant's detection learned and found (baselines, signatures,
-- anomalies, incidents), one document per tenant and part.
CREATE TABLE IF NOT EXISTS detection_state (
    tenant   VARCHAR NOT NULL,
    part     VARCHAR NOT NULL,
    state    BLOB    NOT NULL,
    saved_ns BIGINT  NOT NULL,
    PRIMARY KEY (tenant, part)
);
-- Named positions: `wal`, the write-ahead log position whose requests the
-- cells and catalog above hold (written with them, in one transaction).
CREATE TABLE IF NOT EXISTS marks (
    name  VARCHAR PRIMARY KEY,
    value BLOB    NOT NULL
);
-- Checkpoints append here (DuckDB's appender is fast; row-at-a-time upserts
-- are not), then upsert into `cells` in one statement.
CREATE TABLE IF NOT EXISTS cells_stage AS SELECT * FROM cells LIMIT 0;
";

/// DuckDB-backed [`Store`].
pub struct DuckDbStore {
    conn: Connection,
    /// The file (`None` in memory): rewritten after a tenant's deletion.
    path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for DuckDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbStore").finish_non_exhaustive()
    }
}

impl DuckDbStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(Some(path), SCHEMA)?,
            path: Some(path.to_path_buf()),
        })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(None, SCHEMA)?,
            path: None,
        })
    }
}

/// Upserts `rows` into `cells` within `tx`.
fn write_cells(tx: &duckdb::Transaction<'_>, rows: &[CellRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    tx.execute("DELETE FROM cells_stage", [])?;
    {
        let mut appender = tx.appender("cells_stage")?;
        for r in rows {
            appender.append_row(params![
                r.tenant.as_str(),
                r.family.as_str(),
                r.a,
                r.b,
                r.c,
                r.d,
                r.resolution,
                r.start_ns,
                r.calls,
                r.errors,
                r.hist,
                r.handed_on,
            ])?;
        }
        appender.flush()?;
    }
    tx.execute("INSERT OR REPLACE INTO cells SELECT * FROM cells_stage", [])?;
    tx.execute("DELETE FROM cells_stage", [])?;
    Ok(())
}

/// Upserts `rows` into `services` within `tx`.
fn write_services(tx: &duckdb::Transaction<'_>, rows: &[ServiceRow]) -> Result<()> {
    let mut stmt = tx.prepare("INSERT OR REPLACE INTO services VALUES (?, ?, ?, ?, ?, ?)")?;
    for r in rows {
        stmt.execute(params![
            r.tenant.as_str(),
            r.name,
            r.spans,
            r.errors,
            r.first_ns,
            r.last_ns
        ])?;
    }
    Ok(())
}

impl Store for DuckDbStore {
    fn save_cells(&mut self, rows: &[CellRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        write_cells(&tx, rows)?;
        tx.commit()?;
        Ok(())
    }

    fn save_checkpoint(
        &mut self,
        cells: &[CellRow],
        services: &[ServiceRow],
        wal: Option<Position>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        write_cells(&tx, cells)?;
        write_services(&tx, services)?;
        if let Some(mark) = wal {
            tx.execute(
                "INSERT OR REPLACE INTO marks VALUES ('wal', ?)",
                params![mark.to_bytes().to_vec()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn wal_mark(&self) -> Result<Option<Position>> {
        let raw: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM marks WHERE name = 'wal'", [], |r| {
                r.get(0)
            })
            .optional()?;
        raw.as_deref().map(crate::mark_of).transpose()
    }

    fn load_cells(&self) -> Result<Vec<CellRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT tenant, family, a, b, c, d, resolution, start_ns, calls, errors, hist, handed_on FROM cells",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                CellRow {
                    tenant: TenantId::default_tenant(),
                    family: Family::Red,
                    a: row.get(2)?,
                    b: row.get(3)?,
                    c: row.get(4)?,
                    d: row.get(5)?,
                    resolution: row.get(6)?,
                    start_ns: row.get(7)?,
                    calls: row.get(8)?,
                    errors: row.get(9)?,
                    hist: row.get(10)?,
                    handed_on: row.get(11)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, family, mut cell) = row?;
            cell.tenant = TenantId::new(&tenant).map_err(|e| Error::Corrupt(e.to_string()))?;
            cell.family = Family::parse(&family)
                .ok_or_else(|| Error::Corrupt(format!("family {family:?}")))?;
            out.push(cell);
        }
        Ok(out)
    }

    fn save_services(&mut self, rows: &[ServiceRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        write_services(&tx, rows)?;
        tx.commit()?;
        Ok(())
    }

    fn load_services(&self) -> Result<Vec<ServiceRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, name, spans, errors, first_ns, last_ns FROM services")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                ServiceRow {
                    tenant: TenantId::default_tenant(),
                    name: row.get(1)?,
                    spans: row.get(2)?,
                    errors: row.get(3)?,
                    first_ns: row.get(4)?,
                    last_ns: row.get(5)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, mut s) = row?;
            s.tenant = TenantId::new(&tenant).map_err(|e| Error::Corrupt(e.to_string()))?;
            out.push(s);
        }
        Ok(out)
    }

    fn prune_cells(&mut self, horizons: &[(TenantId, [i64; 3])]) -> Result<u64> {
        if horizons.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for (tenant, before_ns) in horizons {
            n += tx.execute(
                "DELETE FROM cells WHERE tenant = ? AND ((resolution = 0 AND start_ns < ?) OR (resolution = 1 AND start_ns < ?) OR (resolution = 2 AND start_ns < ?))",
                params![tenant.as_str(), before_ns[0], before_ns[1], before_ns[2]],
            )?;
        }
        tx.commit()?;
        Ok(n as u64)
    }

    fn save_state(&mut self, rows: &[StateRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for r in rows {
            tx.execute(
                "INSERT OR REPLACE INTO detection_state VALUES (?, ?, ?, ?)",
                params![r.tenant.as_str(), r.part, r.state, r.saved_ns],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn load_state(&self) -> Result<Vec<StateRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT tenant, part, state, saved_ns FROM detection_state ORDER BY tenant, part",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, part, state, saved_ns) = row?;
            out.push(StateRow {
                tenant: TenantId::new(&tenant).map_err(|e| Error::Corrupt(e.to_string()))?,
                part,
                state,
                saved_ns,
            });
        }
        Ok(out)
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM detection_state WHERE tenant = ?",
            params![tenant.as_str()],
        )?;
        tx.execute(
            "DELETE FROM cells WHERE tenant = ?",
            params![tenant.as_str()],
        )?;
        tx.execute(
            "DELETE FROM services WHERE tenant = ?",
            params![tenant.as_str()],
        )?;
        tx.commit()?;
        if let Some(path) = &self.path {
            crate::open::rewrite(&mut self.conn, path, SCHEMA)?;
        }
        Ok(())
    }
}
