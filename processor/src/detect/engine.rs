//! One tenant's detection: detectors per operation and per edge, fed with
//! sealed windows; the anomalies they find; and incidents grouping
//! anomalies that overlap in time and touch connected services.
//!
//! Time is event time throughout (window starts and the watermark), so a
//! replay of yesterday's spans produces yesterday's incidents.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use causeway_model::{Anomaly, Incident, IncidentState, Severity, Subject};
use hdrhistogram::Histogram;

use super::exemplars::{RecentSpans, Want};
use super::service::{
    Counts, OpReference, ServiceDetector, SlidingSettings, SlowWatch, poisson_score,
};
use super::signatures::Signatures;
use super::{DetectSettings, Event, Finding, Metric, SeriesDetector};
use crate::graph::EdgeKey;
use crate::red::RedKey;
use crate::series::{CellStats, Sealed, SeriesSet};

/// `-log10` of the chance at which a new call edge's first calls are
/// more than a rare path unseen so far could carry (see `watch_edges`).
const NEW_EDGE_LOG10: f64 = 3.0;
/// Anomalies kept per tenant (the oldest resolved ones go first).
const MAX_ANOMALIES: usize = 10_000;
/// Incidents kept per tenant.
const MAX_INCIDENTS: usize = 1_000;
/// Windows an edge's histograms wait for the edge to carry calls again
/// (its sliding detector settles a window only then).
const KEEP_EDGE_WINDOWS: i64 = 60;
/// Example traces per anomaly.
const EXAMPLES: usize = 5;

/// Incident grouping settings.
#[derive(Debug, Clone, Copy)]
pub struct IncidentSettings {
    /// An anomaly joins an incident whose last change is at most this much
    /// before its onset.
    pub join_window_ns: i64,
    /// An incident resolves once all its anomalies are resolved and this
    /// much event time passed without a new one.
    pub quiet_ns: i64,
    /// A tenant-wide gap in the data longer than this ends every open
    /// anomaly and incident.
    pub gap_ns: i64,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            join_window_ns: 5 * 60_000_000_000,
            quiet_ns: 5 * 60_000_000_000,
            gap_ns: 2 * 60_000_000_000,
        }
    }
}

/// What is known of one edge of the graph, for its changes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct EdgeWatch {
    /// Calls per window in which its client works (with or without
    /// calls to this server).
    rate: f64,
    /// Last window start with calls.
    last_ns: i64,
    /// First window start with calls.
    first_ns: i64,
    /// Onset of an open `edge_vanished` anomaly.
    vanished: Option<i64>,
    /// Longest silence between calls seen so far, ns: an edge that is
    /// used in bursts pauses this long as a matter of course.
    #[serde(default)]
    longest_silence_ns: i64,
}

fn edge_subject(key: &EdgeKey) -> Subject {
    Subject::Edge {
        client: key.client.to_string(),
        server: key.server.to_string(),
        connection: key.connection.as_str().to_owned(),
    }
}

/// An operation: RED series merged over status codes.
type OpKey = (Arc<str>, Arc<str>, i8);

/// One operation's window: calls, errors and durations.
type OpWindow = (OpKey, u64, u64, Histogram<u64>);

/// One window's own-span histograms per operation, by service.
type OwnWindows = HashMap<Arc<str>, Vec<(OpKey, Histogram<u64>)>>;

/// Per window start: the services with spans, and the edges with calls.
type Activity = (HashSet<Arc<str>>, HashMap<EdgeKey, u64>);

/// Detection state of one tenant.
#[derive(Debug)]
pub struct TenantDetection {
    settings: DetectSettings,
    incident_settings: IncidentSettings,
    ops: HashMap<OpKey, SeriesDetector>,
    /// Self-time detectors per operation (fed self-time windows as latency).
    self_ops: HashMap<OpKey, SeriesDetector>,
    edges: HashMap<EdgeKey, SeriesDetector>,
    /// Sliding-window detectors per service.
    services: HashMap<Arc<str>, ServiceDetector>,
    /// Normal durations per operation, for slow-span thresholds.
    references: HashMap<OpKey, OpReference>,
    /// Slow own spans by self time per operation (slow processing), on
    /// the self-time clock.
    self_slow: SlowWatch<OpKey>,
    /// Own-span histograms per window start, until their windows settle.
    unsettled: BTreeMap<i64, OwnWindows>,
    /// Slow calls per graph edge.
    edge_slow: SlowWatch<EdgeKey>,
    sliding: SlidingSettings,
    /// Calls per window of every edge seen, for graph changes.
    graph: HashMap<EdgeKey, EdgeWatch>,
    /// Edges first seen in the current window start, reported after it.
    new_edges: Vec<(EdgeKey, i64, u64)>,
    /// First window start observed (event time).
    first_start_ns: Option<i64>,
    /// Latest window start observed.
    last_start_ns: Option<i64>,
    /// After a data gap, shifts are not reported before this (event time).
    rewarm_until_ns: Option<i64>,
    /// First window start after the latest data gap: no change point can be
    /// placed before it (there was no data to see one in).
    resumed_ns: Option<i64>,
    /// Window length of the sealed series, ns.
    window_ns: i64,
    anomalies: BTreeMap<u64, Anomaly>,
    /// Open anomaly per (subject, metric).
    open: HashMap<(Subject, Metric), u64>,
    incidents: BTreeMap<u64, Incident>,
    next_id: u64,
    /// Recent spans, for example traces.
    pub recent: RecentSpans,
    signatures: Signatures,
    /// Open new-signature anomalies and when they resolve (event time).
    signature_open: Vec<(u64, i64)>,
}

