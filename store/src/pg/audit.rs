//! The audit trail in PostgreSQL: the same contract as
//! [`crate::DuckDbAudit`], shared by every instance (sequence numbers
//! come from the database).

use std::net::IpAddr;
use std::sync::Arc;

use causeway_model::{Actor, AuditEvent, AuditOutcome, TenantId};
use sqlx::Row;

use super::{PgClient, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::{AuditEntry, AuditStore};

/// PostgreSQL-backed [`AuditStore`].
#[derive(Debug)]
pub struct PgAudit {
    client: Arc<PgClient>,
}

impl PgAudit {
    /// Over an open client (its migrations create the table).
    pub fn new(client: Arc<PgClient>) -> Self {
        Self { client }
    }
}

impl AuditStore for PgAudit {
    fn append(&mut self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.client.run(|pool, _| async move {
            // One statement, in order: the identity column numbers them as
            // they come.
            sqlx::query(
                "INSERT INTO audit (tenant, at_ns, action, outcome, via, client, key_fingerprint, detail)
                 SELECT t, a, act, o, v, c, k, d FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
                     AS u(t, a, act, o, v, c, k, d, n)
                 ORDER BY n",
            )
            .bind(events.iter().map(|e| e.tenant.as_ref().map_or("", TenantId::as_str).to_owned()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.at_ns).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.action.clone()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.outcome.as_str().to_owned()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor.via.clone()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor.client.map(|c| c.to_string())).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor.key_fingerprint.clone()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.detail.clone()).collect::<Vec<_>>())
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn list(
        &self,
        tenant: Option<&TenantId>,
        before: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let (at, seq) = before.unwrap_or((i64::MAX, u64::MAX));
        let tenant = tenant.cloned();
        self.client.run(move |pool, _| async move {
            let rows = sqlx::query(
                "SELECT seq, at_ns, action, outcome, via, client, key_fingerprint, detail
                   FROM audit
                  WHERE tenant = $1 AND (at_ns < $2 OR (at_ns = $2 AND seq < $3))
                  ORDER BY at_ns DESC, seq DESC
                  LIMIT $4",
            )
            .bind(tenant.as_ref().map_or("", TenantId::as_str))
            .bind(at)
            .bind(to_i64(seq))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let outcome: String = row.try_get(3)?;
                let client: Option<String> = row.try_get(5)?;
                out.push(AuditEntry {
                    seq: to_u64(row.try_get(0)?),
                    event: AuditEvent {
                        at_ns: row.try_get(1)?,
                        tenant: tenant.clone(),
                        action: row.try_get(2)?,
                        outcome: AuditOutcome::parse(&outcome)
                            .ok_or_else(|| Error::Corrupt(format!("audit outcome {outcome:?}")))?,
                        actor: Actor {
                            client: client.and_then(|c| c.parse::<IpAddr>().ok()),
                            key_fingerprint: row.try_get(6)?,
                            via: row.try_get(4)?,
                        },
                        detail: row.try_get(7)?,
                    },
                });
            }
            Ok(out)
        })
    }

    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        self.client.run(move |pool, _| async move {
            Ok(sqlx::query("DELETE FROM audit WHERE at_ns < $1")
                .bind(before_ns)
                .execute(&pool)
                .await?
                .rows_affected())
        })
    }

    fn purge_tenant(&mut self, tenant: &TenantId, before_ns: i64) -> Result<u64> {
        let tenant = tenant.clone();
        self.client.run(move |pool, _| async move {
            Ok(
                sqlx::query("DELETE FROM audit WHERE tenant = $1 AND at_ns < $2")
                    .bind(tenant.as_str())
                    .bind(before_ns)
                    .execute(&pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}
