//! The processor stage: one task that owns all per-tenant state.
//!
//! Converting a request to Arrow is a pure function of its bytes and the
//! largest part of the work per span, so it runs on a few blocking threads
//! ahead of the stage; the stage takes the results in queue order, so what
//! it computes does not depend on which conversion finished first, and a
//! query still sees every batch acknowledged before it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use causeway_model::{QueuedBatch, TenantId};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use crate::catalog::Catalog;
use crate::changes::{IncidentChange, Outbox};
use crate::config::SpansConfig;
use crate::detect::{DetectSettings, IncidentSettings, TenantDetection, links_of};
use crate::graph::{EdgeKey, GraphState};
use crate::kernels::otlp_to_arrow::{self, MAX_VALUE_BYTES};
use crate::persist::{Persistence, from_row, to_row};
use crate::query::{EdgeRow, MetricsSnapshot, Query, Snapshot};
use crate::red::{self, RedKey};
use crate::series::SeriesSet;
use rows::{copy_cells, red_rows};

/// The state document that holds a tenant's detection.
const DETECTION_PART: &str = "detection";

/// How often the store is polled for finished writes and checkpoints
/// are considered (windows are sealed by the data, see `process`).
const TICK: Duration = Duration::from_secs(1);

/// The oldest conversion in flight; `converting` must not be empty.
async fn oldest(converting: &mut VecDeque<JoinHandle<Converted>>) -> Result<Converted, JoinError> {
    match converting.front_mut() {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// RED series, graph edges and span pairing of one tenant.
#[derive(Debug)]
struct TenantState {
    red: SeriesSet<RedKey>,
    /// Self time of spans, keyed like `red`.
    self_time: SeriesSet<RedKey>,
    edges: SeriesSet<EdgeKey>,
    graph: GraphState,
    detect: TenantDetection,
}

/// A batch and its conversion to Arrow.
type Converted = (
    QueuedBatch,
    Result<otlp_to_arrow::Converted, crate::error::Error>,
);

/// Consumes the ingest queue and answers queries.
#[derive(Debug)]
pub struct ProcessorStage {
    input: mpsc::Receiver<QueuedBatch>,
    queries: mpsc::Receiver<Query>,
    config: SpansConfig,
    catalog: Catalog,
    tenants: HashMap<TenantId, TenantState>,
    processed_batches: u64,
    processed_spans: u64,
    sealed_windows: u64,
    failed_batches: u64,
    /// Strings cut at the value length limit.
    truncated_values: u64,
    /// Counters on `/metrics`.
    metrics: crate::ProcessorMetrics,
    /// Store failures already added to `metrics`.
    store_failures_reported: u64,
    persist: Persistence,
    /// Incident changes on their way to the correlator.
    outbox: Outbox,
    /// The write-ahead log position after the last batch processed.
    logged: Option<causeway_model::LogPosition>,
}

impl ProcessorStage {
    /// A stage reading `input` and answering `queries`, starting from what
    /// `persist` holds (series, graph edges and catalog of earlier runs).
    pub fn new(
        input: mpsc::Receiver<QueuedBatch>,
        queries: mpsc::Receiver<Query>,
        config: SpansConfig,
        persist: Persistence,
    ) -> causeway_store::Result<Self> {
        let (cells, services, states) = persist.load()?;
        let logged = persist.start_mark();
        let mut stage = Self {
            input,
            queries,
            config,
            catalog: Catalog::default(),
            tenants: HashMap::new(),
            processed_batches: 0,
            processed_spans: 0,
            sealed_windows: 0,
            failed_batches: 0,
            truncated_values: 0,
            metrics: crate::ProcessorMetrics::default(),
            store_failures_reported: 0,
            persist,
            outbox: Outbox::new(None),
            logged,
        };
        stage.catalog.restore(services);
        let (mut restored, mut skipped) = (0u64, 0u64);
        for row in cells {
            let tenant = row.tenant.clone();
            let ok = match row.family {
                causeway_store::Family::Red => {
                    from_row(row).map(|c| stage.tenant(&tenant).red.restore(c))
                }
                causeway_store::Family::Edge => {
                    from_row(row).map(|c| stage.tenant(&tenant).edges.restore(c))
                }
                causeway_store::Family::SelfTime => {
                    from_row(row).map(|c| stage.tenant(&tenant).self_time.restore(c))
                }
            };
            if ok.is_some() {
                restored += 1;
            } else {
                skipped += 1;
            }
        }
        for row in states {
            if row.part != DETECTION_PART {
                continue;
            }
            match TenantDetection::restore(
                DetectSettings::default(),
                IncidentSettings::default(),
                &row.state,
            ) {
                Ok(d) => stage.tenant(&row.tenant).detect = d,
                Err(e) => tracing::warn!(
                    tenant = %row.tenant,
                    error = %e,
                    "saved detection state not restored; detection learns again"
                ),
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "stored cells with an unknown key or resolution were skipped"
            );
        }
        tracing::info!(
            cells = restored,
            tenants = stage.tenants.len(),
            "restored series"
        );
        Ok(stage)
    }

    /// Also sends every incident change to `changes` (the correlator).
    pub fn with_changes(mut self, changes: mpsc::Sender<IncidentChange>) -> Self {
        self.outbox = Outbox::new(Some(changes));
        self
    }

    /// Counts on `metrics` (registered by the caller).
    pub fn with_metrics(mut self, metrics: crate::ProcessorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until the input closes (every sender dropped, i.e. the receivers
    /// have stopped) and everything queued is processed.
    pub async fn run(mut self) {
        let mut queries_open = true;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Conversions in flight, oldest first.
        let mut converting: VecDeque<JoinHandle<Converted>> = VecDeque::new();
        let in_flight = self.config.convert_threads.max(1);
        loop {
            tokio::select! {
                biased;
                q = self.queries.recv(), if queries_open => match q {
                    Some(q) => {
                        // Everything acknowledged before the question was
                        // asked is already in the input or converting:
                        // take it all first.
                        while let Ok(batch) = self.input.try_recv() {
                            converting.push_back(self.convert(batch));
                        }
                        while let Some(c) = converting.pop_front() {
                            self.process(c.await);
                        }
                        self.answer(q);
                    }
                    None => queries_open = false,
                },
                c = oldest(&mut converting), if !converting.is_empty() => {
                    converting.pop_front();
                    self.process(c);
                    self.outbox.flush();
                }
                b = self.input.recv(), if converting.len() < in_flight => match b {
                    Some(batch) => converting.push_back(self.convert(batch)),
                    None => break,
                },
                _ = tick.tick() => {
                    self.outbox.flush();
                    self.persist.poll();
                    let failures = self.persist.failures;
                    if failures > self.store_failures_reported {
                        self.metrics
                            .store_failures
                            .inc_by(failures - self.store_failures_reported);
                        self.store_failures_reported = failures;
                    }
                    if self.persist.checkpoint_due() {
                        self.checkpoint(false);
                    }
                }
            }
        }
        while let Some(c) = converting.pop_front() {
            self.process(c.await);
        }
        for state in self.tenants.values_mut() {
            state.graph.flush(&mut state.edges);
            red::record_self_times(&mut state.self_time, state.graph.take_self_times());
        }
        self.advance();
        self.outbox.flush();
        self.checkpoint(true);
        tracing::info!(
            batches = self.processed_batches,
            spans = self.processed_spans,
            sealed_windows = self.sealed_windows,
            failed_batches = self.failed_batches,
            truncated_values = self.truncated_values,
            store_failures = self.persist.failures,
            "processor drained its input and stopped"
        );
    }

    fn tenant(&mut self, tenant: &TenantId) -> &mut TenantState {
        let config = &self.config;
        self.tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantState {
                red: SeriesSet::new(config.red_settings()),
                self_time: SeriesSet::new(config.red_settings()),
                edges: SeriesSet::new(config.edge_settings()),
                graph: GraphState::new(config.graph_settings()),
                detect: TenantDetection::new(
                    DetectSettings::default(),
                    IncidentSettings::default(),
                ),
            })
    }

    /// Counts `queued` into the catalog and starts its conversion.
    fn convert(&mut self, queued: QueuedBatch) -> JoinHandle<Converted> {
        let batch = &queued.batch;
        self.processed_batches += 1;
        self.processed_spans += batch.spans;
        tokio::task::spawn_blocking(move || {
            let spans = otlp_to_arrow::convert(&queued.batch.tenant, &queued.batch.payload);
            (queued, spans)
        })
    }

    fn process(&mut self, converted: Result<Converted, JoinError>) {
        let (queued, spans) = match converted {
            Ok(c) => c,
            Err(e) => {
                // A panic in the conversion: a bug, not bad input. The
                // batch's lease went with the task.
                self.failed_batches += 1;
                self.metrics.failed_batches.inc();
                tracing::error!(error = %e, "the conversion of an accepted batch panicked");
                return;
            }
        };
        // Processed, whatever the outcome below: a batch that cannot be
        // converted would fail again on replay.
        self.logged = self.logged.max(queued.logged);
        let batch = &queued.batch;
        // Counted here, in queue order and from the receiver's scan: the
        // catalog holds every accepted span even if its conversion failed,
        // and a checkpoint taken while later batches convert holds exactly
        // the batches before its mark.
        self.catalog.add(&batch.tenant, &batch.services);
        let spans = match spans {
            Ok(c) => {
                if c.truncated > 0 {
                    // Logged on the first cut and then every 10,000th: a
                    // client that always sends huge names is visible
                    // without flooding the log.
                    if self.truncated_values == 0
                        || self.truncated_values / 10_000
                            != (self.truncated_values + c.truncated) / 10_000
                    {
                        tracing::warn!(tenant = %batch.tenant, cut_so_far = self.truncated_values + c.truncated,
                            limit_bytes = MAX_VALUE_BYTES, "names or attribute values over the limit were cut");
                    }
                    self.truncated_values += c.truncated;
                    self.metrics.truncated_values.inc_by(c.truncated);
                }
                c.batch
            }
            Err(e) => {
                // The receiver validated this payload: this is a bug, not bad
                // input. Keep serving; the catalog already counted the spans.
                self.failed_batches += 1;
                self.metrics.failed_batches.inc();
                tracing::error!(tenant = %batch.tenant, error = %e, "cannot convert an accepted batch");
                return;
            }
        };
        let tenant = batch.tenant.clone();
        self.persist
            .append_spans(&tenant, spans.clone(), queued.logged);
        let state = self.tenant(&tenant);
        state.detect.recent.push(spans.clone());
        state.detect.observe_batch(&spans, &state.edges);
        let result = red::record_batch(&mut state.red, &spans)
            .and_then(|()| state.graph.record_batch(&mut state.edges, &spans));
        red::record_self_times(&mut state.self_time, state.graph.take_self_times());
        // Windows are sealed as soon as the watermark passes them, batch by
        // batch, never on a wall-clock tick: what detection sees, and in
        // which order, then depends on the data and its order alone, not on
        // how fast it came in (a replay and a live feed of the same spans
        // find the same incidents).
        let (sealed, changes) = seal(state);
        self.sealed_windows += sealed;
        self.outbox.push(&tenant, changes);
        if let Err(e) = result {
            self.failed_batches += 1;
            self.metrics.failed_batches.inc();
            tracing::error!(tenant = %tenant, error = %e, "cannot aggregate a batch");
        }
        // `queued` drops here, releasing its queue memory.
    }

    /// Writes what changed since the last checkpoint; `false` when it
    /// could not (it is retried at the next tick).
    fn checkpoint(&mut self, force: bool) -> bool {
        if !self.persist.prepare_checkpoint() {
            return false;
        }
        let mut rows = Vec::new();
        let mut horizons = Vec::with_capacity(self.tenants.len());
        for (tenant, state) in &mut self.tenants {
            for c in state.red.take_dirty() {
                rows.push(to_row(tenant, causeway_store::Family::Red, c));
            }
            for c in state.edges.take_dirty() {
                rows.push(to_row(tenant, causeway_store::Family::Edge, c));
            }
            for c in state.self_time.take_dirty() {
                rows.push(to_row(tenant, causeway_store::Family::SelfTime, c));
            }
            // Each tenant's retention runs on its own event time.
            horizons.push((tenant.clone(), state.red.retention_horizon()));
        }
        let services = self.catalog.take_dirty();
        let saved = self
            .persist
            .checkpoint(rows, services, horizons, force, self.logged);
        if self.persist.state_due(force) {
            let saved_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let mut states = Vec::new();
            for (tenant, state) in &self.tenants {
                match state.detect.snapshot() {
                    Ok(doc) => states.push(causeway_store::StateRow {
                        tenant: tenant.clone(),
                        part: DETECTION_PART.to_owned(),
                        state: doc,
                        saved_ns,
                    }),
                    Err(e) => {
                        tracing::error!(%tenant, error = %e, "cannot serialize detection state")
                    }
                }
            }
            self.persist.save_state(&states);
        }
        saved
    }

    /// Seals windows the watermark has passed, for every tenant.
    fn advance(&mut self) {
        for (tenant, state) in &mut self.tenants {
            let (sealed, changes) = seal(state);
            self.sealed_windows += sealed;
            self.outbox.push(tenant, changes);
        }
    }

    fn answer(&mut self, query: Query) {
        // The asker may have gone away (client hung up); nothing to do then.
        match query {
            Query::Services { tenant, reply } => {
                let _ = reply.send(self.catalog.services(&tenant));
            }
            Query::Red {
                tenant,
                query,
                reply,
            } => {
                let rows = self
                    .tenants
                    .get(&tenant)
                    .map(|s| red_rows(&s.red, &s.self_time, &query))
                    .unwrap_or_default();
                let _ = reply.send(rows);
            }
            Query::Graph {
                tenant,
                from_ns,
                to_ns,
                reply,
            } => {
                let rows = self
                    .tenants
                    .get(&tenant)
                    .map(|s| {
                        s.edges
                            .query(from_ns, to_ns, |_| true)
                            .into_iter()
                            .map(|(k, stats)| EdgeRow {
                                client: k.client.to_string(),
                                server: k.server.to_string(),
                                connection: k.connection,
                                stats,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(rows);
            }
            Query::Anomalies {
                tenant,
                from_ns,
                to_ns,
                reply,
            } => {
                let found = self
                    .tenants
                    .get(&tenant)
                    .map(|s| s.detect.anomalies(from_ns, to_ns))
                    .unwrap_or_default();
                let _ = reply.send(found);
            }
            Query::Tenants { reply } => {
                let mut list: Vec<TenantId> = self.tenants.keys().cloned().collect();
                list.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                let _ = reply.send(list);
            }
            Query::Incidents { tenant, reply } => {
                let found = self
                    .tenants
                    .get(&tenant)
                    .map(|s| s.detect.incidents())
                    .unwrap_or_default();
                let _ = reply.send(found);
            }
            Query::Incident { tenant, id, reply } => {
                let found = self
                    .tenants
                    .get(&tenant)
                    .and_then(|s| s.detect.incident(id));
                let _ = reply.send(found);
            }
            Query::EndOfInput { tenant, reply } => {
                if let Some(state) = self.tenants.get_mut(&tenant) {
                    state.graph.flush(&mut state.edges);
                    red::record_self_times(&mut state.self_time, state.graph.take_self_times());
                    // A bounded input has no later spans: event time may
                    // pass every window it holds.
                    let end = state
                        .red
                        .seal_horizon_ns()
                        .max(state.edges.seal_horizon_ns())
                        .max(state.self_time.seal_horizon_ns());
                    state.red.raise_watermark(end);
                    state.self_time.raise_watermark(end);
                    let (sealed, changes) = seal(state);
                    self.sealed_windows += sealed;
                    self.outbox.push(&tenant, changes);
                    self.outbox.flush();
                }
                let _ = reply.send(());
            }
            Query::DeleteTenant { tenant, reply } => {
                // With a write-ahead log, first a checkpoint whose mark
                // passes every record of the tenant processed so far (a
                // crash after the deletion must not replay them), in a
                // fresh segment so that its release frees their bytes.
                let marked = if self.persist.has_wal() {
                    self.persist.roll_wal().and_then(|()| {
                        if self.checkpoint(false) {
                            Ok(())
                        } else {
                            Err(causeway_store::Error::Io {
                                path: "write-ahead log".into(),
                                source: std::io::Error::other(
                                    "the checkpoint before the deletion failed",
                                ),
                            })
                        }
                    })
                } else {
                    Ok(())
                };
                let outcome = marked.and_then(|()| {
                    self.tenants.remove(&tenant);
                    self.catalog.delete_tenant(&tenant);
                    self.persist.delete_tenant(&tenant)
                });
                match &outcome {
                    Ok(()) => tracing::warn!(%tenant, "deleted every record of the tenant"),
                    Err(e) => tracing::error!(%tenant, error = %e, "deleting the tenant failed"),
                }
                let _ = reply.send(outcome);
            }
            Query::Metrics { tenant, reply } => {
                let mut snap = MetricsSnapshot::default();
                if let Some(state) = self.tenants.get(&tenant) {
                    snap.red = state.red.totals().map(|(k, t)| (k.clone(), *t)).collect();
                    snap.edges = state.edges.totals().map(|(k, t)| (k.clone(), *t)).collect();
                    snap.edges_server = state
                        .graph
                        .server_totals()
                        .map(|(k, t)| (k.clone(), *t))
                        .collect();
                }
                let _ = reply.send(snap);
            }
            Query::Snapshot {
                tenant,
                want,
                reply,
            } => {
                let mut snap = Snapshot {
                    window_ns: self.config.red_settings().window_ns,
                    ..Snapshot::default()
                };
                if want.spans {
                    snap.buffered = self.persist.spans().buffered(&tenant);
                    match self.persist.spans().files(&tenant) {
                        Ok(files) => snap.span_files = files,
                        Err(e) => tracing::error!(%tenant, error = %e, "cannot list span files"),
                    }
                }
                if let Some(state) = self.tenants.get(&tenant) {
                    // Cells are copied here in compact form and summarized
                    // on the SQL runtime: quantiles of thousands of cells
                    // would hold up ingest.
                    let limit = if want.max_cells == 0 {
                        usize::MAX
                    } else {
                        want.max_cells
                    };
                    if want.red {
                        snap.cells_cut |= copy_cells(&state.red, &want.range, limit, &mut snap.red);
                    }
                    if want.edges {
                        snap.cells_cut |=
                            copy_cells(&state.edges, &want.range, limit, &mut snap.edges);
                    }
                }
                let _ = reply.send(snap);
            }
        }
    }
}

/// Seals one tenant's windows the watermark has passed and hands them to
/// detection; returns how many RED windows it sealed and the incidents
/// that changed.
fn seal(state: &mut TenantState) -> (u64, Vec<causeway_model::Incident>) {
    // A tenant has one event time: the edges of a window are sealed with
    // its spans' window, so that detection judges the graph of a window
    // (which edge carried no calls while both its services were busy)
    // with everything the window holds. Edges alone would lag: an edge is
    // recorded when its pair completes. (Self times stay on their own
    // clock: they are final only when their span leaves the pairing
    // store.)
    state.edges.raise_watermark(state.red.watermark_ns());
    let red = state.red.advance();
    let edges = state.edges.advance();
    let self_time = state.self_time.advance();
    let sealed = red.len() as u64;
    if !red.is_empty() || !edges.is_empty() || !self_time.is_empty() {
        state
            .detect
            .observe(red, edges, self_time, &links_of(&state.edges));
    }
    state.detect.tick(state.red.watermark_ns());
    (sealed, state.detect.take_changes())
}

mod rows;

#[cfg(test)]
mod conversion_tests;
#[cfg(test)]
mod sealing_tests;
#[cfg(test)]
mod self_time_tests;
#[cfg(test)]
pub(crate) mod tests;
