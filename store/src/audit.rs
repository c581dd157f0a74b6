//! The audit trail: append-only, per tenant, in its own DuckDB file.
//!
//! Nothing here updates or deletes a single entry. Entries leave only by
//! age (the audit retention) or with their tenant's purge. Events that no
//! tenant can be named for (an unknown API key, the configuration loaded)
//! are kept under the empty tenant, which no API caller can read: they are
//! the operator's, who sees them in the log.

use std::net::IpAddr;
use std::path::Path;

use causeway_model::{Actor, AuditEvent, AuditOutcome, TenantId};
use duckdb::{Connection, params};

use crate::AuditStore;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    tenant          VARCHAR NOT NULL,
    seq             UBIGINT NOT NULL,
    at_ns           BIGINT  NOT NULL,
    action          VARCHAR NOT NULL,
    outcome         VARCHAR NOT NULL,
    via             VARCHAR NOT NULL,
    client          VARCHAR,
    key_fingerprint VARCHAR,
    detail          VARCHAR NOT NULL
);
";

/// One stored entry: its position in the trail and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Order of appending (unique in the file).
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
}

/// The audit store.
#[derive(Debug)]
pub struct DuckDbAudit {
    conn: Connection,
    /// The file (`None` in memory): rewritten after a tenant's purge.
    path: Option<std::path::PathBuf>,
    next_seq: u64,
}

impl DuckDbAudit {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::with(
            crate::open::connect(Some(path), SCHEMA)?,
            Some(path.to_path_buf()),
        )
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self> {
        Self::with(crate::open::connect(None, SCHEMA)?, None)
    }

    fn with(conn: Connection, path: Option<std::path::PathBuf>) -> Result<Self> {
        let last: Option<u64> = conn.query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))?;
        Ok(Self {
            conn,
            path,
            next_seq: last.map_or(1, |s| s + 1),
        })
    }
}

impl AuditStore for DuckDbAudit {
    fn append(&mut self, events: &[AuditEvent]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")?;
            for (seq, e) in (self.next_seq..).zip(events) {
                stmt.execute(params![
                    e.tenant.as_ref().map_or("", TenantId::as_str),
                    seq,
                    e.at_ns,
                    e.action,
                    e.outcome.as_str(),
                    e.actor.via,
                    e.actor.client.map(|c| c.to_string()),
                    e.actor.key_fingerprint,
                    e.detail,
                ])?;
            }
        }
        tx.commit()?;
        self.next_seq += events.len() as u64;
        Ok(())
    }

    fn list(
        &self,
        tenant: Option<&TenantId>,
        before: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let (at, seq) = before.unwrap_or((i64::MAX, u64::MAX));
        let mut stmt = self.conn.prepare(
            "SELECT seq, at_ns, action, outcome, via, client, key_fingerprint, detail
               FROM audit
              WHERE tenant = ? AND (at_ns < ? OR (at_ns = ? AND seq < ?))
              ORDER BY at_ns DESC, seq DESC
              LIMIT ?",
        )?;
        let name = tenant.map_or("", TenantId::as_str);
        let rows = stmt.query_map(
            params![name, at, at, seq, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at_ns, action, outcome, via, client, key_fingerprint, detail) = row?;
            let outcome = AuditOutcome::parse(&outcome)
                .ok_or_else(|| Error::Corrupt(format!("audit outcome {outcome:?}")))?;
            out.push(AuditEntry {
                seq,
                event: AuditEvent {
                    at_ns,
                    tenant: tenant.cloned(),
                    action,
                    outcome,
                    actor: Actor {
                        client: client.and_then(|c| c.parse::<IpAddr>().ok()),
                        key_fingerprint,
                        via,
                    },
                    detail,
                },
            });
        }
        Ok(out)
    }

    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        let n = self
            .conn
            .execute("DELETE FROM audit WHERE at_ns < ?", params![before_ns])?;
        Ok(n as u64)
    }

    fn purge_tenant(&mut self, tenant: &TenantId, before_ns: i64) -> Result<u64> {
        let n = self.conn.execute(
            "DELETE FROM audit WHERE tenant = ? AND at_ns < ?",
            params![tenant.as_str(), before_ns],
        )?;
        if n > 0
            && let Some(path) = &self.path
        {
            crate::open::rewrite(&mut self.conn, path, SCHEMA)?;
        }
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: Option<&str>, at_ns: i64, action: &str) -> AuditEvent {
        AuditEvent {
            at_ns,
            tenant: tenant.map(|t| TenantId::new(t).expect("tenant")),
            action: action.into(),
            outcome: AuditOutcome::Success,
            actor: Actor {
                client: Some("10.0.0.1".parse().expect("ip")),
                key_fingerprint: Some("0123456789ab".into()),
                via: "api_key".into(),
            },
            detail: "rows=3".into(),
        }
    }

    #[test]
    fn sequence_continues_after_reopening() {
        let dir = std::env::temp_dir().join(format!("causeway-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("audit.duckdb");
        {
            let mut a = DuckDbAudit::open(&path).expect("open");
            a.append(&[event(Some("acme"), 1, "x"), event(Some("acme"), 1, "y")])
                .expect("append");
        }
        let mut a = DuckDbAudit::open(&path).expect("reopen");
        a.append(&[event(Some("acme"), 1, "z")]).expect("append");
        let acme = TenantId::new("acme").expect("tenant");
        let seqs: Vec<u64> = a
            .list(Some(&acme), None, 10)
            .expect("list")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [3, 2, 1]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
