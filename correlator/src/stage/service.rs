//! The RCA service: analyses a tenant's incidents, stores the reports,
//! hands them to the sinks and answers the API's report queries. The
//! stage's loop (`run.rs`) decides when.
//!
//! ```text
//! incidents to analyse ─> processor snapshot (span files + buffered) ─┐
//! signal hub (changes, tickets), feedback history ────────────────────┴─> investigate
//!   (blocking thread) ─> LLM narrative? ─> report store ─> sinks, live events
//! ```
//!
//! An incident is re-analysed when it changed since its last report (new
//! anomalies, a later update) or people gave feedback on it; a stored
//! report of the incident as it is now is current, also after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use causeway_connectors::SignalHub;
use causeway_model::rca::{Feedback, RcaReport};
use causeway_model::time::now_ns;
use causeway_model::{Incident, TenantId};
use causeway_processor::{QueryHandle, SnapshotRequest};
use causeway_store::{ReportStore, SignalQuery};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, broadcast};

use super::narrative::Narrator;
use super::sink::{LiveEvent, ReportEvent, ReportSink};
use crate::config::CorrelatorConfig;
use crate::history::History;
use crate::{Case, Listing, excluded_ranges, investigate};

/// What can go wrong serving reports.
#[derive(Debug, thiserror::Error)]
pub enum RcaError {
    /// The processor stopped (shutdown).
    #[error("the processor is not running")]
    Stopped,
    /// The report store or the span files failed (our side).
    #[error("{0}")]
    Store(String),
}