impl TenantDetection {
    /// Empty state.
    pub fn new(settings: DetectSettings, incident_settings: IncidentSettings) -> Self {
        Self {
            settings,
            incident_settings,
            ops: HashMap::new(),
            self_ops: HashMap::new(),
            edges: HashMap::new(),
            services: HashMap::new(),
            references: HashMap::new(),
            self_slow: SlowWatch::new(),
            unsettled: BTreeMap::new(),
            edge_slow: SlowWatch::new(),
            sliding: SlidingSettings::default(),
            graph: HashMap::new(),
            new_edges: Vec::new(),
            first_start_ns: None,
            last_start_ns: None,
            rewarm_until_ns: None,
            resumed_ns: None,
            window_ns: 10_000_000_000,
            anomalies: BTreeMap::new(),
            open: HashMap::new(),
            incidents: BTreeMap::new(),
            next_id: 1,
            recent: RecentSpans::default(),
            signatures: Signatures::default(),
            signature_open: Vec::new(),
        }
    }

    /// Feeds sealed RED windows (merged per operation across status codes)
    /// and sealed edge windows; `links` are the graph's (client, server)
    /// pairs, for grouping.
    ///
    /// Per window start, in order: each operation's detector; the slow
    /// spans of each operation against its reference; each service's
    /// sliding detector (a service without spans in a window the tenant
    /// had spans in sees zero calls: that is how a drop shows); then the
    /// references of healthy services learn the window.
    pub fn observe(
        &mut self,
        red: Vec<Sealed<RedKey>>,
        edges: Vec<Sealed<EdgeKey>>,
        self_time: Vec<Sealed<RedKey>>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        if let Some(s) = red.first() {
            self.window_ns = s.len_ns.max(1);
        }
        let by_start = by_start(red);
        // Which services were active, and which edges carried calls, per
        // window start: for the graph's changes.
        let mut active: BTreeMap<i64, Activity> = BTreeMap::new();
        for (start, ops) in &by_start {
            let (services, _) = active.entry(*start).or_default();
            services.extend(ops.iter().map(|(op, ..)| Arc::clone(&op.0)));
        }
        for s in &edges {
            active
                .entry(s.start_ns)
                .or_default()
                .1
                .insert(s.key.clone(), s.stats.calls);
        }
        for (start, ops) in by_start {
            self.first_start_ns.get_or_insert(start);
            if let Some(last) = self.last_start_ns
                && start.saturating_sub(last) > self.incident_settings.gap_ns
            {
                self.end_all(last.saturating_add(self.window_ns));
                // The sliding windows refill and the traffic mix settles
                // before anything new is judged.
                self.rewarm_until_ns = Some(start.saturating_add(self.sliding.slide_ns));
                self.resumed_ns = Some(start);
            }
            self.last_start_ns = Some(self.last_start_ns.map_or(start, |l| l.max(start)));
            // Event time moved to `start`: close what went stale or quiet
            // before this window's findings are grouped (after a data gap,
            // a new fault must not join the previous one's incident).
            self.tick(start);
            self.observe_start(start, ops, links);
        }
        self.observe_self_time(self_time, links);
        let sliding = self.sliding;
        for s in edges {
            let settings = self.settings;
            let mut events = self
                .edges
                .entry(s.key.clone())
                .or_insert_with(|| SeriesDetector::new(&settings))
                .observe(&settings, s.start_ns, s.stats);
            // Slow calls over the sliding minute, for edges with too few
            // calls a window for their quantiles. (Errors are the window
            // detector's; traffic is the graph watch's: the edge detector
            // sees only windows with calls.)
            events.extend(self.edge_slow.observe(
                &sliding,
                &s.key,
                s.start_ns,
                s.stats.calls,
                s.hist,
            ));
            if !events.is_empty() {
                self.apply(edge_subject(&s.key), events, links);
            }
        }
        if let Some(last) = self.last_start_ns {
            // Edges settle only when they carry calls again: keep their
            // windows for the onset search's memory.
            let done = last.saturating_sub(self.window_ns.saturating_mul(KEEP_EDGE_WINDOWS));
            self.edge_slow.forget_before(done);
        }
        for (start, (services, edges)) in active {
            self.watch_edges(start, &services, &edges, links);
        }
    }

    /// Self-time windows: a per-operation detector each, whose latency
    /// findings are reported as self-time ones. Windows arrive later than
    /// the RED ones (a span's self time is final only after the pairing
    /// TTL), so they are judged on their own, not with their window start's
    /// other findings; onsets are still their windows' starts.
    fn observe_self_time(
        &mut self,
        self_time: Vec<Sealed<RedKey>>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let sliding = self.sliding;
        // In name order (`by_start` sorts), as in `observe_start`.
        for (start, ops) in by_start(self_time) {
            for (op, calls, _, hist) in ops {
                let stats = CellStats::of(calls, 0, &hist);
                let settings = self.settings;
                let mut events: Vec<Event> = self
                    .self_ops
                    .entry(op.clone())
                    .or_insert_with(|| SeriesDetector::new(&settings))
                    .observe(&settings, start, stats)
                    .into_iter()
                    .filter_map(|e| e.renamed(Metric::as_self_time))
                    .collect();
                // A starved service (CPU, memory, I/O) is slower in its own
                // processing. At a few calls a minute no window has the
                // calls for quantiles, so an operation's spans beyond its
                // normal self time are counted over the sliding minute, as
                // slow calls are (per operation: a service's other
                // operations, whose own work is small, would dilute them).
                if own_span(op.2) {
                    events.extend(
                        self.self_slow
                            .observe(&sliding, &op, start, calls, hist)
                            .into_iter()
                            .filter_map(|e| {
                                e.renamed(|m| {
                                    (m == Metric::SlowRatio).then_some(Metric::SlowSelfTimeRatio)
                                })
                            }),
                    );
                }
                if !events.is_empty() {
                    let subject = Subject::Operation {
                        service: op.0.to_string(),
                        operation: op.1.to_string(),
                        kind: op.2,
                    };
                    self.apply(subject, events, links);
                }
            }
            self.self_slow
                .forget_before(start.saturating_sub(sliding.slide_ns.saturating_mul(2)));
        }
    }

