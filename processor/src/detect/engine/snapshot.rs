//! The saved form of a tenant's detection state, so a restart resumes
//! what was learned and found.

use super::*;

/// Saved form of a [`TenantDetection`]: everything learned and found,
/// keys as plain strings (a series key as its stored parts).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Snapshot {
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
    /// Past episodes per series (absent in snapshots of older builds).
    #[serde(default)]
    episodes: Vec<(Subject, Metric, Vec<Episode>)>,
    /// Held findings: subject, metric, name, onset, detected, observed,
    /// expected, score, hold end, habit score.
    #[serde(default)]
    held: Vec<SavedHeld>,
}

/// A held finding as saved.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SavedHeld {
    subject: Subject,
    metric: Metric,
    name: Option<String>,
    onset_ns: i64,
    detected_ns: i64,
    observed: f64,
    expected: f64,
    score: f64,
    until_ns: i64,
    habit_score: f64,
}

/// Bumped when the saved form changes incompatibly; an older snapshot is
/// then ignored (detection learns again) rather than misread.
pub(super) const SNAPSHOT_VERSION: u32 = 1;

/// An [`Anomaly`] with its metric as an owned name.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SavedAnomaly {
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
pub(super) const METRIC_NAMES: [&str; 14] = [
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
pub(super) fn op_entries<T: Clone>(m: &HashMap<OpKey, T>) -> Vec<(String, String, i8, T)> {
    m.iter()
        .map(|(k, v)| (k.0.to_string(), k.1.to_string(), k.2, v.clone()))
        .collect()
}

pub(super) fn from_op_entries<T>(v: Vec<(String, String, i8, T)>) -> HashMap<OpKey, T> {
    v.into_iter()
        .map(|(a, b, c, t)| ((Arc::from(a), Arc::from(b), c), t))
        .collect()
}

/// A map by edge as entries keyed by the edge's stored parts.
pub(super) fn edge_entries<T: Clone>(
    m: &HashMap<EdgeKey, T>,
) -> Vec<((String, String, i8, i8), T)> {
    m.iter()
        .map(|(k, v)| {
            let (a, b, c, d) = crate::series::SeriesKey::parts(k);
            ((a.to_owned(), b.to_owned(), c, d), v.clone())
        })
        .collect()
}

/// Entries whose parts no longer make an edge are dropped.
pub(super) fn from_edge_entries<T>(v: Vec<((String, String, i8, i8), T)>) -> HashMap<EdgeKey, T> {
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
            episodes: self
                .recurrence
                .episodes
                .iter()
                .map(|((s, m), v)| (s.clone(), *m, v.iter().copied().collect()))
                .collect(),
            held: self
                .recurrence
                .held
                .iter()
                .map(|((s, m), h)| SavedHeld {
                    subject: s.clone(),
                    metric: *m,
                    name: h.name.map(str::to_owned),
                    onset_ns: h.finding.onset_ns,
                    detected_ns: h.finding.detected_ns,
                    observed: h.finding.observed,
                    expected: h.finding.expected,
                    score: h.finding.score,
                    until_ns: h.until_ns,
                    habit_score: h.habit_score,
                })
                .collect(),
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
        d.recurrence.episodes = s
            .episodes
            .into_iter()
            .map(|(subject, metric, v)| ((subject, metric), v.into_iter().collect()))
            .collect();
        d.recurrence.held = s
            .held
            .into_iter()
            .filter_map(|h| {
                let name = match h.name {
                    Some(n) => Some(*METRIC_NAMES.iter().find(|m| **m == n)?),
                    None => None,
                };
                Some((
                    (h.subject, h.metric),
                    Held {
                        finding: Finding {
                            metric: h.metric,
                            onset_ns: h.onset_ns,
                            detected_ns: h.detected_ns,
                            observed: h.observed,
                            expected: h.expected,
                            score: h.score,
                        },
                        name,
                        until_ns: h.until_ns,
                        habit_score: h.habit_score,
                    },
                ))
            })
            .collect();
        Ok(d)
    }
}
