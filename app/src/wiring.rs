//! The only place that creates channels: receivers → bounded queue →
//! processor → incident changes → RCA stage → report sinks (exporter) and
//! live events (API); API and RCA stage → query channel → processor.
//! Shutdown runs in flow order: receivers stop accepting and finish
//! in-flight requests, the processor drains everything they acknowledged,
//! then the API stops.

use std::sync::Arc;

use anyhow::Context;
use causeway_api::audit::AuditLog;
use causeway_api::{self as api, ApiState, CatalogServices, Readiness};
use causeway_connectors::{KnownServices, SignalHub};
use causeway_correlator::{RcaService, ReportSink};
use causeway_exporter::forward::{ForwardMetrics, Forwarder};
use causeway_exporter::notify::{Notifier, NotifyMetrics};
use causeway_model::{Actor, AuditEvent, AuditOutcome, AuditSink, LogPosition};
use causeway_processor::persist::Persistence;
use causeway_processor::{ProcessorStage, QueryHandle, SqlEngine};
use causeway_receiver::{Admission, Ingest, OtlpReceiver, ReceiverMetrics, Tee};
use causeway_server::net::{self, Listener, ServeOptions};
use causeway_server::{Authenticator, Gate, Limits};
use causeway_store::wal::Wal;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::stores::Stores;

/// Capacity of the API → processor query channel.
const QUERY_CAPACITY: usize = 64;
/// Capacity of the processor → RCA stage incident-change channel: changes
/// come at most once per window per open incident, and the stage takes
/// them at once (analyses run on their own task); a full channel only
/// delays them, the processor keeps the latest of each (`Outbox`).
pub(crate) const CHANGE_CAPACITY: usize = 256;

