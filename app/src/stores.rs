//! The stores a serving process opens, per `storage.backend`: DuckDB files
//! under the data directory (the embedded default), or one PostgreSQL
//! client shared by the series store, the audit trail and the RCA reports
//! (several instances can share the database).

use std::sync::Arc;

use anyhow::Context;
use causeway_connectors::SignalHub;
use causeway_store::{
    AuditStore, DuckDbAudit, DuckDbReports, DuckDbSignals, DuckDbStore, PgAudit, PgClient,
    PgReports, PgSignals, PgStore, ReportStore, Store,
};

use crate::config::Config;

/// Where this process keeps what is not raw spans.
pub struct Stores {
    pg: Option<Arc<PgClient>>,
    data_dir: std::path::PathBuf,
}

impl Stores {
    /// Connects to PostgreSQL (applying pending migrations) when
    /// configured; DuckDB files open on demand.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let settings = config.storage.settings(&config.cluster.instance()).postgres;
        let pg = match settings {
            Some(pg) => Some(PgClient::connect(&pg).context("connecting to PostgreSQL")?),
            None => None,
        };
        Ok(Self {
            pg,
            data_dir: config.storage.data_dir.clone(),
        })
    }

    /// Series cells, catalog, detection state and the log mark (`None`:
    /// the processor opens its DuckDB file).
    pub fn series(&self) -> Option<Box<dyn Store>> {
        self.pg
            .as_ref()
            .map(|c| Box::new(PgStore::new(Arc::clone(c))) as Box<dyn Store>)
    }

    /// The audit trail.
    pub fn audit(&self) -> anyhow::Result<Box<dyn AuditStore>> {
        if let Some(c) = &self.pg {
            return Ok(Box::new(PgAudit::new(Arc::clone(c))));
        }
        let path = self.data_dir.join("audit.duckdb");
        Ok(Box::new(DuckDbAudit::open(&path).with_context(|| {
            format!("opening the audit trail {}", path.display())
        })?))
    }

    /// The signal hub over connector signals, cursors and sealed
    /// credentials (with PostgreSQL, `connectors sync` can run beside a
    /// serving instance; DuckDB's file lock forbids that).
    pub fn signals(&self, config: &Config) -> anyhow::Result<SignalHub> {
        if let Some(c) = &self.pg {
            return Ok(SignalHub::with_store(
                PgSignals::new(Arc::clone(c)),
                config.connectors.clone(),
            )?);
        }
        let path = self.data_dir.join("signals.duckdb");
        Ok(SignalHub::with_store(
            DuckDbSignals::open(&path)
                .with_context(|| format!("opening the signal store {}", path.display()))?,
            config.connectors.clone(),
        )?)
    }

    /// The series store for reading (the catalog for `connectors`), when
    /// there is one: PostgreSQL, or the DuckDB file if it exists.
    pub fn series_reader(&self) -> anyhow::Result<Option<Box<dyn Store>>> {
        if let Some(store) = self.series() {
            return Ok(Some(store));
        }
        let path = self.data_dir.join("causeway.duckdb");
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Box::new(DuckDbStore::open(&path)?)))
    }

    /// An audit sink that writes each event at once (for the short-lived
    /// `connectors` commands; `serve` batches them on a writer task).
    pub fn audit_sink(&self) -> anyhow::Result<Arc<dyn causeway_model::AuditSink>> {
        Ok(Arc::new(DirectAudit(std::sync::Mutex::new(self.audit()?))))
    }

    /// RCA reports and feedback.
    pub fn reports(&self) -> anyhow::Result<Box<dyn ReportStore>> {
        if let Some(c) = &self.pg {
            return Ok(Box::new(PgReports::new(Arc::clone(c))));
        }
        let path = self.data_dir.join("rca.duckdb");
        Ok(Box::new(DuckDbReports::open(&path).with_context(|| {
            format!("opening the RCA store {}", path.display())
        })?))
    }
}

/// Appends each event as it comes; failures are logged (the event is also
/// a `causeway::audit` log line).
#[derive(Debug)]
struct DirectAudit(std::sync::Mutex<Box<dyn AuditStore>>);

impl causeway_model::AuditSink for DirectAudit {
    fn record(&self, event: causeway_model::AuditEvent) {
        tracing::info!(target: "causeway::audit", action = %event.action, outcome = event.outcome.as_str(), detail = %event.detail, "audit");
        let mut store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = store.append(std::slice::from_ref(&event)) {
            tracing::error!(error = %e, action = %event.action, "cannot write the audit trail");
        }
    }
}
