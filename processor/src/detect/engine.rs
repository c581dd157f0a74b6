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
use super::signatures::Signatures;
use super::{DetectSettings, Event, Finding, Metric, SeriesDetector};
use crate::graph::EdgeKey;
use crate::red::RedKey;
use crate::series::{CellStats, Sealed, SeriesSet};

/// Anomalies kept per tenant (the oldest resolved ones go first).
const MAX_ANOMALIES: usize = 10_000;
/// Incidents kept per tenant.
const MAX_INCIDENTS: usize = 1_000;
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
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            join_window_ns: 5 * 60_000_000_000,
            quiet_ns: 5 * 60_000_000_000,
        }
    }
}

/// An operation: RED series merged over status codes.
type OpKey = (Arc<str>, Arc<str>, i8);

/// Detection state of one tenant.
#[derive(Debug)]
pub struct TenantDetection {
    settings: DetectSettings,
    incident_settings: IncidentSettings,
    ops: HashMap<OpKey, SeriesDetector>,
    edges: HashMap<EdgeKey, SeriesDetector>,
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
            edges: HashMap::new(),
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
    pub fn observe(
        &mut self,
        red: Vec<Sealed<RedKey>>,
        edges: Vec<Sealed<EdgeKey>>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        // Merge status codes: error ratio needs them together, and latency
        // is of all calls.
        let mut merged: BTreeMap<(i64, OpKey), (u64, u64, Histogram<u64>)> = BTreeMap::new();
        for s in red {
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
        for ((start, op), (calls, errors, hist)) in merged {
            let stats = CellStats::of(calls, errors, &hist);
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
        }
        for s in edges {
            let settings = self.settings;
            let events = self
                .edges
                .entry(s.key.clone())
                .or_insert_with(|| SeriesDetector::new(&settings))
                .observe(&settings, s.start_ns, s.stats);
            if !events.is_empty() {
                let subject = Subject::Edge {
                    client: s.key.client.to_string(),
                    server: s.key.server.to_string(),
                    connection: s.key.connection.as_str().to_owned(),
                };
                self.apply(subject, events, links);
            }
        }
    }

    /// Reads a converted span batch for error signatures new to their
    /// operation; each opens an anomaly at once (no window to wait for).
    pub fn observe_batch(&mut self, batch: &arrow_array::RecordBatch, edges: &SeriesSet<EdgeKey>) {
        let found = self
            .signatures
            .observe(batch, self.settings.signature_learn_ns);
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
            let id = self.next_id;
            self.next_id += 1;
            let finding = Finding {
                metric: Metric::ErrorRatio,
                onset_ns: n.first_ns,
                detected_ns: n.first_ns,
                observed: n.count as f64,
                expected: 0.0,
                score: n.count as f64,
            };
            let incident = self.assign_incident(&subject, id, &finding, links);
            let severity = if n.count >= 5 {
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
                    metric: "new_error_signature",
                    onset_ns: n.first_ns,
                    detected_ns: n.first_ns,
                    last_ns: n.first_ns,
                    resolved_ns: None,
                    observed: n.count as f64,
                    expected: 0.0,
                    score: n.count as f64,
                    severity,
                    example_trace_ids: n.traces,
                    incident,
                    detail: Some(format!("new error: {}", n.signature)),
                },
            );
            self.signature_open.push((
                id,
                n.first_ns.saturating_add(self.settings.signature_quiet_ns),
            ));
            self.trim();
        }
    }

    fn apply(
        &mut self,
        subject: Subject,
        events: Vec<Event>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        for event in events {
            match event {
                Event::Opened(f) => self.open_anomaly(subject.clone(), f, links),
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
        f: Finding,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let window = examples_until(f.detected_ns, f.onset_ns);
        let examples = {
            let (service, operation) = match &subject {
                Subject::Operation {
                    service, operation, ..
                } => (service.as_str(), Some(operation.as_str())),
                // An edge's symptoms show on the called side.
                Subject::Edge { server, .. } => (server.as_str(), None),
            };
            let errors = f.metric == Metric::ErrorRatio;
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
            metric: f.metric.as_str(),
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
        let join = self.incidents.values_mut().find(|i| {
            i.state == IncidentState::Open
                && f.onset_ns <= i.updated_ns + self.incident_settings.join_window_ns
                && i.services
                    .iter()
                    .any(|s| services.iter().any(|n| connected(s, n)))
        });
        match join {
            Some(i) => {
                i.anomalies.push(anomaly);
                i.onset_ns = i.onset_ns.min(f.onset_ns);
                i.updated_ns = i.updated_ns.max(f.detected_ns);
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

/// Severity from how far and how much.
fn severity(metric: Metric, observed: f64, expected: f64, score: f64) -> Severity {
    match metric {
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