/// Runs causeway until SIGTERM or SIGINT, then shuts down losing nothing
/// that was acknowledged.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install();
    let grace = config.service.shutdown_timeout;
    let mut registry = Registry::default();
    let receiver_metrics = ReceiverMetrics::register(&mut registry);
    let forward_metrics = ForwardMetrics::register(&mut registry);
    let notify_metrics = NotifyMetrics::register(&mut registry);
    std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.storage.data_dir.display()
        )
    })?;
    let forwarder = Arc::new(
        Forwarder::open(
            &config.exporters.otlp,
            &config.storage.data_dir,
            forward_metrics,
        )
        .context("starting OTLP forwarding")?,
    );
    let notifier = Arc::new(
        Notifier::new(
            &config.exporters.notifications,
            config.exporters.api.public_url.clone(),
            &config.storage.data_dir,
            notify_metrics,
        )
        .context("starting notifications")?,
    );

    let auth = Arc::new(Authenticator::new(&config.auth.api_keys));
    let limits = Arc::new(Limits::new(&config.limits));
    let stores = Stores::open(&config)?;
    let mut audit_log =
        AuditLog::new(stores.audit()?, config.storage.retention.audit).register(&mut registry);
    if config.exporters.otlp.iter().any(|e| e.audit_logs) {
        audit_log = audit_log.with_export(Arc::clone(&forwarder) as Arc<dyn AuditSink>);
    }
    let audit = Arc::new(audit_log);
    let gate = Gate::new(
        Arc::clone(&auth),
        Arc::clone(&limits),
        Arc::clone(&audit) as Arc<dyn AuditSink>,
    );
    let serve_options = ServeOptions::new(&config.limits, grace);
    record_config_load(&config, &auth, audit.as_ref());
    for (path, addr, _) in config.plaintext_public_listeners() {
        tracing::warn!(
            listener = path,
            %addr,
            "plaintext listener reachable from other machines (insecure: true); keys and data cross the network in clear"
        );
    }
    let (batch_tx, batch_rx) = mpsc::channel(config.processors.queue.capacity);
    let (query_tx, query_rx) = mpsc::channel(QUERY_CAPACITY);
    let (change_tx, change_rx) = mpsc::channel(CHANGE_CAPACITY);
    let wal = open_wal(&config)?;
    let mut admission = Admission::new(batch_tx, &config.processors.queue, auth.tenants().len());
    if let Some(wal) = &wal {
        admission = admission.with_log(Arc::clone(wal) as Arc<dyn causeway_model::AcceptLog>);
    }
    let mut ingest = Ingest::new(admission, receiver_metrics);
    if !forwarder.is_empty() {
        ingest = ingest.with_tee(Arc::clone(&forwarder) as Arc<dyn Tee>);
    }
    let ingest = Arc::new(ingest);

    let receiver = OtlpReceiver::bind(
        &config.receivers.otlp,
        Arc::clone(&ingest),
        gate.clone(),
        serve_options,
    )
    .await
    .context("starting the OTLP receiver")?;
    let api_cfg = &config.exporters.api;
    let api_listener = Listener::bind(api_cfg.endpoint, api_cfg.tls.as_ref())
        .await
        .context("starting the API")?;

    let (processor, mark) = start_processor(
        &config,
        batch_rx,
        query_rx,
        Some(change_tx),
        causeway_processor::ProcessorMetrics::register(&mut registry),
        wal.clone(),
        stores.series(),
    )?;
    // Before the receivers take a request: replayed records must enter the
    // queue ahead of every new one (the log's order is the queue's).
    if let Some(wal) = &wal {
        replay_wal(wal, mark, ingest.admission()).await?;
    }
    // The receivers hold the only other handle: when they stop, the queue
    // closes and the processor drains and ends.
    drop(ingest);
    let wal_sync = CancellationToken::new();
    if let (Some(wal), causeway_store::wal::Fsync::Interval(every)) =
        (&wal, config.storage.wal.fsync())
    {
        tokio::spawn(sync_wal(Arc::clone(wal), every, wal_sync.clone()));
    }

    let processor_handle = QueryHandle::new(query_tx);
    let sql = SqlEngine::start(
        processor_handle.clone(),
        config.processors.spans.sql.clone(),
    )
    .context("starting the SQL runtime")?;
    let hub = Arc::new(
        stores
            .signals(&config)?
            .with_audit(Arc::clone(&audit) as Arc<dyn AuditSink>),
    );
    let known: Arc<dyn KnownServices> = Arc::new(CatalogServices(processor_handle.clone()));
    let mut rca = RcaService::new(
        processor_handle.clone(),
        stores.reports()?,
        Some(Arc::clone(&hub)),
        config.processors.correlator.clone(),
    )
    .register(&mut registry);
    if !forwarder.is_empty() {
        rca = rca.with_sink(Arc::clone(&forwarder) as Arc<dyn ReportSink>);
    }
    if !notifier.is_empty() {
        rca = rca.with_sink(Arc::clone(&notifier) as Arc<dyn ReportSink>);
    }
    let rca = Arc::new(rca);
    let ready = Arc::new(Readiness::default());
    let api_state = Arc::new(ApiState {
        gate,
        audit: Some(Arc::clone(&audit)),
        processor: processor_handle,
        sql: Arc::new(sql),
        registry: Arc::new(registry),
        ready: Arc::clone(&ready),
        signals: Some(Arc::clone(&hub)),
        known: Arc::clone(&known),
        rca: Some(Arc::clone(&rca)),
        sessions: Default::default(),
        purges: vec![
            Arc::clone(&notifier) as Arc<dyn causeway_model::TenantPurge>,
            Arc::clone(&forwarder) as Arc<dyn causeway_model::TenantPurge>,
        ],
        secure_cookies: config.exporters.api.tls.is_some(),
    });
    let receivers_stop = CancellationToken::new();
    let connectors_stop = CancellationToken::new();
    let connectors = tokio::spawn(Arc::clone(&hub).run(known, connectors_stop.clone()));
    let rca_stop = CancellationToken::new();
    let rca_task = tokio::spawn(Arc::clone(&rca).run(change_rx, rca_stop.clone()));
    let forward_stop = CancellationToken::new();
    let forward_task = tokio::spawn(Arc::clone(&forwarder).run(forward_stop.clone()));
    let notify_stop = CancellationToken::new();
    let notify_task = tokio::spawn(Arc::clone(&notifier).run(notify_stop.clone()));
    let api_stop = CancellationToken::new();
    // Where a person goes first: the public URL when one is configured,
    // otherwise the listener's own address (loopback on the default).
    let dashboard = api_cfg.public_url.clone().unwrap_or_else(|| {
        let scheme = if api_cfg.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/", api_listener.local_addr())
    });
    tracing::info!(
        dashboard = %dashboard,
        sign_in = if auth.enabled() { "API key" } else { "none (no API keys configured)" },
        grpc = ?receiver.grpc_addr(),
        http = ?receiver.http_addr(),
        api = %api_listener.local_addr(),
        data_dir = %config.storage.data_dir.display(),
        tenants = ?auth.tenants(),
        "causeway is ready"
    );
    let receivers = tokio::spawn(receiver.run(receivers_stop.clone()));
    let api_server = tokio::spawn(net::serve(
        api_listener,
        api::router(api_state),
        serve_options,
        api_stop.clone(),
    ));
    let audit_stop = CancellationToken::new();
    let audit_task = tokio::spawn(Arc::clone(&audit).run(audit_stop.clone()));
    let housekeeping = tokio::spawn(housekeep(
        Housekeeping {
            limits: Arc::clone(&limits),
            hub: Arc::clone(&hub),
            rca: Arc::clone(&rca),
            notifier: Arc::clone(&notifier),
            retention: config.storage.retention.clone(),
        },
        api_stop.clone(),
    ));
    ready.set(true);

    let signal = signals.recv().await;
    tracing::info!(
        signal,
        "shutting down: no new requests; draining what was acknowledged"
    );
    ready.set(false);
    // A second signal stops at once, for operators who do not want to wait.
    tokio::spawn(async move {
        let again = signals.recv().await;
        tracing::warn!(signal = again, "second signal: exiting without draining");
        std::process::exit(130);
    });

    connectors_stop.cancel();
    rca_stop.cancel();
    receivers_stop.cancel();
    // A task that failed is reported and the drain goes on: what the
    // others hold (the processor's queue above all) must still be saved.
    let mut failed: Vec<String> = Vec::new();
    let mut joined = |what: &str, r: Result<(), tokio::task::JoinError>| {
        if let Err(e) = r {
            tracing::error!(task = what, error = %e, "task ended abnormally; shutdown goes on");
            failed.push(what.to_owned());
        }
    };
    joined("RCA", rca_task.await);
    notify_stop.cancel();
    joined("receiver", receivers.await);
    // Every request is acknowledged and queued on disk by now; what the
    // downstream has not taken yet is sent after the next start.
    forward_stop.cancel();
    joined("forwarding", forward_task.await);
    joined("notification", notify_task.await);
    joined("connectors", connectors.await);
    // Every sender of the queue is gone now; the processor ends once it
    // has processed everything that was queued.
    let processor_done = processor.await.is_ok();
    wal_sync.cancel();
    api_stop.cancel();
    joined("API", api_server.await);
    joined("housekeeping", housekeeping.await);
    // Last: everything before may still have recorded audit events.
    audit_stop.cancel();
    joined("audit", audit_task.await);
    if !processor_done {
        tracing::error!("the processor thread ended abnormally");
        failed.push("processor".into());
    }
    if !failed.is_empty() {
        anyhow::bail!("stopped; these tasks had failed: {}", failed.join(", "));
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What the housekeeping task tends.
struct Housekeeping {
    limits: Arc<Limits>,
    hub: Arc<SignalHub>,
    rca: Arc<RcaService>,
    notifier: Arc<Notifier>,
    retention: crate::config::RetentionConfig,
}

/// Once a minute forgets idle rate-limit keys (their memory follows the
/// clients of the last minute); once an hour, and a minute after start,
/// deletes signals, reports and dead letters past their retention (the
/// audit trail prunes itself, spans and series are pruned by the
/// processor).
async fn housekeep(h: Housekeeping, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    let mut minutes: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        h.limits.housekeep();
        if minutes.is_multiple_of(60) {
            apply_retention(&h).await;
        }
        minutes += 1;
    }
}

