//! The forwarder: per endpoint a disk queue and a sender task that
//! delivers each record until the endpoint accepts it or refuses it for
//! good, with its metrics; RCA reports as OTLP log records.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use causeway_model::TenantId;
use causeway_model::retry::Backoff;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{self, OtlpClient, SendError};
use super::config::{ForwardConfig, WhenFull};
use causeway_correlator::{ReportEvent, ReportSink};
use causeway_store::queue::{AppendError, DiskQueue, Kind, Record, tenant_tag, untag_tenant};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Exporter {
    pub(super) exporter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Dropped {
    pub(super) exporter: String,
    pub(super) reason: &'static str,
}

/// Forwarding counters (process-wide: no tenant label).
#[derive(Debug, Clone, Default)]
pub struct ForwardMetrics {
    pub(super) sent_spans: Family<Exporter, Counter>,
    pub(super) sent_logs: Family<Exporter, Counter>,
    pub(super) dropped_spans: Family<Dropped, Counter>,
    pub(super) failed_requests: Family<Exporter, Counter>,
    pub(super) queue_bytes: Family<Exporter, Gauge>,
}

impl ForwardMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "causeway_forward_sent_spans",
            "Spans the downstream OTLP endpoint accepted",
            m.sent_spans.clone(),
        );
        registry.register(
            "causeway_forward_sent_log_records",
            "RCA log records the downstream OTLP endpoint accepted",
            m.sent_logs.clone(),
        );
        registry.register(
            "causeway_forward_dropped_spans",
            "Spans not forwarded: queue full, disk error, or refused for good by the downstream",
            m.dropped_spans.clone(),
        );
        registry.register(
            "causeway_forward_failed_requests",
            "Send attempts that failed (each is retried unless refused for good)",
            m.failed_requests.clone(),
        );
        registry.register(
            "causeway_forward_queue_bytes",
            "Bytes of requests waiting on disk for the downstream",
            m.queue_bytes.clone(),
        );
        m
    }
}

/// One downstream endpoint and its queue.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) config: ForwardConfig,
    pub(super) queue: DiskQueue,
    pub(super) client: OtlpClient,
    pub(super) wake: Notify,
    /// This endpoint's series, looked up once: the hot path only bumps them.
    pub(super) queue_bytes: Gauge,
    pub(super) sent_spans: Counter,
    pub(super) sent_logs: Counter,
    pub(super) failed_requests: Counter,
    /// Unix seconds of the last "queue full" warning (rate limit).
    pub(super) warned_full: AtomicU64,
    /// Bytes reserved for requests being accepted (`when_full: refuse`),
    /// not yet appended: with `held`, never above the queue's limit.
    pub(super) reserved: AtomicU64,
    /// Held (read) by the sender while it has requests in flight; a purge
    /// takes it (write) to rewrite the queue under a paused sender.
    pub(super) pause: Arc<tokio::sync::RwLock<()>>,
    /// Cancelled by a purge: deliveries waiting to retry give their
    /// record back to the queue at once.
    pub(super) interrupt: std::sync::Mutex<CancellationToken>,
    /// One purge at a time: a second would renew the interrupt token the
    /// first cancelled, and wait for a sender that never lets go.
    pub(super) purging: std::sync::Mutex<()>,
}

impl Target {
    /// Whether this endpoint reserves room for `tenant`'s requests.
    fn reserves_for(&self, tenant: &TenantId) -> bool {
        self.config.queue.when_full == WhenFull::Refuse && self.config.wants(tenant.as_str())
    }

    /// Reserves `size` bytes if the queue has room for them beyond what
    /// it holds and what is already reserved.
    fn try_reserve(&self, size: u64) -> bool {
        let max = self.queue.max_bytes();
        // `held` only shrinks meanwhile (the sender acknowledging), or
        // grows by an append that gives its reservation back right after:
        // a stale read errs on the side of refusing.
        let held = self.queue.held_bytes();
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (held.saturating_add(r).saturating_add(size) <= max).then_some(r + size)
            })
            .is_ok()
    }

    /// Gives `size` reserved bytes back.
    fn unreserve(&self, size: u64) {
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(size))
            });
    }
}

/// How long a client refused for a full forwarding queue should wait: the
/// sender drains it at the downstream's pace.
pub(super) const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Every downstream endpoint.
#[derive(Debug)]
pub struct Forwarder {
    pub(super) targets: Vec<Arc<Target>>,
    pub(super) metrics: ForwardMetrics,
}

