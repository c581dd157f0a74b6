//! Connector signals, sync cursors and sealed credentials in PostgreSQL:
//! the same contract as [`crate::DuckDbSignals`], so that `connectors sync`
//! and a serving instance can share them (DuckDB's file lock forbids it).

use std::sync::Arc;

use causeway_model::redact::redact;
use causeway_model::time::now_ns;
use causeway_model::{Signal, SignalKind, TenantId};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{PgClient, tenant_of};
use crate::error::{Error, Result};
use crate::{CursorUpdate, SealedRow, SignalQuery, SignalStore};

/// PostgreSQL-backed [`SignalStore`].
#[derive(Debug)]
pub struct PgSignals {
    client: Arc<PgClient>,
}

impl PgSignals {
    /// Over an open client (its migrations create the tables).
    pub fn new(client: Arc<PgClient>) -> Self {
        Self { client }
    }
}

fn json(v: &[String]) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

fn list(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

impl SignalStore for PgSignals {
    fn commit_page(
        &mut self,
        tenant: &TenantId,
        signals: &[Signal],
        cursor: Option<CursorUpdate<'_>>,
    ) -> Result<usize> {
        if let Some(s) = signals.iter().find(|s| s.tenant != *tenant) {
            return Err(Error::Corrupt(format!(
                "a signal of tenant {} in a page of tenant {tenant}",
                s.tenant
            )));
        }
        // Stored redacted: e-mail addresses and tokens in a ticket's text
        // never reach the API, notifications or an LLM prompt.
        let mut rows = Vec::with_capacity(signals.len());
        for s in signals {
            rows.push((s.clone(), json(&s.changed_paths)?, json(&s.services)?));
        }
        let cursor = cursor.map(|(c, st, v)| (c.to_owned(), st.to_owned(), v.to_owned()));
        let tenant = tenant.clone();
        self.client.run(move |pool, _| async move {
            let mut tx = pool.begin().await?;
            let mut new = 0;
            for (s, paths, services) in &rows {
                let inserted: bool = sqlx::query_scalar(
                    "INSERT INTO signals VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                     ON CONFLICT (tenant, source, external_id) DO UPDATE SET
                         kind = EXCLUDED.kind, url = EXCLUDED.url, title = EXCLUDED.title,
                         body = EXCLUDED.body, author = EXCLUDED.author,
                         created_ns = EXCLUDED.created_ns, updated_ns = EXCLUDED.updated_ns,
                         repository = EXCLUDED.repository, changed_paths = EXCLUDED.changed_paths,
                         services = EXCLUDED.services, status = EXCLUDED.status,
                         version = EXCLUDED.version, commit_sha = EXCLUDED.commit_sha
                     RETURNING (xmax = 0)",
                )
                .bind(tenant.as_str())
                .bind(&s.source)
                .bind(&s.external_id)
                .bind(s.kind.as_str())
                .bind(s.url.as_deref().map(|u| redact(u).into_owned()))
                .bind(redact(&s.title).into_owned())
                .bind(redact(&s.body).into_owned())
                .bind(s.author.as_deref().map(|a| redact(a).into_owned()))
                .bind(s.created_ns)
                .bind(s.updated_ns)
                .bind(&s.repository)
                .bind(paths)
                .bind(services)
                .bind(&s.status)
                .bind(&s.version)
                .bind(&s.commit)
                .fetch_one(&mut *tx)
                .await?;
                new += usize::from(inserted);
                sqlx::query(
                    "DELETE FROM signal_services WHERE tenant = $1 AND source = $2 AND external_id = $3",
                )
                .bind(tenant.as_str())
                .bind(&s.source)
                .bind(&s.external_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO signal_services SELECT $1, $2, $3, x FROM UNNEST($4::text[]) AS x
                     ON CONFLICT DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(&s.source)
                .bind(&s.external_id)
                .bind(&s.services)
                .execute(&mut *tx)
                .await?;
            }
            if let Some((connector, stream, value)) = &cursor {
                sqlx::query(
                    "INSERT INTO sync_cursors VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (tenant, connector, stream) DO UPDATE SET
                         cursor = EXCLUDED.cursor, updated_ns = EXCLUDED.updated_ns",
                )
                .bind(tenant.as_str())
                .bind(connector)
                .bind(stream)
                .bind(value)
                .bind(now_ns())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(new)
        })
    }

    fn cursor(&self, tenant: &TenantId, connector: &str, stream: &str) -> Result<Option<String>> {
        let (tenant, connector, stream) = (tenant.clone(), connector.to_owned(), stream.to_owned());
        self.client.run(move |pool, _| async move {
            Ok(sqlx::query_scalar(
                "SELECT cursor FROM sync_cursors WHERE tenant = $1 AND connector = $2 AND stream = $3",
            )
            .bind(tenant.as_str())
            .bind(connector)
            .bind(stream)
            .fetch_optional(&pool)
            .await?)
        })
    }

    fn signals(&self, tenant: &TenantId, q: &SignalQuery) -> Result<Vec<Signal>> {
        let (tenant, q) = (tenant.clone(), q.clone());
        self.client.run(move |pool, _| async move {
            let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(
                "SELECT s.source, s.external_id, s.kind, s.url, s.title, s.body, s.author, \
                 s.created_ns, s.updated_ns, s.repository, s.changed_paths, s.services, \
                 s.status, s.version, s.commit_sha FROM signals s WHERE s.tenant = ",
            );
            sql.push_bind(tenant.as_str().to_owned());
            if let Some(k) = q.kind {
                sql.push(" AND s.kind = ").push_bind(k.as_str());
            }
            if let Some(service) = &q.service {
                sql.push(
                    " AND EXISTS (SELECT 1 FROM signal_services x WHERE x.tenant = s.tenant \
                     AND x.source = s.source AND x.external_id = s.external_id AND x.service = ",
                )
                .push_bind(service.clone())
                .push(")");
            }
            if let Some(from) = q.from_ns {
                sql.push(" AND s.created_ns >= ").push_bind(from);
            }
            if let Some(to) = q.to_ns {
                sql.push(" AND s.created_ns < ").push_bind(to);
            }
            sql.push(" ORDER BY s.created_ns DESC, s.source, s.external_id");
            if q.limit > 0 {
                sql.push(" LIMIT ")
                    .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
            }
            let rows = sql.build().fetch_all(&pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let kind: String = r.try_get(2)?;
                let paths: String = r.try_get(10)?;
                let services: String = r.try_get(11)?;
                out.push(Signal {
                    tenant: tenant.clone(),
                    kind: SignalKind::parse(&kind)
                        .ok_or_else(|| Error::Corrupt(format!("unknown signal kind {kind}")))?,
                    source: r.try_get(0)?,
                    external_id: r.try_get(1)?,
                    url: r.try_get(3)?,
                    title: r.try_get(4)?,
                    body: r.try_get(5)?,
                    author: r.try_get(6)?,
                    created_ns: r.try_get(7)?,
                    updated_ns: r.try_get(8)?,
                    repository: r.try_get(9)?,
                    changed_paths: list(&paths)?,
                    services: list(&services)?,
                    status: r.try_get(12)?,
                    version: r.try_get(13)?,
                    commit: r.try_get(14)?,
                });
            }
            Ok(out)
        })
    }

    fn put_sealed(&mut self, row: &SealedRow) -> Result<()> {
        self.replace_all_sealed(std::slice::from_ref(row))
    }

    fn sealed(&self, tenant: &TenantId, name: &str) -> Result<Option<SealedRow>> {
        let (tenant, name) = (tenant.clone(), name.to_owned());
        self.client.run(move |pool, _| async move {
            let row = sqlx::query(
                "SELECT key_id, sealed FROM sealed_secrets WHERE tenant = $1 AND name = $2",
            )
            .bind(tenant.as_str())
            .bind(&name)
            .fetch_optional(&pool)
            .await?;
            match row {
                Some(r) => Ok(Some(SealedRow {
                    tenant,
                    name,
                    key_id: r.try_get(0)?,
                    sealed: r.try_get(1)?,
                })),
                None => Ok(None),
            }
        })
    }

    fn all_sealed(&self) -> Result<Vec<SealedRow>> {
        self.client.run(|pool, _| async move {
            let rows = sqlx::query(
                "SELECT tenant, name, key_id, sealed FROM sealed_secrets ORDER BY tenant, name",
            )
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SealedRow {
                    tenant: tenant_of(r.try_get(0)?)?,
                    name: r.try_get(1)?,
                    key_id: r.try_get(2)?,
                    sealed: r.try_get(3)?,
                });
            }
            Ok(out)
        })
    }

    fn replace_all_sealed(&mut self, rows: &[SealedRow]) -> Result<()> {
        let rows = rows.to_vec();
        self.client.run(move |pool, _| async move {
            let mut tx = pool.begin().await?;
            for row in &rows {
                sqlx::query(
                    "INSERT INTO sealed_secrets VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, name) DO UPDATE SET
                         key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed",
                )
                .bind(row.tenant.as_str())
                .bind(&row.name)
                .bind(&row.key_id)
                .bind(&row.sealed)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        self.client.run(move |pool, _| async move {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM signals WHERE updated_ns < $1")
                .bind(before_ns)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "DELETE FROM signal_services x WHERE NOT EXISTS
                   (SELECT 1 FROM signals s WHERE s.tenant = x.tenant
                      AND s.source = x.source AND s.external_id = x.external_id)",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        super::delete_tenant_rows(
            &self.client,
            tenant,
            &[
                "signals",
                "signal_services",
                "sync_cursors",
                "sealed_secrets",
            ],
        )
    }
}