/// Analyses incidents and keeps their reports.
#[derive(Debug)]
pub struct RcaService {
    processor: QueryHandle,
    reports: Arc<Mutex<Box<dyn ReportStore>>>,
    signals: Option<Arc<SignalHub>>,
    pub(super) config: CorrelatorConfig,
    /// Rewrites narratives, when an LLM is configured.
    narrator: Option<Narrator>,
    /// (tenant, incident) → the incident's `updated_ns` last analysed.
    analysed: Mutex<HashMap<(TenantId, u64), i64>>,
    /// Notifications, OTLP log export.
    sinks: Vec<Arc<dyn ReportSink>>,
    /// New and changed incidents and reports, for the API's event stream.
    live: broadcast::Sender<LiveEvent>,
    /// Incidents to analyse again although they did not change (people
    /// gave feedback on their report); the stage's loop takes them.
    pub(super) requested: Mutex<HashSet<(TenantId, u64)>>,
    /// Wakes the stage's loop when `requested` grew.
    pub(super) wake: Notify,
    /// Reports written, per tenant.
    written: Family<TenantLabel, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// Events a slow event-stream subscriber may fall behind by before it
/// misses some (it is told to reload).
const LIVE_CAPACITY: usize = 256;

impl RcaService {
    /// A service over the given report store.
    pub fn new(
        processor: QueryHandle,
        reports: Box<dyn ReportStore>,
        signals: Option<Arc<SignalHub>>,
        config: CorrelatorConfig,
    ) -> Self {
        let narrator = config.llm.clone().and_then(|llm| match Narrator::new(llm) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(error = %e, "LLM narrator unavailable; template narratives only");
                None
            }
        });
        Self {
            processor,
            reports: Arc::new(Mutex::new(reports)),
            signals,
            config,
            narrator,
            analysed: Mutex::new(HashMap::new()),
            sinks: Vec::new(),
            live: broadcast::channel(LIVE_CAPACITY).0,
            requested: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            written: Family::default(),
        }
    }

    /// Registers the service's metrics (`causeway_rca_reports_total`).
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "causeway_rca_reports",
            "RCA reports written (first reports and updates)",
            self.written.clone(),
        );
        self
    }

    /// Also hands every written report to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn ReportSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// New and changed incidents and reports of every tenant, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    pub(super) fn publish(&self, tenant: &TenantId, kind: &'static str, id: u64) {
        // No subscriber is not an error.
        let _ = self.live.send(LiveEvent {
            tenant: tenant.clone(),
            kind,
            id,
        });
    }

    /// One pass over every tenant; returns how many reports were written.
    pub async fn analyse_all(&self) -> Result<usize, RcaError> {
        let tenants = self
            .processor
            .tenants()
            .await
            .map_err(|_| RcaError::Stopped)?;
        let mut n = 0;
        for tenant in tenants {
            // One tenant's failure (a corrupt file) must not stop the others.
            match self.analyse_tenant(&tenant, None).await {
                Ok(k) => n += k,
                Err(RcaError::Stopped) => return Err(RcaError::Stopped),
                Err(e) => tracing::error!(%tenant, error = %e, "RCA of the tenant failed"),
            }
        }
        Ok(n)
    }

    /// Analyses the incidents of `tenant` (`only` these, when given) that
    /// changed since their report; returns how many reports were written.
    pub async fn analyse_tenant(
        &self,
        tenant: &TenantId,
        only: Option<&HashSet<u64>>,
    ) -> Result<usize, RcaError> {
        let incidents = self
            .processor
            .incidents(tenant.clone())
            .await
            .map_err(|_| RcaError::Stopped)?;
        let mut stale: Vec<&Incident> = Vec::new();
        for i in &incidents {
            if only.is_some_and(|o| !o.contains(&i.id)) {
                continue;
            }
            let key = (tenant.clone(), i.id);
            let known = self
                .analysed
                .lock()
                .map_err(|_| RcaError::Store("poisoned".into()))?
                .get(&key)
                .copied();
            if known == Some(i.updated_ns) {
                continue;
            }
            if known.is_none() {
                // After a restart: a stored report of the incident as it
                // is now is current.
                let stored = self.get(tenant, i.id).await?;
                if stored.is_some_and(|r| {
                    r.incident_updated_ns == i.updated_ns && !r.has_newer_feedback()
                }) {
                    self.analysed
                        .lock()
                        .map_err(|_| RcaError::Store("poisoned".into()))?
                        .insert(key, i.updated_ns);
                    continue;
                }
            }
            stale.push(i);
        }
        if stale.is_empty() {
            return Ok(0);
        }
        // One listing of the tenant's spans serves every incident of the
        // pass.
        let snapshot = Arc::new(
            self.processor
                .snapshot(
                    tenant.clone(),
                    SnapshotRequest {
                        spans: true,
                        ..SnapshotRequest::default()
                    },
                )
                .await
                .map_err(|_| RcaError::Stopped)?,
        );
        // People's verdicts on earlier incidents, once per pass.
        let history = Arc::new(self.history(tenant).await?);
        let mut n = 0;
        for incident in stale {
            let Some((incident, anomalies)) = self
                .processor
                .incident(tenant.clone(), incident.id)
                .await
                .map_err(|_| RcaError::Stopped)?
            else {
                continue;
            };
            let snapshot = Arc::clone(&snapshot);
            let signals = match &self.signals {
                Some(hub) => {
                    let q = SignalQuery {
                        from_ns: Some(
                            incident.onset_ns.saturating_sub(
                                i64::try_from(self.config.change_lookback.as_nanos())
                                    .unwrap_or(i64::MAX),
                            ),
                        ),
                        ..SignalQuery::default()
                    };
                    hub.signals(tenant, &q).await.unwrap_or_else(|e| {
                        tracing::warn!(%tenant, error = %e, "signals unavailable for RCA");
                        Vec::new()
                    })
                }
                None => Vec::new(),
            };
            // The report being replaced: its feedback reorders the new one,
            // and sinks tell news from re-analyses by it.
            let previous = self.get(tenant, incident.id).await?;
            let feedback = previous
                .as_ref()
                .map(|r| r.feedback.clone())
                .unwrap_or_default();
            let excluded = excluded_ranges(&incident, &incidents);
            let config = self.config.clone();
            let tenant_c = tenant.clone();
            let updated = incident.updated_ns;
            let id = incident.id;
            let history = Arc::clone(&history);
            // Reading Parquet and ranking are CPU and disk work: off the
            // async workers.
            let mut outcome =
                tokio::task::spawn_blocking(move || -> Result<RcaReport, RcaError> {
                    let listing = Listing {
                        files: &snapshot.span_files,
                        buffered: &snapshot.buffered,
                    };
                    let case = Case {
                        tenant: &tenant_c,
                        incident: &incident,
                        anomalies: &anomalies,
                        excluded: &excluded,
                        signals: &signals,
                        now_ns: now_ns(),
                        feedback: &feedback,
                        history: &history,
                    };
                    investigate(&listing, case, &config).map_err(|e| RcaError::Store(e.to_string()))
                })
                .await
                .map_err(|e| RcaError::Store(format!("RCA task failed: {e}")))??;
            if let Some(n) = &self.narrator {
                n.apply(&mut outcome).await;
            }
            let stored = outcome.clone();
            let t = tenant.clone();
            self.with_store(move |db| db.put(&t, &stored)).await?;
            self.publish(tenant, "rca", id);
            self.written
                .get_or_create(&TenantLabel {
                    tenant: tenant.as_str().to_owned(),
                })
                .inc();
            if !self.sinks.is_empty() {
                let event = ReportEvent {
                    tenant: tenant.clone(),
                    report: outcome.clone(),
                    previous,
                };
                for sink in &self.sinks {
                    sink.report(&event);
                }
            }
            tracing::debug!(%tenant, incident = id, summary = %outcome.summary, "RCA report written");
            self.analysed
                .lock()
                .map_err(|_| RcaError::Store("poisoned".into()))?
                .insert((tenant.clone(), id), updated);
            n += 1;
        }
        Ok(n)
    }

    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn ReportStore) -> causeway_store::Result<T> + Send + 'static,
    ) -> Result<T, RcaError> {
        let reports = Arc::clone(&self.reports);
        tokio::task::spawn_blocking(move || {
            let mut db = reports
                .lock()
                .map_err(|_| RcaError::Store("report store lock poisoned".into()))?;
            f(db.as_mut()).map_err(|e| RcaError::Store(e.to_string()))
        })
        .await
        .map_err(|e| RcaError::Store(e.to_string()))?
    }

    /// What `tenant`'s feedback says about the evidence of the reports it
    /// was given on.
    async fn history(&self, tenant: &TenantId) -> Result<History, RcaError> {
        let t = tenant.clone();
        self.with_store(move |db| {
            let feedback = db.all_feedback(&t)?;
            let mut ids: Vec<u64> = feedback.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut reports = Vec::with_capacity(ids.len());
            for id in ids {
                reports.extend(db.get(&t, id)?);
            }
            Ok(History::learn(&feedback, &reports))
        })
        .await
    }

    /// Stores `report` for `tenant` as the service would (imports, tests).
    pub async fn put(&self, tenant: &TenantId, report: RcaReport) -> Result<(), RcaError> {
        let t = tenant.clone();
        self.with_store(move |db| db.put(&t, &report)).await
    }

    /// Reports of `tenant` with onset in `[from_ns, to_ns)`, newest first.
    pub async fn list(
        &self,
        tenant: &TenantId,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<RcaReport>, RcaError> {
        let t = tenant.clone();
        self.with_store(move |db| db.list(&t, from_ns, to_ns, limit))
            .await
    }

    /// One report of `tenant`.
    pub async fn get(&self, tenant: &TenantId, id: u64) -> Result<Option<RcaReport>, RcaError> {
        let t = tenant.clone();
        self.with_store(move |db| db.get(&t, id)).await
    }

    /// Records feedback; `false` when `tenant` has no such report.
    pub async fn feedback(
        &self,
        tenant: &TenantId,
        id: u64,
        feedback: Feedback,
    ) -> Result<bool, RcaError> {
        let t = tenant.clone();
        let found = self
            .with_store(move |db| db.add_feedback(&t, id, &feedback))
            .await?;
        if found {
            // Re-ranked with it now (the stage's loop is told).
            if let Ok(mut a) = self.analysed.lock() {
                a.remove(&(tenant.clone(), id));
            }
            if let Ok(mut r) = self.requested.lock() {
                r.insert((tenant.clone(), id));
            }
            self.wake.notify_one();
        }
        Ok(found)
    }

    /// Deletes every report of `tenant`.
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<(), RcaError> {
        let t = tenant.clone();
        if let Ok(mut a) = self.analysed.lock() {
            a.retain(|(x, _), _| x != tenant);
        }
        if let Ok(mut r) = self.requested.lock() {
            r.retain(|(x, _)| x != tenant);
        }
        self.with_store(move |db| db.delete_tenant(&t)).await
    }

    /// Deletes reports last computed before `before_ns` (retention).
    pub async fn prune(&self, before_ns: i64) -> Result<u64, RcaError> {
        self.with_store(move |db| db.prune_before(before_ns)).await
    }
}