    /// Graph changes at one window start: an edge never seen before (after
    /// the tenant's learning period), and an edge that used to carry steady
    /// calls and carried none for a sliding window while its client kept
    /// working.
    fn watch_edges(
        &mut self,
        start: i64,
        active: &HashSet<Arc<str>>,
        seen: &HashMap<EdgeKey, u64>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let learned = self
            .first_start_ns
            .is_some_and(|f| start.saturating_sub(f) >= self.settings.signature_learn_ns);
        let sliding = self.sliding;
        let keep = 1.0 - 1.0 / sliding.memory_windows;
        let window_ns = self.window_ns;
        let mut events: Vec<(Subject, Event, &'static str)> = Vec::new();
        // Silence is counted from when data resumed after a gap: nobody
        // saw the edge idle while no data came at all.
        let resumed = self.resumed_ns.map(|r| r.saturating_sub(window_ns));
        let mut ordered: Vec<(&EdgeKey, &u64)> = seen.iter().collect();
        ordered.sort_unstable();
        for (key, calls) in ordered {
            match self.graph.get_mut(key) {
                Some(w) => {
                    w.rate = w.rate * keep + *calls as f64 * (1.0 - keep);
                    let silence = start
                        .saturating_sub(w.last_ns.max(resumed.unwrap_or(i64::MIN)))
                        .saturating_sub(window_ns);
                    w.longest_silence_ns = w.longest_silence_ns.max(silence);
                    w.last_ns = start;
                    if w.vanished.take().is_some() {
                        events.push((
                            edge_subject(key),
                            Event::Resolved {
                                metric: Metric::TrafficDrop,
                                since_ns: start,
                            },
                            "edge_vanished",
                        ));
                    }
                }
                None => {
                    self.graph.insert(
                        key.clone(),
                        EdgeWatch {
                            rate: *calls as f64,
                            last_ns: start,
                            first_ns: start,
                            vanished: None,
                            longest_silence_ns: 0,
                        },
                    );
                    // A call path first seen after the learning period is
                    // news only when its first window carries more calls
                    // than a path too rare to have shown up before could:
                    // unseen over the whole history, its rate is at most 3
                    // per history (the rule of three, 95%), and the calls
                    // are tested against that at p 0.001 (a rare path's
                    // first sighting pages one time in a thousand).
                    let history = start
                        .saturating_sub(self.first_start_ns.unwrap_or(start))
                        .max(window_ns);
                    let rare_most = 3.0 * window_ns as f64 / history as f64;
                    if learned && poisson_score(*calls as f64, rare_most) >= NEW_EDGE_LOG10 {
                        self.new_edges.push((key.clone(), start, *calls));
                    }
                }
            }
        }
        // A vanished edge that stays away is the new shape of the graph:
        // its anomaly closes and the edge is forgotten.
        let forget_ns = self.settings.signature_regress_ns;
        let learn_ns = self.settings.signature_learn_ns;
        let mut gone = Vec::new();
        for (key, w) in &mut self.graph {
            let silent = start.saturating_sub(w.last_ns.max(resumed.unwrap_or(i64::MIN)));
            if w.vanished.is_some() && silent >= forget_ns {
                gone.push(key.clone());
                events.push((
                    edge_subject(key),
                    Event::Resolved {
                        metric: Metric::TrafficDrop,
                        since_ns: start,
                    },
                    "edge_vanished",
                ));
                continue;
            }
            if seen.contains_key(key) || w.vanished.is_some() || !active.contains(&key.client) {
                continue;
            }
            // A window in which the client worked without calling the
            // server teaches the rate too: an edge used in bursts (one
            // flow among many of its client) carries fewer calls per
            // window than while a burst lasts, and a pause between
            // bursts is no vanishing.
            w.rate *= keep;
            // Calls the edge would carry over the silence at its usual rate
            // (per window of its history).
            let windows = silent as f64 / window_ns as f64;
            let expected = w.rate * windows;
            // Beyond twice the longest pause the edge took, once it has
            // been known for the learning period (its pauses with it), so
            // that a flow used in bursts is not "gone" between them.
            if silent >= sliding.slide_ns
                && silent > w.longest_silence_ns.saturating_mul(2)
                && start.saturating_sub(w.first_ns) >= learn_ns
                && expected >= sliding.min_traffic
            {
                let onset = w.last_ns.saturating_add(window_ns);
                w.vanished = Some(onset);
                events.push((
                    edge_subject(key),
                    Event::Opened(Finding {
                        metric: Metric::TrafficDrop,
                        onset_ns: onset,
                        detected_ns: start,
                        observed: 0.0,
                        expected,
                        score: poisson_score(0.0, expected),
                    }),
                    "edge_vanished",
                ));
            }
        }
        for key in gone {
            self.graph.remove(&key);
        }
        // Applied in subject order, not the map's.
        events.sort_by(|a, b| a.0.cmp(&b.0));
        for (subject, event, name) in events {
            self.apply_named(subject, vec![event], links, Some(name));
        }
        for (key, at, calls) in std::mem::take(&mut self.new_edges) {
            self.event_anomaly(
                edge_subject(&key),
                "new_edge",
                at,
                calls,
                Vec::new(),
                format!("first calls from {} to {}", key.client, key.server),
                links,
            );
        }
    }

    /// One window start's operations.
    fn observe_start(
        &mut self,
        start: i64,
        ops: Vec<OpWindow>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        // In name order: findings of one window are grouped in the order
        // they are applied, which must not depend on hashing.
        let mut services: BTreeMap<Arc<str>, Counts> = BTreeMap::new();
        let mut tenant_calls = 0;
        for (op, calls, errors, hist) in &ops {
            let stats = CellStats::of(*calls, *errors, hist);
            let settings = self.settings;
            let events = self
                .ops
                .entry(op.clone())
                .or_insert_with(|| SeriesDetector::new(&settings))
                .observe(&settings, start, stats);
            if !events.is_empty() {
                let subject = Subject::Operation {
                    service: op.0.to_string(),
                    operation: op.1.to_string(),
                    kind: op.2,
                };
                self.apply(subject, events, links);
            }
            tenant_calls += calls;
            if !own_span(op.2) {
                continue;
            }
            let c = services.entry(Arc::clone(&op.0)).or_default();
            c.calls += calls;
            c.errors += errors;
            if let Some(slow) = self.references.get(op).and_then(|r| r.slow_in(hist)) {
                c.measured += calls;
                c.slow += slow;
            }
        }
        // Services known but silent in this window see zero calls.
        for known in self.services.keys() {
            services.entry(Arc::clone(known)).or_default();
        }
        let sliding = self.sliding;
        // This window's own-span durations wait until the window leaves the
        // sliding window; then they teach their operations' references if
        // nothing slow built up meanwhile.
        let mut own = OwnWindows::new();
        for (op, _, _, hist) in ops.into_iter().filter(|(op, ..)| own_span(op.2)) {
            own.entry(Arc::clone(&op.0)).or_default().push((op, hist));
        }
        if !own.is_empty() {
            self.unsettled.insert(start, own);
        }
        let mut settled: Vec<(Arc<str>, i64)> = Vec::new();
        for (service, counts) in services {
            let detector = self.services.entry(Arc::clone(&service)).or_default();
            let events = detector.observe(&sliding, start, counts, tenant_calls);
            for (at, latency_ok) in detector.take_settled() {
                if latency_ok {
                    settled.push((Arc::clone(&service), at));
                }
            }
            if !events.is_empty() {
                self.apply(
                    Subject::Service {
                        service: service.to_string(),
                    },
                    events,
                    links,
                );
            }
        }
        for (service, at) in settled {
            let Some(ops) = self.unsettled.get_mut(&at).and_then(|m| m.remove(&service)) else {
                continue;
            };
            for (op, hist) in ops {
                self.references
                    .entry(op)
                    .or_default()
                    .learn(&hist, &sliding);
            }
        }
        // Every service settles a window within the sliding window's length
        // (plus the onset search's memory); older ones are done.
        let done = start.saturating_sub(sliding.slide_ns.saturating_mul(2));
        self.unsettled = self.unsettled.split_off(&done);
    }

    /// Reads a converted span batch for error signatures new to their
    /// operation; each opens an anomaly at once (no window to wait for).
    pub fn observe_batch(&mut self, batch: &arrow_array::RecordBatch, edges: &SeriesSet<EdgeKey>) {
        let found = self.signatures.observe(
            batch,
            self.settings.signature_learn_ns,
            self.settings.signature_regress_ns,
            (
                self.settings.signature_confirm,
                self.settings.signature_confirm_ns,
            ),
        );
        if found.is_empty() {
            return;
        }
        // Built only when there is something to group.
        let links = links_of(edges);
        let links = &links;
        for n in found {
            let subject = Subject::Operation {
                service: n.op.0.to_string(),
                operation: n.op.1.to_string(),
                kind: n.op.2,
            };
            let detail = if n.regression {
                format!("error back after a quiet period: {}", n.signature)
            } else {
                format!("new error: {}", n.signature)
            };
            self.event_anomaly(
                subject,
                "new_error_signature",
                n.first_ns,
                n.count,
                n.traces,
                detail,
                links,
            );
        }
    }

    /// An anomaly that is an event rather than a shift (a new error
    /// signature, a new edge): it opens and closes by itself after the
    /// signature quiet period.
    #[allow(clippy::too_many_arguments)]
    fn event_anomaly(
        &mut self,
        subject: Subject,
        metric: &'static str,
        at_ns: i64,
        count: u64,
        traces: Vec<String>,
        detail: String,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let finding = Finding {
            metric: Metric::ErrorRatio,
            onset_ns: at_ns,
            detected_ns: at_ns,
            observed: count as f64,
            expected: 0.0,
            score: count as f64,
        };
        let incident = self.assign_incident(&subject, id, &finding, links);
        let severity = if count >= 5 {
            Severity::Major
        } else {
            Severity::Minor
        };
        if let Some(i) = self.incidents.get_mut(&incident) {
            i.severity = i.severity.max(severity);
        }
        self.anomalies.insert(
            id,
            Anomaly {
                id,
                subject,
                metric,
                onset_ns: at_ns,
                detected_ns: at_ns,
                last_ns: at_ns,
                resolved_ns: None,
                observed: count as f64,
                expected: 0.0,
                score: count as f64,
                severity,
                example_trace_ids: traces,
                incident,
                detail: Some(detail),
            },
        );
        self.signature_open
            .push((id, at_ns.saturating_add(self.settings.signature_quiet_ns)));
        self.trim();
    }

    fn apply(
        &mut self,
        subject: Subject,
        events: Vec<Event>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        self.apply_named(subject, events, links, None);
    }

    /// Applies events; `name` overrides the metric's name on new anomalies.
    fn apply_named(
        &mut self,
        subject: Subject,
        events: Vec<Event>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
        name: Option<&'static str>,
    ) {
        for event in events {
            match event {
                Event::Opened(f)
                    if self
                        .rewarm_until_ns
                        .is_some_and(|until| f.detected_ns < until) =>
                {
                    // Not judged yet: the detector tries again next window.
                    self.close_detector(&subject, f.metric);
                }
                Event::Opened(f) => self.open_anomaly(subject.clone(), f, links, name),
                Event::Ongoing(f) => {
                    if let Some(a) = self
                        .open
                        .get(&(subject.clone(), f.metric))
                        .and_then(|id| self.anomalies.get_mut(id))
                    {
                        a.last_ns = f.detected_ns;
                        a.observed = a.observed.max(f.observed);
                        a.score = a.score.max(f.score);
                        a.severity = a
                            .severity
                            .max(severity(f.metric, a.observed, a.expected, a.score));
                        let incident = a.incident;
                        let (sev, last) = (a.severity, a.last_ns);
                        if let Some(i) = self.incidents.get_mut(&incident) {
                            i.updated_ns = i.updated_ns.max(last);
                            i.severity = i.severity.max(sev);
                        }
                    }
                }
                Event::Resolved { metric, since_ns } => {
                    if let Some(a) = self
                        .open
                        .remove(&(subject.clone(), metric))
                        .and_then(|id| self.anomalies.get_mut(&id))
                    {
                        a.resolved_ns = Some(since_ns);
                        let incident = a.incident;
                        if let Some(i) = self.incidents.get_mut(&incident) {
                            i.updated_ns = i.updated_ns.max(since_ns);
                        }
                    }
                }
            }
        }
    }

    fn open_anomaly(
        &mut self,
        subject: Subject,
        mut f: Finding,
        links: &HashSet<(Arc<str>, Arc<str>)>,
        name: Option<&'static str>,
    ) {
        // A detector's memory (its sliding minute, its recent windows) may
        // reach back across a data gap; the shift was first seen when data
        // resumed, not in windows nobody observed.
        if let Some(resumed) = self.resumed_ns {
            f.onset_ns = f.onset_ns.max(resumed.min(f.detected_ns));
        }
        let (service, operation) = match &subject {
            Subject::Operation {
                service, operation, ..
            } => (service.as_str(), Some(operation.as_str())),
            // An edge's symptoms show on the called side.
            Subject::Edge { server, .. } => (server.as_str(), None),
            Subject::Service { service } => (service.as_str(), None),
        };
        let errors = f.metric == Metric::ErrorRatio;
        // Detectors know the change point to the window. Within it, the
        // first failed span of the subject is the earliest the change can
        // be placed (an error shift's window has at least one), and when
        // data resumed in that window after a gap, its first span is: the
        // onset is the first evidence, not the window's boundary.
        let resumed_here = self.resumed_ns == Some(f.onset_ns);
        if errors || resumed_here {
            let first = self.recent.first_start(Want {
                service,
                operation,
                from_ns: f.onset_ns,
                to_ns: f.onset_ns.saturating_add(self.window_ns),
                errors,
            });
            if let Some(first) = first {
                f.onset_ns = f.onset_ns.max(first.min(f.detected_ns));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let window = examples_until(f.detected_ns, f.onset_ns);
        let examples = {
            let mut ids = self.recent.examples(
                Want {
                    service,
                    operation,
                    from_ns: f.onset_ns,
                    to_ns: window,
                    errors,
                },
                EXAMPLES,
            );
            if ids.is_empty()
                && let Subject::Edge { client, .. } = &subject
            {
                ids = self.recent.examples(
                    Want {
                        service: client,
                        operation: None,
                        from_ns: f.onset_ns,
                        to_ns: window,
                        errors,
                    },
                    EXAMPLES,
                );
            }
            ids
        };
        let incident = self.assign_incident(&subject, id, &f, links);
        let anomaly = Anomaly {
            id,
            metric: name.unwrap_or(f.metric.as_str()),
            onset_ns: f.onset_ns,
            detected_ns: f.detected_ns,
            last_ns: f.detected_ns,
            resolved_ns: None,
            observed: f.observed,
            expected: f.expected,
            score: f.score,
            severity: severity(f.metric, f.observed, f.expected, f.score),
            example_trace_ids: examples,
            incident,
            subject: subject.clone(),
            detail: None,
        };
        if let Some(i) = self.incidents.get_mut(&incident) {
            i.severity = i.severity.max(anomaly.severity);
        }
        self.open.insert((subject, f.metric), id);
        self.anomalies.insert(id, anomaly);
        self.trim();
    }

    fn assign_incident(
        &mut self,
        subject: &Subject,
        anomaly: u64,
        f: &Finding,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) -> u64 {
        let services: Vec<&str> = subject.services();
        let connected = |a: &str, b: &str| {
            a == b
                || links
                    .iter()
                    .any(|(c, s)| (&**c == a && &**s == b) || (&**c == b && &**s == a))
        };
        let window = self.incident_settings.join_window_ns;
        // Overlapping in time: the anomaly began before the incident's last
        // change plus the window, and was seen after its onset minus the
        // window (a finding about old windows, from spans that arrived or
        // were paired late, does not join today's incident).
        // Touching: a service of one of the incident's anomalies still in
        // progress (or over within the window) is the anomaly's or its
        // neighbour's. Every service an incident ever touched would do
        // otherwise, and a long incident that spread over half the graph
        // would take in every later fault.
        let anomalies = &self.anomalies;
        let join = self.incidents.values_mut().find(|i| {
            i.state == IncidentState::Open
                && f.onset_ns <= i.updated_ns + window
                && f.detected_ns.max(f.onset_ns) >= i.onset_ns - window
                && i.anomalies
                    .iter()
                    .filter_map(|id| anomalies.get(id))
                    .filter(|a| a.resolved_ns.is_none_or(|r| r + window >= f.onset_ns))
                    .any(|a| {
                        a.subject
                            .services()
                            .iter()
                            .any(|s| services.iter().any(|n| connected(s, n)))
                    })
        });
        match join {
            Some(i) => {
                i.anomalies.push(anomaly);
                i.onset_ns = i.onset_ns.min(f.onset_ns);
                i.updated_ns = i.updated_ns.max(f.detected_ns);
                i.last_onset_ns = Some(i.last_onset_ns.map_or(f.onset_ns, |l| l.max(f.onset_ns)));
                i.services.extend(services.iter().map(|s| (*s).to_owned()));
                i.id
            }
            None => {
                let id = anomaly;
                self.incidents.insert(
                    id,
                    Incident {
                        id,
                        state: IncidentState::Open,
                        onset_ns: f.onset_ns,
                        updated_ns: f.detected_ns,
                        last_onset_ns: Some(f.onset_ns),
                        resolved_ns: None,
                        severity: Severity::Minor,
                        services: services.iter().map(|s| (*s).to_owned()).collect(),
                        anomalies: vec![anomaly],
                    },
                );
                id
            }
        }
    }

    /// Resolves incidents whose anomalies are all resolved and that have
    /// been quiet for the quiet period, at event time `now_ns`.
    pub fn tick(&mut self, now_ns: i64) {
        // An anomaly whose series has not confirmed it for the quiet period
        // (the series went silent: a data gap, a service scaled to zero) is
        // over as far as anyone can tell; its detector forgets it too, so
        // that a shift seen again later opens a new one.
        let stale_before = now_ns.saturating_sub(self.incident_settings.quiet_ns);
        let stale: Vec<((Subject, Metric), u64)> = self
            .open
            .iter()
            .filter(|(_, id)| {
                // A vanished edge is absent by definition; its watch
                // closes it.
                self.anomalies
                    .get(id)
                    .is_none_or(|a| a.metric != "edge_vanished" && a.last_ns < stale_before)
            })
            .map(|(k, id)| (k.clone(), *id))
            .collect();
        for ((subject, metric), id) in stale {
            self.open.remove(&(subject.clone(), metric));
            if let Some(a) = self.anomalies.get_mut(&id) {
                // Over since the last window that showed it.
                a.resolved_ns = Some(a.last_ns.saturating_add(self.window_ns));
            }
            self.close_detector(&subject, metric);
        }
        // A new signature is an event: it closes after its quiet period.
        let anomalies = &mut self.anomalies;
        self.signature_open.retain(|(id, until)| {
            if now_ns < *until {
                return true;
            }
            if let Some(a) = anomalies.get_mut(id) {
                a.resolved_ns = Some(*until);
            }
            false
        });
        let quiet = self.incident_settings.quiet_ns;
        for i in self.incidents.values_mut() {
            if i.state != IncidentState::Open {
                continue;
            }
            let all_resolved = i.anomalies.iter().all(|id| {
                self.anomalies
                    .get(id)
                    .is_none_or(|a| a.resolved_ns.is_some())
            });
            if all_resolved && now_ns >= i.updated_ns.saturating_add(quiet) {
                i.state = IncidentState::Resolved;
                i.resolved_ns = Some(i.updated_ns);
            }
        }
    }

    /// Ends every open anomaly and incident at `at_ns`: the tenant's data
    /// stopped (a gap longer than `gap_ns`), and nobody can tell whether a
    /// fault went on through it. What shows after the gap is new.
    fn end_all(&mut self, at_ns: i64) {
        let open: Vec<((Subject, Metric), u64)> = self.open.drain().collect();
        for ((subject, metric), id) in open {
            if let Some(a) = self.anomalies.get_mut(&id) {
                a.resolved_ns = Some(
                    a.last_ns
                        .saturating_add(self.window_ns)
                        .min(at_ns.max(a.last_ns)),
                );
            }
            self.close_detector(&subject, metric);
        }
        for (id, until) in self.signature_open.drain(..) {
            if let Some(a) = self.anomalies.get_mut(&id) {
                a.resolved_ns = Some(until.min(at_ns.max(a.onset_ns)));
            }
        }
        for w in self.graph.values_mut() {
            w.vanished = None;
        }
        for i in self.incidents.values_mut() {
            if i.state == IncidentState::Open {
                i.state = IncidentState::Resolved;
                i.resolved_ns = Some(i.updated_ns.max(i.onset_ns));
            }
        }
    }

    /// Tells the detector behind `subject` that `metric` is closed.
    fn close_detector(&mut self, subject: &Subject, metric: Metric) {
        match subject {
            Subject::Operation {
                service,
                operation,
                kind,
            } => {
                let key: OpKey = (
                    Arc::from(service.as_str()),
                    Arc::from(operation.as_str()),
                    *kind,
                );
                match metric.of_self_time() {
                    Some(latency) => {
                        if let Some(d) = self.self_ops.get_mut(&key) {
                            d.close(latency);
                        }
                    }
                    None if metric == Metric::SlowSelfTimeRatio => {
                        if let Some(d) = self.self_slow.detectors.get_mut(&key) {
                            d.close(Metric::SlowRatio);
                        }
                    }
                    None => {
                        if let Some(d) = self.ops.get_mut(&key) {
                            d.close(metric);
                        }
                    }
                }
            }
            Subject::Service { service } => {
                if let Some(d) = self.services.get_mut(service.as_str()) {
                    d.close(metric);
                }
            }
            Subject::Edge {
                client,
                server,
                connection,
            } => {
                for (k, d) in &mut self.edges {
                    if &*k.client == client
                        && &*k.server == server
                        && k.connection.as_str() == connection
                    {
                        d.close(metric);
                    }
                }
                for (k, d) in &mut self.edge_slow.detectors {
                    if &*k.client == client
                        && &*k.server == server
                        && k.connection.as_str() == connection
                    {
                        d.close(metric);
                    }
                }
                // A vanished edge's watch, likewise.
                for (k, w) in &mut self.graph {
                    if &*k.client == client && &*k.server == server {
                        w.vanished = None;
                    }
                }
            }
        }
    }

    fn trim(&mut self) {
        while self.anomalies.len() > MAX_ANOMALIES {
            let oldest = self
                .anomalies
                .iter()
                .find(|(_, a)| a.resolved_ns.is_some())
                .map(|(id, _)| *id)
                .or_else(|| self.anomalies.keys().next().copied());
            if let Some(id) = oldest {
                self.anomalies.remove(&id);
            }
        }
        while self.incidents.len() > MAX_INCIDENTS {
            let oldest = self
                .incidents
                .iter()
                .find(|(_, i)| i.state == IncidentState::Resolved)
                .map(|(id, _)| *id)
                .or_else(|| self.incidents.keys().next().copied());
            if let Some(id) = oldest {
                self.incidents.remove(&id);
            }
        }
    }

    /// Anomalies active in `[from, to)` (onset before `to`, not resolved
    /// before `from`), newest first.
    pub fn anomalies(&self, from_ns: i64, to_ns: i64) -> Vec<Anomaly> {
        self.anomalies
            .values()
            .rev()
            .filter(|a| a.onset_ns < to_ns && a.resolved_ns.is_none_or(|r| r >= from_ns))
            .cloned()
            .collect()
    }

    /// Every incident kept, newest first.
    pub fn incidents(&self) -> Vec<Incident> {
        self.incidents.values().rev().cloned().collect()
    }

    /// One incident and its anomalies.
    pub fn incident(&self, id: u64) -> Option<(Incident, Vec<Anomaly>)> {
        let i = self.incidents.get(&id)?;
        let anomalies = i
            .anomalies
            .iter()
            .filter_map(|a| self.anomalies.get(a).cloned())
            .collect();
        Some((i.clone(), anomalies))
    }
}

/// Saved form of a [`TenantDetection`]: everything learned and found,
/// keys as plain strings (a series key as its stored parts).
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    version: u32,
    ops: Vec<(String, String, i8, SeriesDetector)>,
    #[serde(default)]
    self_ops: Vec<(String, String, i8, SeriesDetector)>,
    edges: Vec<((String, String, i8, i8), SeriesDetector)>,
    services: Vec<(String, ServiceDetector)>,
    references: Vec<(String, String, i8, OpReference)>,
    #[serde(default)]
    self_sliding: Vec<(String, String, i8, ServiceDetector)>,
    #[serde(default)]
    self_refs: Vec<(String, String, i8, OpReference)>,
    graph: Vec<((String, String, i8, i8), EdgeWatch)>,
    #[serde(default)]
    edge_sliding: Vec<((String, String, i8, i8), ServiceDetector)>,
    #[serde(default)]
    edge_refs: Vec<((String, String, i8, i8), OpReference)>,
    signatures: Signatures,
    anomalies: Vec<SavedAnomaly>,
    open: Vec<(Subject, Metric, u64)>,
    incidents: Vec<Incident>,
    next_id: u64,
    signature_open: Vec<(u64, i64)>,
    first_start_ns: Option<i64>,
    #[serde(default)]
    last_start_ns: Option<i64>,
    #[serde(default)]
    rewarm_until_ns: Option<i64>,
    #[serde(default)]
    resumed_ns: Option<i64>,
    window_ns: i64,
}

/// Bumped when the saved form changes incompatibly; an older snapshot is
/// then ignored (detection learns again) rather than misread.
const SNAPSHOT_VERSION: u32 = 1;

/// An [`Anomaly`] with its metric as an owned name.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAnomaly {
    id: u64,
    subject: Subject,
    metric: String,
    onset_ns: i64,
    detected_ns: i64,
    last_ns: i64,
    resolved_ns: Option<i64>,
    observed: f64,
    expected: f64,
    score: f64,
    severity: Severity,
    example_trace_ids: Vec<String>,
    incident: u64,
    detail: Option<String>,
}

/// Every anomaly metric name, for restoring `Anomaly::metric`.
const METRIC_NAMES: [&str; 14] = [
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "self_time_p50",
    "self_time_p90",
    "self_time_p99",
    "error_ratio",
    "slow_ratio",
    "slow_self_time_ratio",
    "traffic_drop",
    "traffic_surge",
    "new_error_signature",
    "new_edge",
    "edge_vanished",
];

/// A map by operation as plain-string entries.
fn op_entries<T: Clone>(m: &HashMap<OpKey, T>) -> Vec<(String, String, i8, T)> {
    m.iter()
        .map(|(k, v)| (k.0.to_string(), k.1.to_string(), k.2, v.clone()))
        .collect()
}

fn from_op_entries<T>(v: Vec<(String, String, i8, T)>) -> HashMap<OpKey, T> {
    v.into_iter()
        .map(|(a, b, c, t)| ((Arc::from(a), Arc::from(b), c), t))
        .collect()
}

/// A map by edge as entries keyed by the edge's stored parts.
fn edge_entries<T: Clone>(m: &HashMap<EdgeKey, T>) -> Vec<((String, String, i8, i8), T)> {
    m.iter()
        .map(|(k, v)| {
            let (a, b, c, d) = crate::series::SeriesKey::parts(k);
            ((a.to_owned(), b.to_owned(), c, d), v.clone())
        })
        .collect()
}

/// Entries whose parts no longer make an edge are dropped.
fn from_edge_entries<T>(v: Vec<((String, String, i8, i8), T)>) -> HashMap<EdgeKey, T> {
    v.into_iter()
        .filter_map(|(p, t)| {
            let key = <EdgeKey as crate::series::SeriesKey>::from_parts(&p.0, &p.1, p.2, p.3)?;
            Some((key, t))
        })
        .collect()
}

impl TenantDetection {
    /// Everything learned and found, to be restored by [`Self::restore`].
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            ops: op_entries(&self.ops),
            self_ops: op_entries(&self.self_ops),
            edges: edge_entries(&self.edges),
            services: self
                .services
                .iter()
                .map(|(k, d)| (k.to_string(), d.clone()))
                .collect(),
            references: op_entries(&self.references),
            self_sliding: op_entries(&self.self_slow.detectors),
            self_refs: op_entries(&self.self_slow.refs),
            graph: edge_entries(&self.graph),
            edge_sliding: edge_entries(&self.edge_slow.detectors),
            edge_refs: edge_entries(&self.edge_slow.refs),
            signatures: self.signatures.clone(),
            anomalies: self
                .anomalies
                .values()
                .map(|a| SavedAnomaly {
                    id: a.id,
                    subject: a.subject.clone(),
                    metric: a.metric.to_owned(),
                    onset_ns: a.onset_ns,
                    detected_ns: a.detected_ns,
                    last_ns: a.last_ns,
                    resolved_ns: a.resolved_ns,
                    observed: a.observed,
                    expected: a.expected,
                    score: a.score,
                    severity: a.severity,
                    example_trace_ids: a.example_trace_ids.clone(),
                    incident: a.incident,
                    detail: a.detail.clone(),
                })
                .collect(),
            open: self
                .open
                .iter()
                .map(|((s, m), id)| (s.clone(), *m, *id))
                .collect(),
            incidents: self.incidents.values().cloned().collect(),
            next_id: self.next_id,
            signature_open: self.signature_open.clone(),
            first_start_ns: self.first_start_ns,
            last_start_ns: self.last_start_ns,
            rewarm_until_ns: self.rewarm_until_ns,
            resumed_ns: self.resumed_ns,
            window_ns: self.window_ns,
        };
        serde_json::to_vec(&snapshot)
    }

    /// State saved by [`Self::snapshot`]; settings are the current ones.
    /// Entries that no longer make sense (an unknown metric, a bad key) are
    /// dropped; a snapshot of another version is refused.
    pub fn restore(
        settings: DetectSettings,
        incident_settings: IncidentSettings,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let s: Snapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!(
                "saved by format version {}, this build reads {SNAPSHOT_VERSION}",
                s.version
            ));
        }
        let mut d = Self::new(settings, incident_settings);
        d.ops = from_op_entries(s.ops);
        d.self_ops = from_op_entries(s.self_ops);
        d.edges = from_edge_entries(s.edges);
        d.services = s
            .services
            .into_iter()
            .map(|(k, det)| (Arc::from(k), det))
            .collect();
        d.references = from_op_entries(s.references);
        d.self_slow.detectors = from_op_entries(s.self_sliding);
        d.self_slow.refs = from_op_entries(s.self_refs);
        d.graph = from_edge_entries(s.graph);
        d.edge_slow.detectors = from_edge_entries(s.edge_sliding);
        d.edge_slow.refs = from_edge_entries(s.edge_refs);
        d.signatures = s.signatures;
        d.anomalies = s
            .anomalies
            .into_iter()
            .filter_map(|a| {
                let metric = METRIC_NAMES.iter().find(|m| **m == a.metric)?;
                Some((
                    a.id,
                    Anomaly {
                        id: a.id,
                        subject: a.subject,
                        metric,
                        onset_ns: a.onset_ns,
                        detected_ns: a.detected_ns,
                        last_ns: a.last_ns,
                        resolved_ns: a.resolved_ns,
                        observed: a.observed,
                        expected: a.expected,
                        score: a.score,
                        severity: a.severity,
                        example_trace_ids: a.example_trace_ids,
                        incident: a.incident,
                        detail: a.detail,
                    },
                ))
            })
            .collect();
        d.open = s
            .open
            .into_iter()
            .map(|(subject, metric, id)| ((subject, metric), id))
            .collect();
        d.incidents = s.incidents.into_iter().map(|i| (i.id, i)).collect();
        d.next_id = s.next_id.max(1);
        d.signature_open = s.signature_open;
        d.first_start_ns = s.first_start_ns;
        d.last_start_ns = s.last_start_ns;
        d.rewarm_until_ns = s.rewarm_until_ns;
        d.resumed_ns = s.resumed_ns;
        d.window_ns = s.window_ns.max(1);
        Ok(d)
    }
}

