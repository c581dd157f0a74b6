//! The shared-deployment [`Store`]: PostgreSQL, for teams that outgrow one
//! machine (several causeway instances, one database).
//!
//! The processor calls the store from its own thread, synchronously; sqlx
//! is async. The store owns a small runtime of its own and each call hands
//! its query to it and waits: the processor's thread blocks on the
//! database as it does on DuckDB, and no runtime is entered from another.
//!
//! Cells, catalog rows and the log mark are per instance
//! (`cluster.instance_id`): each instance checkpoints its own and restores
//! its own, so two instances never overwrite each other's counts.
//! Detection state is per tenant.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use causeway_model::TenantId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::error::{Error, Result};
use crate::queue::Position;

mod audit;
mod reports;
mod signals;

use crate::{CellRow, Family, ServiceRow, StateRow, Store};
pub use audit::PgAudit;
pub use reports::PgReports;
pub use signals::PgSignals;

/// Rows per upsert statement: PostgreSQL takes at most 65,535 bind
/// parameters, and arrays (`UNNEST`) need one per column, so the bound is
/// statement size; 5,000 rows of ~100 bytes keep each under a megabyte.
const ROWS_PER_STATEMENT: usize = 5_000;

/// Connections per instance. The processor writes from one thread and the
/// checkpoint is one transaction; a second connection serves the reads
/// that happen meanwhile (start-up, retention).
const POOL_SIZE: u32 = 4;

/// How long a call waits for a connection before it fails (and the
/// checkpoint is retried): longer than a failover of a managed database's
/// primary, which takes 20 to 60 s.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL URL, parsed (what `causeway validate` checks).
pub type ConnectOptions = PgConnectOptions;

/// How long the first connection may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/database?sslmode=…`.
    pub url: String,
    /// This instance's name (cells and marks are per instance).
    pub instance: String,
    /// A schema to use instead of the user's default (`search_path`); it
    /// is created if missing. Tests use one each.
    pub schema: Option<String>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgSettings")
            .field("url", &redact_url(&self.url))
            .field("instance", &self.instance)
            .field("schema", &self.schema)
            .finish()
    }
}

/// A pool of connections and the runtime its queries run on, shared by
/// every PostgreSQL-backed store of a process.
pub struct PgClient {
    pool: PgPool,
    instance: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PgClient")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Dropped from inside a runtime (the processor's, the API's): a
        // blocking shutdown would panic there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgClient {
    /// Connects and applies pending migrations.
    pub fn connect(settings: &PgSettings) -> Result<Arc<Self>> {
        let rt = runtime("causeway-pg")?;
        let pool = match open_pool(&rt, settings) {
            Ok(pool) => pool,
            Err(e) => {
                // Dropping a runtime blocks, which panics inside another.
                rt.shutdown_background();
                return Err(e);
            }
        };
        Ok(Arc::new(Self {
            pool,
            instance: settings.instance.clone(),
            rt: Some(rt),
        }))
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs `f` on the client's runtime and waits for it.
    pub(crate) fn run<T, F>(&self, f: impl FnOnce(PgPool, String) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let Some(rt) = &self.rt else {
            return Err(Error::Corrupt("the PostgreSQL client was shut down".into()));
        };
        wait_on(rt, f(self.pool.clone(), self.instance.clone()))
    }
}

/// PostgreSQL-backed [`Store`].
#[derive(Debug)]
pub struct PgStore {
    client: Arc<PgClient>,
}

/// The migrations, embedded at build time (`store/migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection options from `settings`, with the schema as search path.
pub(crate) fn connect_options(settings: &PgSettings) -> Result<PgConnectOptions> {
    let mut options = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| Error::Config(format!("storage.postgres.url: {}", redact_url(&e))))?
        .application_name("causeway");
    if let Some(schema) = &settings.schema {
        options = options.options([("search_path", schema.as_str())]);
    }
    Ok(options)
}

/// A database error's text without anything that looks like a URL's
/// credentials (sqlx may echo the URL it could not parse).
fn redact_url(e: &dyn std::fmt::Display) -> String {
    causeway_model::redact::redact(&e.to_string()).into_owned()
}

/// Opens a pool on `rt`, creating the schema when one is named and
/// applying pending migrations (under PostgreSQL's advisory lock, so
/// instances starting together apply each once).
pub(crate) fn open_pool(rt: &tokio::runtime::Runtime, settings: &PgSettings) -> Result<PgPool> {
    let options = connect_options(settings)?;
    let schema = settings.schema.clone();
    wait_on(rt, async move {
        // One direct connection first: a wrong host, port, password or
        // database fails at once with its own error, not after the pool's
        // retries until its acquire timeout.
        let probe_options = options.clone().options([("search_path", "public")]);
        let mut probe = tokio::time::timeout(
            CONNECT_TIMEOUT,
            sqlx::PgConnection::connect_with(&probe_options),
        )
        .await
        .map_err(|_| {
            Error::Config(format!(
                "PostgreSQL did not answer within {CONNECT_TIMEOUT:?} (storage.postgres.url)"
            ))
        })??;
        if let Some(schema) = &schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::Config(format!(
                    "schema {schema:?}: only letters, digits and _"
                )));
            }
            // The schema must exist before the pool's connections use it
            // as their search path.
            // Checked above: letters, digits and _ only.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&mut probe)
            .await?;
        }
        probe.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(pool)
    })
}