/// Why forwarding could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A config entry cannot be used.
    #[error(transparent)]
    Config(#[from] client::BuildError),
    /// The queue directory cannot be opened.
    #[error("exporters.otlp {name}: opening the queue in {dir}: {source}")]
    Queue {
        /// The entry.
        name: String,
        /// Its directory.
        dir: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Forwarder {
    /// Opens the queues under `data_dir/forward/` and builds the clients.
    pub fn open(
        configs: &[ForwardConfig],
        data_dir: &Path,
        metrics: ForwardMetrics,
    ) -> Result<Self, ForwardError> {
        let mut targets = Vec::with_capacity(configs.len());
        for c in configs {
            let dir = data_dir.join("forward").join(&c.name);
            let queue = DiskQueue::open(&dir, c.queue.max_size_mib.saturating_mul(1 << 20))
                .map_err(|source| ForwardError::Queue {
                    name: c.name.clone(),
                    dir: dir.display().to_string(),
                    source,
                })?;
            let label = Exporter {
                exporter: c.name.clone(),
            };
            let queue_bytes = metrics.queue_bytes.get_or_create(&label).clone();
            queue_bytes.set(i64::try_from(queue.held_bytes()).unwrap_or(i64::MAX));
            targets.push(Arc::new(Target {
                client: OtlpClient::new(c)?,
                config: c.clone(),
                queue,
                wake: Notify::new(),
                queue_bytes,
                sent_spans: metrics.sent_spans.get_or_create(&label).clone(),
                sent_logs: metrics.sent_logs.get_or_create(&label).clone(),
                failed_requests: metrics.failed_requests.get_or_create(&label).clone(),
                warned_full: AtomicU64::new(0),
                reserved: AtomicU64::new(0),
                pause: Arc::new(tokio::sync::RwLock::new(())),
                interrupt: std::sync::Mutex::new(CancellationToken::new()),
                purging: std::sync::Mutex::new(()),
            }));
        }
        Ok(Self { targets, metrics })
    }

    /// Whether any endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Runs one sender per endpoint until `cancel`; what is still queued
    /// then stays on disk for the next start.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tasks = Vec::new();
        for t in &self.targets {
            tasks.push(tokio::spawn(send_loop(
                Arc::clone(t),
                self.metrics.dropped_spans.clone(),
                cancel.clone(),
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
        for t in &self.targets {
            if let Err(e) = t.queue.sync() {
                tracing::error!(exporter = %t.config.name, error = %e, "forward queue: final sync failed");
            }
        }
    }

    fn enqueue(&self, target: &Target, tenant: &TenantId, kind: Kind, items: u64, payload: &[u8]) {
        let items32 = u32::try_from(items).unwrap_or(u32::MAX);
        // Tagged with the tenant, so that its deletion finds the record.
        let tagged = match kind {
            Kind::Traces => Kind::TenantTraces,
            Kind::Logs => Kind::TenantLogs,
            other => other,
        };
        match target
            .queue
            .append_parts(tagged, items32, &[&tenant_tag(tenant), payload])
        {
            Ok(_) => {
                target.record_held();
                target.wake.notify_one();
            }
            Err(e) => {
                let reason = match e {
                    AppendError::Full { .. } => "queue_full",
                    AppendError::Io(_) => "disk_error",
                };
                if kind == Kind::Traces {
                    self.metrics
                        .dropped_spans
                        .get_or_create(&Dropped {
                            exporter: target.config.name.clone(),
                            reason,
                        })
                        .inc_by(items);
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // One warning per 10 s: a long outage must not flood the log.
                let last = target.warned_full.load(Ordering::Relaxed);
                if now >= last + 10
                    && target
                        .warned_full
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        exporter = %target.config.name,
                        error = %e,
                        "forwarding: dropping new data (counted in causeway_forward_dropped_spans_total)"
                    );
                }
            }
        }
    }
}

impl causeway_receiver::Tee for Forwarder {
    fn reserve(&self, tenant: &TenantId, bytes: usize) -> Result<(), causeway_receiver::TeeFull> {
        let size = DiskQueue::record_size(bytes);
        for (i, t) in self.targets.iter().enumerate() {
            if t.reserves_for(tenant) && !t.try_reserve(size) {
                // All or nothing: give back what the earlier ones took.
                for earlier in &self.targets[..i] {
                    if earlier.reserves_for(tenant) {
                        earlier.unreserve(size);
                    }
                }
                return Err(causeway_receiver::TeeFull {
                    exporter: t.config.name.clone(),
                    retry_after: FULL_RETRY_AFTER,
                });
            }
        }
        Ok(())
    }

    fn release(&self, tenant: &TenantId, bytes: usize) {
        let size = DiskQueue::record_size(bytes);
        for t in &self.targets {
            if t.reserves_for(tenant) {
                t.unreserve(size);
            }
        }
    }

    fn accepted(&self, tenant: &TenantId, payload: &Bytes, spans: u64) {
        let size = DiskQueue::record_size(payload.len());
        for t in &self.targets {
            if t.config.wants(tenant.as_str()) {
                self.enqueue(t, tenant, Kind::Traces, spans, payload);
                // `wants` already holds: only the mode decides.
                if t.config.queue.when_full == WhenFull::Refuse {
                    t.unreserve(size);
                }
            }
        }
    }
}

impl causeway_model::AuditSink for Forwarder {
    /// Queues the event to every endpoint with `audit_logs` that takes its
    /// tenant (tenant-less events, the operator's, to endpoints that take
    /// every tenant).
    fn record(&self, event: causeway_model::AuditEvent) {
        let tenant = event
            .tenant
            .clone()
            .unwrap_or_else(TenantId::default_tenant);
        let targets: Vec<&Arc<Target>> = self
            .targets
            .iter()
            .filter(|t| {
                t.config.audit_logs
                    && match &event.tenant {
                        Some(owner) => t.config.wants(owner.as_str()),
                        None => t.config.tenants.is_none(),
                    }
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let payload = super::logs::audit_log_request(&event).encode_to_vec();
        for t in targets {
            self.enqueue(t, &tenant, Kind::Logs, 1, &payload);
        }
    }
}

impl ReportSink for Forwarder {
    fn report(&self, event: &ReportEvent) {
        let targets: Vec<&Arc<Target>> = self
            .targets
            .iter()
            .filter(|t| t.config.rca_logs && t.config.wants(&event.report.tenant))
            .collect();
        if targets.is_empty() {
            return;
        }
        let Ok(tenant) = TenantId::new(&event.report.tenant) else {
            tracing::error!("forwarding: a report of an invalid tenant; not sent");
            return;
        };
        let payload = super::logs::rca_log_request(&event.report).encode_to_vec();
        for t in targets {
            self.enqueue(t, &tenant, Kind::Logs, 1, &payload);
        }
    }
}

impl causeway_model::TenantPurge for Forwarder {
    fn what(&self) -> &'static str {
        "forwarding queues"
    }

    /// Rewrites each queue without the tenant's records, with its sender
    /// paused: deliveries waiting to retry give their records back first.
    /// Blocks (call it off the async workers).
    fn purge(&self, tenant: &TenantId) -> Result<u64, String> {
        let mut n = 0;
        for t in &self.targets {
            let _one = t.purging.lock().unwrap_or_else(|p| p.into_inner());
            t.interrupt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cancel();
            let paused = t.pause.blocking_write();
            *t.interrupt.lock().unwrap_or_else(|p| p.into_inner()) = CancellationToken::new();
            let dropped = t
                .queue
                .rewrite(|kind, payload| match kind {
                    Kind::TenantTraces | Kind::TenantLogs => {
                        untag_tenant(payload).is_none_or(|(owner, _)| &owner != tenant)
                    }
                    _ => true,
                })
                .map_err(|e| format!("exporters.otlp {}: {e}", t.config.name))?;
            drop(paused);
            t.record_held();
            t.wake.notify_one();
            n += dropped;
        }
        Ok(n)
    }
}

/// How one request ended.
pub(super) enum Delivery {
    /// The downstream accepted it.
    Sent,
    /// The downstream refused it for good (counted, logged, dropped).
    Refused,
    /// Shutdown came while it waited to be retried: it stays queued.
    Cancelled,
    /// A purge needs the queue: it stays queued and is read again after.
    Interrupted,
}

/// One endpoint's sender: up to `queue.num_consumers` requests in flight,
/// read ahead from the queue and acknowledged in queue order (the cursor
/// is one position, so a request answered early waits for those before
/// it). Each request is retried on its own until the downstream takes or
/// refuses it.
pub(super) async fn send_loop(
    target: Arc<Target>,
    dropped_spans: Family<Dropped, Counter>,
    cancel: CancellationToken,
) {
    let consumers = target.config.queue.num_consumers.max(1);
    let mut sync = tokio::time::interval(Duration::from_secs(1));
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_read = target.queue.head();
    let mut in_flight: std::collections::VecDeque<(Record, tokio::task::JoinHandle<Delivery>)> =
        std::collections::VecDeque::with_capacity(consumers);
    // Held while requests are in flight: a purge waits for it.
    let mut reading: Option<tokio::sync::OwnedRwLockReadGuard<()>> = None;
    loop {
        if reading.is_none() {
            reading = Some(Arc::clone(&target.pause).read_owned().await);
            // A purge may have rewritten the queue meanwhile: positions
            // read before it are gone.
            next_read = next_read.max(target.queue.head());
        }
        // A purge waiting: no new requests, so that in-flight ones finish
        // and the sender lets go.
        let purging = || {
            target
                .interrupt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_cancelled()
        };
        while in_flight.len() < consumers && !cancel.is_cancelled() && !purging() {
            match target.queue.read_at(next_read) {
                Ok(Some(record)) => {
                    next_read = record.next;
                    let record = record.untagged();
                    let interrupt = target
                        .interrupt
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let task = tokio::spawn(deliver(
                        Arc::clone(&target),
                        record.clone(),
                        dropped_spans.clone(),
                        cancel.clone(),
                        interrupt,
                    ));
                    in_flight.push_back((record, task));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(exporter = %target.config.name, error = %e, "forward queue: read failed");
                    if in_flight.is_empty()
                        && sleep_or_cancel(target.config.retry.max_interval, &cancel).await
                    {
                        return;
                    }
                    break;
                }
            }
        }
        let Some((record, task)) = in_flight.pop_front() else {
            // Nothing in flight: a purge may go ahead while this waits.
            reading = None;
            tokio::select! {
                () = cancel.cancelled() => return,
                () = target.wake.notified() => {}
                _ = sync.tick() => {
                    let _ = target.queue.sync();
                }
            }
            continue;
        };
        // Not abandoned at shutdown: a request the downstream took but
        // whose answer was cut off would be sent again after the restart.
        // The client's timeout bounds the wait; retries stop at shutdown.
        match task.await {
            Ok(Delivery::Sent) => {
                let counter = match record.kind {
                    Kind::Traces | Kind::TenantTraces | Kind::Accepted => &target.sent_spans,
                    Kind::Logs | Kind::TenantLogs => &target.sent_logs,
                };
                counter.inc_by(u64::from(record.items));
            }
            Ok(Delivery::Refused) => {}
            Ok(Delivery::Interrupted) => {
                // This and every later record stay queued (the cursor
                // cannot skip this one; later ones the downstream already
                // took are sent again: at least once, as after a restart);
                // the purge rewrites the queue, and reading starts again
                // at its head.
                for (_, task) in in_flight.drain(..) {
                    let _ = task.await;
                }
                reading = None;
                next_read = target.queue.head();
                continue;
            }
            outcome @ (Ok(Delivery::Cancelled) | Err(_)) => {
                if let Err(e) = outcome {
                    // Never aborted: only a panic ends a delivery early.
                    tracing::error!(exporter = %target.config.name, error = %e, "forwarding stopped: a delivery task failed; what is queued stays for the next start");
                }
                // This one stays queued, and with it everything after it
                // (the cursor cannot skip it): the rest may have been
                // delivered and will be sent again after the restart.
                for (_, task) in in_flight.drain(..) {
                    let _ = task.await;
                }
                return;
            }
        }
        if let Err(e) = target.queue.ack(record.next) {
            tracing::error!(exporter = %target.config.name, error = %e, "forward queue: cannot move the cursor");
        }
        target.record_held();
    }
}

/// Sends one request until the downstream takes or refuses it, or
/// shutdown comes while it waits to retry.
pub(super) async fn deliver(
    target: Arc<Target>,
    record: Record,
    dropped_spans: Family<Dropped, Counter>,
    cancel: CancellationToken,
    interrupt: CancellationToken,
) -> Delivery {
    let retry = &target.config.retry;
    let schedule = Backoff::new(retry.initial_interval, retry.max_interval);
    let mut attempt = 0u32;
    loop {
        match target
            .client
            .send(record.kind, record.payload.clone())
            .await
        {
            Ok(()) => return Delivery::Sent,
            Err(SendError::Permanent(message)) => {
                target.failed_requests.inc();
                if record.kind == Kind::Traces {
                    dropped_spans
                        .get_or_create(&Dropped {
                            exporter: target.config.name.clone(),
                            reason: "refused",
                        })
                        .inc_by(u64::from(record.items));
                }
                tracing::error!(
                    exporter = %target.config.name,
                    items = record.items,
                    error = %message,
                    "forwarding: the downstream refused a request for good; dropped"
                );
                return Delivery::Refused;
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) => {
                target.failed_requests.inc();
                attempt = attempt.saturating_add(1);
                let wait = schedule.wait(attempt, retry_after);
                tracing::warn!(
                    exporter = %target.config.name,
                    error = %message,
                    retry_in = ?wait,
                    queued_bytes = target.queue.held_bytes(),
                    "forwarding: downstream unavailable; will retry"
                );
                tokio::select! {
                    () = cancel.cancelled() => return Delivery::Cancelled,
                    () = interrupt.cancelled() => return Delivery::Interrupted,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

impl Target {
    fn record_held(&self) {
        self.queue_bytes
            .set(i64::try_from(self.queue.held_bytes()).unwrap_or(i64::MAX));
    }
}

/// Sleeps; `true` when cancelled meanwhile.
pub(super) async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}