/// Sealed RED-keyed windows merged over status codes (error ratio needs
/// them together, and latency is of all calls), per window start.
fn by_start(sealed: Vec<Sealed<RedKey>>) -> BTreeMap<i64, Vec<OpWindow>> {
    let mut merged: BTreeMap<(i64, OpKey), (u64, u64, Histogram<u64>)> = BTreeMap::new();
    for s in sealed {
        let key = (
            s.start_ns,
            (
                Arc::clone(&s.key.service),
                Arc::clone(&s.key.operation),
                s.key.kind,
            ),
        );
        match merged.get_mut(&key) {
            Some((calls, errors, h)) => {
                *calls += s.stats.calls;
                *errors += s.stats.errors;
                // Same settings on both sides: adding cannot fail.
                let _ = h.add(&s.hist);
            }
            None => {
                merged.insert(key, (s.stats.calls, s.stats.errors, s.hist));
            }
        }
    }
    let mut out: BTreeMap<i64, Vec<OpWindow>> = BTreeMap::new();
    for ((start, op), (calls, errors, hist)) in merged {
        out.entry(start)
            .or_default()
            .push((op, calls, errors, hist));
    }
    out
}

/// The service graph's (client, server) pairs, for grouping anomalies.
pub fn links_of(edges: &SeriesSet<EdgeKey>) -> HashSet<(Arc<str>, Arc<str>)> {
    edges
        .keys()
        .map(|k| (Arc::clone(&k.client), Arc::clone(&k.server)))
        .collect()
}

