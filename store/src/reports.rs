//! RCA reports, one per incident and tenant, updated as the incident
//! evolves, with the feedback users give on them.
//!
//! Its own DuckDB file: the correlator writes from its own task and must
//! not wait on the processor's checkpoints. Reports are stored as JSON
//! (their shape is the API's) with the columns queries filter on.

use std::path::Path;

use causeway_model::TenantId;
use causeway_model::rca::{Feedback, RcaReport};
use duckdb::{Connection, OptionalExt, params};

use crate::ReportStore;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rca_reports (
    tenant      VARCHAR NOT NULL,
    id          UBIGINT NOT NULL,
    incident    UBIGINT NOT NULL,
    onset_ns    BIGINT  NOT NULL,
    computed_ns BIGINT  NOT NULL,
    report      VARCHAR NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS rca_feedback (
    tenant   VARCHAR NOT NULL,
    id       UBIGINT NOT NULL,
    feedback VARCHAR NOT NULL,
    at_ns    BIGINT  NOT NULL
);
";

/// The report store.
#[derive(Debug)]
pub struct DuckDbReports {
    conn: Connection,
    /// The file (`None` in memory): rewritten after a tenant's deletion.
    path: Option<std::path::PathBuf>,
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

impl DuckDbReports {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(Some(path), SCHEMA)?,
            path: Some(path.to_path_buf()),
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(None, SCHEMA)?,
            path: None,
        })
    }
}

impl DuckDbReports {
    fn feedback(&self, tenant: &TenantId, id: u64) -> Result<Vec<Feedback>> {
        let mut stmt = self.conn.prepare(
            "SELECT feedback FROM rca_feedback WHERE tenant = ? AND id = ? ORDER BY at_ns",
        )?;
        let rows = stmt.query_map(params![tenant.as_str(), id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?).map_err(corrupt)?);
        }
        Ok(out)
    }

    fn decode(&self, tenant: &TenantId, json: &str) -> Result<RcaReport> {
        let mut r: RcaReport = serde_json::from_str(json).map_err(corrupt)?;
        r.feedback = self.feedback(tenant, r.id)?;
        Ok(r)
    }
}

impl ReportStore for DuckDbReports {
    fn put(&mut self, tenant: &TenantId, report: &RcaReport) -> Result<()> {
        let json = serde_json::to_string(report).map_err(corrupt)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM rca_reports WHERE tenant = ? AND id = ?",
            params![tenant.as_str(), report.id],
        )?;
        tx.execute(
            "INSERT INTO rca_reports VALUES (?, ?, ?, ?, ?, ?)",
            params![
                tenant.as_str(),
                report.id,
                report.incident,
                report.window_start_ns,
                report.computed_ns,
                json
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// One report of `tenant`.
    fn get(&self, tenant: &TenantId, id: u64) -> Result<Option<RcaReport>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT report FROM rca_reports WHERE tenant = ? AND id = ?",
                params![tenant.as_str(), id],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| self.decode(tenant, &j)).transpose()
    }

    /// Reports of `tenant` whose incident began in `[from_ns, to_ns)`,
    /// newest first, at most `limit` (0: no limit).
    fn list(
        &self,
        tenant: &TenantId,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<RcaReport>> {
        let limit = if limit == 0 {
            i64::MAX
        } else {
            i64::try_from(limit).unwrap_or(i64::MAX)
        };
        let mut stmt = self.conn.prepare(
            "SELECT report FROM rca_reports WHERE tenant = ? AND onset_ns >= ? AND onset_ns < ?
             ORDER BY onset_ns DESC, id DESC LIMIT ?",
        )?;
        let rows = stmt.query_map(params![tenant.as_str(), from_ns, to_ns, limit], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.decode(tenant, &r?)?);
        }
        Ok(out)
    }

    /// Records feedback on report `id`; `false` when there is no such
    /// report of `tenant`.
    fn add_feedback(&mut self, tenant: &TenantId, id: u64, feedback: &Feedback) -> Result<bool> {
        let exists: Option<u64> = self
            .conn
            .query_row(
                "SELECT id FROM rca_reports WHERE tenant = ? AND id = ?",
                params![tenant.as_str(), id],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(false);
        }
        let json = serde_json::to_string(feedback).map_err(corrupt)?;
        self.conn.execute(
            "INSERT INTO rca_feedback VALUES (?, ?, ?, ?)",
            params![tenant.as_str(), id, json, feedback.at_ns],
        )?;
        Ok(true)
    }

    /// Every feedback of `tenant` (for ranking).
    fn all_feedback(&self, tenant: &TenantId) -> Result<Vec<(u64, Feedback)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, feedback FROM rca_feedback WHERE tenant = ? ORDER BY at_ns")?;
        let rows = stmt.query_map(params![tenant.as_str()], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, j) = r?;
            out.push((id, serde_json::from_str(&j).map_err(corrupt)?));
        }
        Ok(out)
    }

    /// Deletes reports last computed before `before_ns` (retention) and
    /// their feedback; returns how many reports.
    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM rca_reports WHERE computed_ns < ?",
            params![before_ns],
        )?;
        tx.execute(
            "DELETE FROM rca_feedback WHERE NOT EXISTS
               (SELECT 1 FROM rca_reports r WHERE r.tenant = rca_feedback.tenant
                  AND r.id = rca_feedback.id)",
            [],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes every report and feedback of `tenant`.
    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM rca_reports WHERE tenant = ?",
            params![tenant.as_str()],
        )?;
        tx.execute(
            "DELETE FROM rca_feedback WHERE tenant = ?",
            params![tenant.as_str()],
        )?;
        tx.commit()?;
        if let Some(path) = &self.path {
            crate::open::rewrite(&mut self.conn, path, SCHEMA)?;
        }
        Ok(())
    }
}
