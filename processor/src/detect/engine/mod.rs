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
use super::recurrence::{Episode, Held, Recurrence};
use super::reference::{OpReference, SlowWatch};
use super::service::{Counts, ServiceDetector, SlidingSettings, poisson_score};
use super::signatures::Signatures;
use super::{DetectSettings, Event, Finding, Metric, SeriesDetector};
use crate::graph::EdgeKey;
use crate::red::RedKey;
use crate::series::{CellStats, Sealed, SeriesSet};

mod edges;
mod incidents;
mod observe;
mod snapshot;

pub use edges::links_of;
use edges::{EdgeWatch, edge_subject};

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
    /// Incidents touched since the last `take_changes` (not persisted: a
    /// restarted correlator looks at every incident once).
    touched: std::collections::BTreeSet<u64>,
    /// Version last handed out of each open incident (`updated_ns`,
    /// state); an incident leaves it once resolved, as it no longer
    /// changes. Bounded by the open incidents.
    reported: HashMap<u64, (i64, IncidentState)>,
    next_id: u64,
    /// Recent spans, for example traces.
    pub recent: RecentSpans,
    signatures: Signatures,
    /// Open new-signature anomalies and when they resolve (event time).
    signature_open: Vec<(u64, i64)>,
    /// Past episodes per series, and the findings held as a habit of theirs.
    recurrence: Recurrence,
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
            touched: std::collections::BTreeSet::new(),
            reported: HashMap::new(),
            next_id: 1,
            recent: RecentSpans::default(),
            signatures: Signatures::default(),
            signature_open: Vec::new(),
            recurrence: Recurrence::default(),
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

    /// Incidents opened, grown or resolved since the last call, oldest
    /// first. A window that confirms an ongoing anomaly without moving its
    /// incident is not a change.
    pub fn take_changes(&mut self) -> Vec<Incident> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.touched) {
            let Some(i) = self.incidents.get(&id) else {
                self.reported.remove(&id);
                continue;
            };
            let version = (i.updated_ns, i.state);
            if self.reported.get(&id) == Some(&version) {
                continue;
            }
            if i.state == IncidentState::Open {
                self.reported.insert(id, version);
            } else {
                self.reported.remove(&id);
            }
            out.push(i.clone());
        }
        out
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