/// Runs `fut` on `rt` and waits for it from this thread, whatever runtime
/// the caller is in: no runtime is entered from another (which panics),
/// the caller's thread just blocks, as it would on a DuckDB call.
pub(crate) fn wait_on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::Corrupt("a PostgreSQL task ended without an answer".into()))?
}

/// A runtime for one store's queries: one worker is enough (the caller
/// waits for each query).
pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| Error::io(std::path::Path::new("runtime"), e))
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub fn connect(settings: &PgSettings) -> Result<Self> {
        Ok(Self::new(PgClient::connect(settings)?))
    }

    /// Over an open client.
    pub fn new(client: Arc<PgClient>) -> Self {
        Self { client }
    }

    fn run<T, F>(&self, f: impl FnOnce(PgPool, String) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.client.run(f)
    }
}

/// Deletes every row of `tenant` from `tables`, in one transaction.
pub(crate) fn delete_tenant_rows(
    client: &PgClient,
    tenant: &TenantId,
    tables: &'static [&'static str],
) -> Result<()> {
    let tenant = tenant.clone();
    client.run(move |pool, _| async move {
        let mut tx = pool.begin().await?;
        for table in tables {
            // `table` is one of the caller's constants.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant = $1"
            )))
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn tenant_of(s: &str) -> Result<TenantId> {
    TenantId::new(s).map_err(|e| Error::Corrupt(e.to_string()))
}

/// Upserts `rows` of `instance` within `tx`, a few thousand per statement.
async fn write_cells(
    tx: &mut Transaction<'_, Postgres>,
    instance: &str,
    rows: &[CellRow],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // One statement may not touch a row twice: the last write of a
        // key wins, as it would row by row.
        let mut last: std::collections::HashMap<_, &CellRow> = std::collections::HashMap::new();
        for r in chunk {
            last.insert(
                (
                    r.tenant.as_str(),
                    r.family.as_str(),
                    r.a.as_str(),
                    r.b.as_str(),
                    r.c,
                    r.d,
                    r.resolution,
                    r.start_ns,
                ),
                r,
            );
        }
        let rows: Vec<&CellRow> = last.into_values().collect();
        sqlx::query(
            "INSERT INTO cells (tenant, instance, family, a, b, c, d, resolution, start_ns, calls, errors, hist, handed_on)
             SELECT t, $1, f, a, b, c, d, r, s, n, e, h, o FROM UNNEST(
                 $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::int2[], $8::int2[],
                 $9::int8[], $10::int8[], $11::int8[], $12::bytea[], $13::bool[])
                 AS u(t, f, a, b, c, d, r, s, n, e, h, o)
             ON CONFLICT (tenant, instance, family, a, b, c, d, resolution, start_ns) DO UPDATE SET
                 calls = EXCLUDED.calls, errors = EXCLUDED.errors, hist = EXCLUDED.hist,
                 handed_on = EXCLUDED.handed_on",
        )
        .bind(instance)
        .bind(rows.iter().map(|r| r.tenant.as_str().to_owned()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.family.as_str().to_owned()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.a.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.b.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| i16::from(r.c)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| i16::from(r.d)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| i16::from(r.resolution)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.start_ns).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.calls)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.errors)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hist.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.handed_on).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Upserts catalog rows of `instance` within `tx`.
