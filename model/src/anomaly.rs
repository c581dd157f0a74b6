//! Anomalies and incidents: what detection hands to correlation and to
//! people.

use std::collections::BTreeSet;

/// What an anomaly is about.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Subject {
    /// One operation of one service (span name and kind).
    Operation {
        /// `service.name`.
        service: String,
        /// Span name.
        operation: String,
        /// OTLP span kind.
        kind: i8,
    },
    /// One service as a whole (its own spans, over a sliding window).
    Service {
        /// `service.name`.
        service: String,
    },
    /// One edge of the service graph.
    Edge {
        /// Calling service.
        client: String,
        /// Called service or virtual node.
        server: String,
        /// `connection_type` label.
        connection: String,
    },
}

impl Subject {
    /// The services it touches.
    pub fn services(&self) -> Vec<&str> {
        match self {
            Subject::Operation { service, .. } | Subject::Service { service } => vec![service],
            Subject::Edge { client, server, .. } => vec![client, server],
        }
    }
}

impl std::fmt::Display for Subject {
    /// `service operation`, `service`, or `client → server`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Operation {
                service, operation, ..
            } => write!(f, "{service} {operation}"),
            Subject::Service { service } => f.write_str(service),
            Subject::Edge { client, server, .. } => write!(f, "{client} → {server}"),
        }
    }
}

/// How bad.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    /// Worth a look.
    Minor,
    /// Clearly broken for some users.
    Major,
    /// Broken for many, or by a lot.
    Critical,
}

impl Severity {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

/// One metric of one subject behaving unlike its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Unique within the tenant.
    pub id: u64,
    /// What.
    pub subject: Subject,
    /// Which metric (`latency_p50`, `error_ratio`, …).
    pub metric: &'static str,
    /// Start of the shift (change point), unix ns.
    pub onset_ns: i64,
    /// Start of the window that confirmed it, unix ns.
    pub detected_ns: i64,
    /// Latest window still anomalous, unix ns.
    pub last_ns: i64,
    /// When it went back to normal, unix ns.
    pub resolved_ns: Option<i64>,
    /// The metric when detected (µs for latency, a ratio for errors), and
    /// the worst since.
    pub observed: f64,
    /// The baseline.
    pub expected: f64,
    /// Robust z-score when detected, and the highest since.
    pub score: f64,
    /// From score and ratio.
    pub severity: Severity,
    /// Traces that show it (slow or failed spans of the subject).
    pub example_trace_ids: Vec<String>,
    /// The incident it belongs to.
    pub incident: u64,
    /// What is new or different, in words (e.g. the new error signature).
    pub detail: Option<String>,
}

/// Whether an incident is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IncidentState {
    /// Anomalies are open, or closed less than the quiet period ago.
    Open,
    /// Every anomaly closed and the quiet period passed.
    Resolved,
}

impl IncidentState {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// Anomalies that overlap in time and touch connected services.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// Unique within the tenant.
    pub id: u64,
    /// Lifecycle.
    pub state: IncidentState,
    /// Earliest onset of its anomalies, unix ns.
    pub onset_ns: i64,
    /// Latest change, unix ns (event time).
    pub updated_ns: i64,
    /// Latest onset of its anomalies, unix ns: the last time something
    /// changed, as opposed to when a change was noticed, went on or ended
    /// (an edge found gone minutes after it stopped carrying calls changed
    /// at its onset). `None` in incidents stored before it was kept.
    #[serde(default)]
    pub last_onset_ns: Option<i64>,
    /// When it was resolved, unix ns.
    pub resolved_ns: Option<i64>,
    /// Worst severity of its anomalies.
    pub severity: Severity,
    /// Services its anomalies touch.
    pub services: BTreeSet<String>,
    /// Its anomalies' ids, in detection order.
    pub anomalies: Vec<u64>,
}