/// Examples come from the onset to the end of the confirming window; the
/// window length is not known here, so up to a minute past its start.
fn examples_until(detected_ns: i64, onset_ns: i64) -> i64 {
    detected_ns.max(onset_ns).saturating_add(60_000_000_000)
}

/// Whether a span of this kind is the service's own work (not a call out,
/// whose duration and status are the callee's).
fn own_span(kind: i8) -> bool {
    !matches!(
        kind,
        causeway_model::schema::kind::CLIENT | causeway_model::schema::kind::PRODUCER
    )
}

/// Severity from how far and how much.
fn severity(metric: Metric, observed: f64, expected: f64, score: f64) -> Severity {
    match metric {
        Metric::SlowRatio | Metric::SlowSelfTimeRatio => {
            if observed >= 0.5 {
                Severity::Critical
            } else if observed >= 0.2 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
        Metric::TrafficDrop => {
            if observed <= expected * 0.1 {
                Severity::Critical
            } else {
                Severity::Major
            }
        }
        Metric::TrafficSurge => Severity::Major,
        Metric::ErrorRatio => {
            if observed >= 0.5 {
                Severity::Critical
            } else if observed >= 0.1 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
        _ => {
            let ratio = observed / expected.max(1.0);
            if ratio >= 5.0 || score >= 30.0 {
                Severity::Critical
            } else if ratio >= 2.0 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
    }
}