async fn write_services(
    tx: &mut Transaction<'_, Postgres>,
    instance: &str,
    rows: &[ServiceRow],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut last: std::collections::HashMap<_, &ServiceRow> = std::collections::HashMap::new();
        for r in chunk {
            last.insert((r.tenant.as_str(), r.name.as_str()), r);
        }
        let rows: Vec<&ServiceRow> = last.into_values().collect();
        sqlx::query(
            "INSERT INTO services (tenant, instance, name, spans, errors, first_ns, last_ns)
             SELECT t, $1, n, s, e, f, l FROM UNNEST(
                 $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
                 AS u(t, n, s, e, f, l)
             ON CONFLICT (tenant, instance, name) DO UPDATE SET
                 spans = EXCLUDED.spans, errors = EXCLUDED.errors,
                 first_ns = EXCLUDED.first_ns, last_ns = EXCLUDED.last_ns",
        )
        .bind(instance)
        .bind(
            rows.iter()
                .map(|r| r.tenant.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.spans)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.errors)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.first_ns)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.last_ns)).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store for PgStore {
    fn save_cells(&mut self, rows: &[CellRow]) -> Result<()> {
        self.save_checkpoint(rows, &[], None)
    }

    fn save_checkpoint(
        &mut self,
        cells: &[CellRow],
        services: &[ServiceRow],
        wal: Option<Position>,
    ) -> Result<()> {
        if cells.is_empty() && services.is_empty() && wal.is_none() {
            return Ok(());
        }
        let (cells, services) = (cells.to_vec(), services.to_vec());
        self.run(move |pool, instance| async move {
            let mut tx = pool.begin().await?;
            write_cells(&mut tx, &instance, &cells).await?;
            write_services(&mut tx, &instance, &services).await?;
            if let Some(mark) = wal {
                sqlx::query(
                    "INSERT INTO marks (instance, name, value) VALUES ($1, 'wal', $2)
                     ON CONFLICT (instance, name) DO UPDATE SET value = EXCLUDED.value",
                )
                .bind(&instance)
                .bind(mark.to_bytes().to_vec())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn wal_mark(&self) -> Result<Option<Position>> {
        self.run(|pool, instance| async move {
            let raw: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT value FROM marks WHERE instance = $1 AND name = 'wal'")
                    .bind(&instance)
                    .fetch_optional(&pool)
                    .await?;
            raw.as_deref().map(crate::mark_of).transpose()
        })
    }

    fn load_cells(&self) -> Result<Vec<CellRow>> {
        self.run(|pool, instance| async move {
            let rows = sqlx::query(
                "SELECT tenant, family, a, b, c, d, resolution, start_ns, calls, errors, hist, handed_on
                 FROM cells WHERE instance = $1",
            )
            .bind(&instance)
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let family: String = row.try_get(1)?;
                let narrow = |v: i16| {
                    i8::try_from(v).map_err(|_| Error::Corrupt(format!("cell key part {v}")))
                };
                out.push(CellRow {
                    tenant: tenant_of(row.try_get(0)?)?,
                    family: Family::parse(&family)
                        .ok_or_else(|| Error::Corrupt(format!("family {family:?}")))?,
                    a: row.try_get(2)?,
                    b: row.try_get(3)?,
                    c: narrow(row.try_get(4)?)?,
                    d: narrow(row.try_get(5)?)?,
                    resolution: u8::try_from(row.try_get::<i16, _>(6)?)
                        .map_err(|_| Error::Corrupt("cell resolution".into()))?,
                    start_ns: row.try_get(7)?,
                    calls: to_u64(row.try_get(8)?),
                    errors: to_u64(row.try_get(9)?),
                    hist: row.try_get(10)?,
                    handed_on: row.try_get(11)?,
                });
            }
            Ok(out)
        })
    }

    fn save_services(&mut self, rows: &[ServiceRow]) -> Result<()> {
        self.save_checkpoint(&[], rows, None)
    }

    fn load_services(&self) -> Result<Vec<ServiceRow>> {
        self.run(|pool, instance| async move {
            let rows = sqlx::query(
                "SELECT tenant, name, spans, errors, first_ns, last_ns FROM services WHERE instance = $1",
            )
            .bind(&instance)
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ServiceRow {
                    tenant: tenant_of(row.try_get(0)?)?,
                    name: row.try_get(1)?,
                    spans: to_u64(row.try_get(2)?),
                    errors: to_u64(row.try_get(3)?),
                    first_ns: to_u64(row.try_get(4)?),
                    last_ns: to_u64(row.try_get(5)?),
                });
            }
            Ok(out)
        })
    }

    fn prune_cells(&mut self, horizons: &[(TenantId, [i64; 3])]) -> Result<u64> {
        if horizons.is_empty() {
            return Ok(0);
        }
        let horizons = horizons.to_vec();
        self.run(|pool, instance| async move {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            for (tenant, before_ns) in &horizons {
                n += sqlx::query(
                    "DELETE FROM cells WHERE tenant = $1 AND instance = $2 AND (
                        (resolution = 0 AND start_ns < $3) OR (resolution = 1 AND start_ns < $4)
                        OR (resolution = 2 AND start_ns < $5))",
                )
                .bind(tenant.as_str())
                .bind(&instance)
                .bind(before_ns[0])
                .bind(before_ns[1])
                .bind(before_ns[2])
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    fn save_state(&mut self, rows: &[StateRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows.to_vec();
        self.run(|pool, _| async move {
            let mut tx = pool.begin().await?;
            for r in &rows {
                sqlx::query(
                    "INSERT INTO detection_state (tenant, part, state, saved_ns) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, part) DO UPDATE SET state = EXCLUDED.state, saved_ns = EXCLUDED.saved_ns",
                )
                .bind(r.tenant.as_str())
                .bind(&r.part)
                .bind(&r.state)
                .bind(r.saved_ns)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn load_state(&self) -> Result<Vec<StateRow>> {
        self.run(|pool, _| async move {
            let rows = sqlx::query(
                "SELECT tenant, part, state, saved_ns FROM detection_state ORDER BY tenant, part",
            )
            .fetch_all(&pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(StateRow {
                    tenant: tenant_of(row.try_get(0)?)?,
                    part: row.try_get(1)?,
                    state: row.try_get(2)?,
                    saved_ns: row.try_get(3)?,
                });
            }
            Ok(out)
        })
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        // Every instance's rows: a deletion is of the tenant, not of one
        // instance's share of it.
        delete_tenant_rows(
            &self.client,
            tenant,
            &["detection_state", "cells", "services"],
        )
    }
}