async fn apply_retention(h: &Housekeeping) {
    let before = causeway_model::time::ago_ns;
    match h.hub.prune(before(h.retention.signals)).await {
        Ok(n) if n > 0 => tracing::info!(signals = n, "signals past retention deleted"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "signal retention failed"),
    }
    match h.rca.prune(before(h.retention.reports)).await {
        Ok(n) if n > 0 => tracing::info!(reports = n, "RCA reports past retention deleted"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "report retention failed"),
    }
    let ms = u64::try_from(before(h.retention.dead_letters) / 1_000_000).unwrap_or(0);
    let n = h.notifier.dead_letters().retain(ms, None);
    if n > 0 {
        tracing::info!(dead_letters = n, "dead letters past retention deleted");
    }
}

/// The configuration a process starts with goes to every tenant's audit
/// trail (what applied to its data from then on) and the operator's.
fn record_config_load(config: &Config, auth: &Authenticator, audit: &dyn AuditSink) {
    let detail = format!(
        "api_keys={} connectors={} otlp_exporters={} notifications={} insecure={}",
        config.auth.api_keys.len(),
        config.connectors.sources.len(),
        config.exporters.otlp.len(),
        config.exporters.notifications.len(),
        config.insecure
    );
    let tenants = auth.tenants().into_iter().map(Some);
    for tenant in std::iter::once(None).chain(tenants) {
        audit.record(AuditEvent {
            at_ns: causeway_model::time::now_ns(),
            tenant,
            action: "config.load".into(),
            outcome: AuditOutcome::Success,
            actor: Actor::system(),
            detail: detail.clone(),
        });
    }
}

