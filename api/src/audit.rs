//! The audit trail: the sink every stage records to, the task that
//! appends to the store, and `GET /api/v1/audit`.
//!
//! [`AuditLog::record`] redacts the event, writes it to the log (target
//! `causeway::audit`) and queues it on a bounded channel; the writer task
//! appends batches to the store off the async workers and prunes entries
//! past the retention once an hour. Recording never waits: when the
//! channel is full (the disk stalls) the event is counted in
//! `causeway_audit_dropped_total` and stays in the log line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use causeway_model::redact::redact_owned;
use causeway_model::time::{ago_ns, rfc3339_millis};
use causeway_model::{AuditEvent, AuditSink, TenantId};
use causeway_store::AuditStore;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ApiState, Caller, PageParams, Q, encode_cursor, error};

/// Events queued for the writer at most.
const QUEUE: usize = 4096;
/// Events appended per transaction at most.
const BATCH: usize = 512;
/// Longest `detail` kept: a SQL statement can be 64 KiB, and the trail
/// needs what was run, not every byte of it.
const MAX_DETAIL: usize = 4096;

/// The audit trail of the process.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
    rx: Mutex<Option<mpsc::Receiver<AuditEvent>>>,
    store: Arc<Mutex<Box<dyn AuditStore>>>,
    retention: Duration,
    dropped: Counter,
    /// Where events are also exported (OTLP log records, `audit_logs`).
    export: Option<Arc<dyn AuditSink>>,
}

impl AuditLog {
    /// An audit log over `store`, keeping entries for `retention`.
    pub fn new(store: Box<dyn AuditStore>, retention: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store: Arc::new(Mutex::new(store)),
            retention,
            dropped: Counter::default(),
            export: None,
        }
    }

    /// Also hands every event, redacted, to `export` (the forwarder, which
    /// sends it as an OTLP log record to endpoints with `audit_logs`).
    pub fn with_export(mut self, export: Arc<dyn AuditSink>) -> Self {
        self.export = Some(export);
        self
    }

    /// Registers `causeway_audit_dropped_total`.
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "causeway_audit_dropped",
            "Audit events not stored because the writer fell behind (they are still in the log)",
            self.dropped.clone(),
        );
        self
    }

    /// Appends queued events until `stop`, then what is still queued.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 { break; }
                    self.append(std::mem::take(&mut batch)).await;
                }
                _ = prune.tick() => self.prune().await,
                _ = stop.cancelled() => {
                    rx.close();
                    while rx.recv_many(&mut batch, BATCH).await > 0 {
                        self.append(std::mem::take(&mut batch)).await;
                    }
                    break;
                }
            }
        }
    }

    async fn append(&self, events: Vec<AuditEvent>) {
        let store = Arc::clone(&self.store);
        let n = events.len();
        let done = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&events)
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.dropped.inc_by(n as u64);
                tracing::error!(error = %e, events = n, "cannot append to the audit trail");
            }
            Err(e) => tracing::error!(error = %e, "audit writer task failed"),
        }
    }

    async fn prune(&self) {
        let before = ago_ns(self.retention);
        let store = Arc::clone(&self.store);
        let done = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .prune_before(before)
        })
        .await;
        match done {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(entries = n, "audit entries past retention deleted")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot prune the audit trail"),
            Err(e) => tracing::error!(error = %e, "audit prune task failed"),
        }
    }

    /// Removes `tenant`'s entries older than the retention (its purge).
    pub fn purge_tenant(&self, tenant: &TenantId) -> Result<u64, causeway_store::Error> {
        let before = ago_ns(self.retention);
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purge_tenant(tenant, before)
    }

    /// A page of `tenant`'s entries, newest first; `None` reads the
    /// entries no tenant can be named for (failed authentications with
    /// unknown keys, start-up): the operator's.
    pub fn page(
        &self,
        tenant: Option<&TenantId>,
        before: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<causeway_store::AuditEntry>, causeway_store::Error> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .list(tenant, before, limit)
    }
}

impl AuditSink for AuditLog {
    fn record(&self, mut event: AuditEvent) {
        if event.detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !event.detail.is_char_boundary(cut) {
                cut -= 1;
            }
            event.detail.truncate(cut);
            event.detail.push('…');
        }
        event.detail = redact_owned(event.detail);
        tracing::info!(
            target: "causeway::audit",
            tenant = event.tenant.as_ref().map_or("-", TenantId::as_str),
            action = %event.action,
            outcome = event.outcome.as_str(),
            via = %event.actor.via,
            client = ?event.actor.client,
            key_fingerprint = event.actor.key_fingerprint.as_deref().unwrap_or("-"),
            detail = %event.detail,
            "audit"
        );
        if let Some(export) = &self.export {
            export.record(event.clone());
        }
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
    }
}

/// `GET /api/v1/audit?limit=&cursor=`: the caller's trail, newest first.
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(params): Q<PageParams>,
) -> Response {
    let page = match params.page() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let Some(audit) = state.audit.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail is not kept by this process",
        );
    };
    let limit = page.limit;
    let after = page.after;
    let t = tenant.clone();
    let entries =
        tokio::task::spawn_blocking(move || audit.page(Some(&t), after, limit.saturating_add(1)))
            .await;
    let mut entries = match entries {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            tracing::error!(%tenant, error = %e, "cannot read the audit trail");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the audit trail",
            );
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "audit read failed"),
    };
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = if more {
        entries
            .last()
            .map(|e| encode_cursor((e.event.at_ns, e.seq)))
    } else {
        None
    };
    let items: Vec<_> = entries
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "seq": e.seq,
                "time": rfc3339_millis(e.event.at_ns),
                "action": e.event.action,
                "outcome": e.event.outcome,
                "actor": e.event.actor,
                "detail": e.event.detail,
            })
        })
        .collect();
    Json(serde_json::json!({"entries": items, "next_cursor": next})).into_response()
}
