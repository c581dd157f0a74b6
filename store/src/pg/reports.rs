//! RCA reports and their feedback in PostgreSQL: the same contract as
//! [`crate::DuckDbReports`], readable from every instance.

use std::sync::Arc;

use causeway_model::TenantId;
use causeway_model::rca::{Feedback, RcaReport};
use sqlx::{PgPool, Row};

use super::{PgClient, to_i64, to_u64};
use crate::ReportStore;
use crate::error::{Error, Result};

/// PostgreSQL-backed [`ReportStore`].
#[derive(Debug)]
pub struct PgReports {
    client: Arc<PgClient>,
}

impl PgReports {
    /// Over an open client (its migrations create the tables).
    pub fn new(client: Arc<PgClient>) -> Self {
        Self { client }
    }
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

/// The stored JSON with its feedback attached.
async fn decode(pool: &PgPool, tenant: &TenantId, json: &str) -> Result<RcaReport> {
    let mut r: RcaReport = serde_json::from_str(json).map_err(corrupt)?;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT feedback FROM rca_feedback WHERE tenant = $1 AND id = $2 ORDER BY at_ns",
    )
    .bind(tenant.as_str())
    .bind(to_i64(r.id))
    .fetch_all(pool)
    .await?;
    r.feedback = rows
        .iter()
        .map(|j| serde_json::from_str(j).map_err(corrupt))
        .collect::<Result<_>>()?;
    Ok(r)
}

impl ReportStore for PgReports {
    fn put(&mut self, tenant: &TenantId, report: &RcaReport) -> Result<()> {
        let json = serde_json::to_string(report).map_err(corrupt)?;
        let (tenant, id, incident, onset, computed) = (
            tenant.clone(),
            to_i64(report.id),
            to_i64(report.incident),
            report.window_start_ns,
            report.computed_ns,
        );
        self.client.run(move |pool, _| async move {
            sqlx::query(
                "INSERT INTO rca_reports (tenant, id, incident, onset_ns, computed_ns, report)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, id) DO UPDATE SET incident = EXCLUDED.incident,
                     onset_ns = EXCLUDED.onset_ns, computed_ns = EXCLUDED.computed_ns,
                     report = EXCLUDED.report",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(incident)
            .bind(onset)
            .bind(computed)
            .bind(json)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn get(&self, tenant: &TenantId, id: u64) -> Result<Option<RcaReport>> {
        let tenant = tenant.clone();
        self.client.run(move |pool, _| async move {
            let json: Option<String> =
                sqlx::query_scalar("SELECT report FROM rca_reports WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(to_i64(id))
                    .fetch_optional(&pool)
                    .await?;
            match json {
                Some(j) => Ok(Some(decode(&pool, &tenant, &j).await?)),
                None => Ok(None),
            }
        })
    }

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
        let tenant = tenant.clone();
        self.client.run(move |pool, _| async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT report FROM rca_reports WHERE tenant = $1 AND onset_ns >= $2 AND onset_ns < $3
                 ORDER BY onset_ns DESC, id DESC LIMIT $4",
            )
            .bind(tenant.as_str())
            .bind(from_ns)
            .bind(to_ns)
            .bind(limit)
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for j in &rows {
                out.push(decode(&pool, &tenant, j).await?);
            }
            Ok(out)
        })
    }

    fn add_feedback(&mut self, tenant: &TenantId, id: u64, feedback: &Feedback) -> Result<bool> {
        let json = serde_json::to_string(feedback).map_err(corrupt)?;
        let (tenant, at_ns) = (tenant.clone(), feedback.at_ns);
        self.client.run(move |pool, _| async move {
            // Only on an existing report, in one statement.
            let n = sqlx::query(
                "INSERT INTO rca_feedback (tenant, id, feedback, at_ns)
                 SELECT $1, $2, $3, $4 WHERE EXISTS
                   (SELECT 1 FROM rca_reports WHERE tenant = $1 AND id = $2)",
            )
            .bind(tenant.as_str())
            .bind(to_i64(id))
            .bind(json)
            .bind(at_ns)
            .execute(&pool)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    fn all_feedback(&self, tenant: &TenantId) -> Result<Vec<(u64, Feedback)>> {
        let tenant = tenant.clone();
        self.client.run(move |pool, _| async move {
            let rows = sqlx::query(
                "SELECT id, feedback FROM rca_feedback WHERE tenant = $1 ORDER BY at_ns",
            )
            .bind(tenant.as_str())
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let json: String = row.try_get(1)?;
                out.push((
                    to_u64(row.try_get(0)?),
                    serde_json::from_str(&json).map_err(corrupt)?,
                ));
            }
            Ok(out)
        })
    }

    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        self.client.run(move |pool, _| async move {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM rca_reports WHERE computed_ns < $1")
                .bind(before_ns)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "DELETE FROM rca_feedback f WHERE NOT EXISTS
                   (SELECT 1 FROM rca_reports r WHERE r.tenant = f.tenant AND r.id = f.id)",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        super::delete_tenant_rows(&self.client, tenant, &["rca_reports", "rca_feedback"])
    }
}