/// Opens the stores, restores the processor's state from them and runs the
/// processor on a thread of its own, sending incident changes to `changes`
/// when given; the receiver fires when it has drained `batches` (every
/// sender dropped) and written its final checkpoint.
pub(crate) fn start_processor(
    config: &Config,
    batches: mpsc::Receiver<causeway_model::QueuedBatch>,
    queries: mpsc::Receiver<causeway_processor::Query>,
    changes: Option<mpsc::Sender<causeway_processor::IncidentChange>>,
    metrics: causeway_processor::ProcessorMetrics,
    wal: Option<Arc<Wal>>,
    store: Option<Box<dyn causeway_store::Store>>,
) -> anyhow::Result<(tokio::sync::oneshot::Receiver<()>, Option<LogPosition>)> {
    let dir = &config.storage.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let settings = config.storage.settings(&config.cluster.instance());
    let opened = match store {
        Some(store) => Persistence::with_store(store, settings),
        None => Persistence::open(settings),
    };
    let mut persist = opened.with_context(|| {
        format!(
            "opening the stores under {} (another causeway using the same data directory holds its lock?)",
            dir.display()
        )
    })?;
    let mark = match wal {
        Some(wal) => persist
            .attach_wal(wal)
            .context("reading the write-ahead log mark")?,
        None => None,
    };
    let mut stage = ProcessorStage::new(batches, queries, config.processors.spans.clone(), persist)
        .context("restoring stored series")?;
    if let Some(changes) = changes {
        stage = stage.with_changes(changes);
    }
    stage = stage.with_metrics(metrics);
    // The processor is CPU-bound and does blocking disk writes: it gets a
    // thread of its own instead of a runtime worker.
    let (done, processor) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("causeway-processor".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match rt {
                Ok(rt) => rt.block_on(stage.run()),
                Err(e) => tracing::error!(error = %e, "cannot start the processor's runtime"),
            }
            let _ = done.send(());
        })
        .context("starting the processor thread")?;
    Ok((processor, mark))
}

/// Opens `<data_dir>/wal` when `storage.wal.enabled`.
fn open_wal(config: &Config) -> anyhow::Result<Option<Arc<Wal>>> {
    let c = &config.storage.wal;
    if !c.enabled {
        tracing::warn!(
            "storage.wal.enabled is false: a crash loses what the last checkpoint did not save"
        );
        return Ok(None);
    }
    let dir = config.storage.data_dir.join("wal");
    let wal = Wal::open(&dir, u64::from(c.max_size_mib) << 20, c.fsync())
        .with_context(|| format!("opening the write-ahead log {}", dir.display()))?;
    Ok(Some(Arc::new(wal)))
}

/// Queues every record after `mark` again, in log order: what was
/// acknowledged before a crash but not yet in the processor's stores. One
/// record is in memory at a time; the queue's limits pace the replay.
async fn replay_wal(
    wal: &Wal,
    mark: Option<LogPosition>,
    admission: &Admission,
) -> anyhow::Result<()> {
    let mut reader = wal.after(mark);
    let (mut requests, mut spans, mut skipped) = (0u64, 0u64, 0u64);
    while let Some(record) = reader
        .next_record()
        .context("reading the write-ahead log")?
    {
        // The payload was validated when it was accepted; only a damaged
        // record fails here, and it cannot be saved by refusing to start.
        let scan = match causeway_receiver::otlp::wire::scan_request(&record.payload) {
            Ok(scan) => scan,
            Err(e) => {
                skipped += 1;
                tracing::error!(tenant = %record.tenant, error = %e, "write-ahead log: a record that does not decode; skipped");
                continue;
            }
        };
        requests += 1;
        spans += scan.spans;
        let batch = causeway_model::TraceBatch {
            tenant: record.tenant,
            transport: record.transport,
            payload: record.payload,
            spans: scan.spans,
            services: scan.services,
        };
        admission
            .readmit(batch, record.next)
            .await
            .map_err(|e| anyhow::anyhow!("replaying the write-ahead log: {e}"))?;
    }
    if requests > 0 || skipped > 0 {
        tracing::warn!(
            requests,
            spans,
            skipped,
            "replayed acknowledged requests the last run had not saved (it did not stop cleanly)"
        );
    }
    Ok(())
}

/// Forces the write-ahead log to disk every `every` (`fsync: interval`).
async fn sync_wal(wal: Arc<Wal>, every: std::time::Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let w = Arc::clone(&wal);
        match tokio::task::spawn_blocking(move || w.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot sync the write-ahead log"),
            Err(e) => tracing::error!(error = %e, "the write-ahead log sync task failed"),
        }
    }
}

/// SIGTERM and SIGINT, listened to from the moment this is created: a
/// signal that arrives while the stores are still opening is not lost (nor
/// does it kill the process with the default action).
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the next SIGTERM or SIGINT; returns its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.streams {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
