//! Root-cause analysis reports: what the correlator concludes about an
//! incident, and the evidence behind every claim.

use serde::{Deserialize, Serialize};

/// What most likely caused the incident at a culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// A deploy of the culprit (a connector, a webhook, or a new
    /// `service.version` seen in its spans) shortly before onset.
    Deploy,
    /// A commit or merged pull request touching the culprit.
    Commit,
    /// The culprit's code fails: new or more errors originate there.
    CodeError,
    /// The culprit's code takes another path: what it usually logs or
    /// calls stopped, or something it never did started.
    BehaviourChange,
    /// The culprit itself got slower (self time grew) with nothing new in
    /// its code path: CPU, memory or I/O saturation.
    Resource,
    /// A dependency the culprit calls.
    Dependency,
    /// The culprit's traffic changed.
    Traffic,
}

impl CauseKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Deploy => "deploy",
            CauseKind::Commit => "commit",
            CauseKind::CodeError => "code_error",
            CauseKind::BehaviourChange => "behaviour_change",
            CauseKind::Resource => "resource",
            CauseKind::Dependency => "dependency",
            CauseKind::Traffic => "traffic",
        }
    }

    /// In words, for narratives.
    pub fn describe(self) -> &'static str {
        match self {
            CauseKind::Deploy => "a deploy",
            CauseKind::Commit => "a code change",
            CauseKind::CodeError => "errors originating in its code",
            CauseKind::BehaviourChange => "a change in what its code does",
            CauseKind::Resource => "resource saturation (its own processing got slower)",
            CauseKind::Dependency => "a dependency",
            CauseKind::Traffic => "a change in traffic",
        }
    }
}

/// One piece of evidence; each names something a user can look up in
/// causeway or in the system it came from.
// Field names say what they hold; the type's doc says what it means.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// An event pattern (log line or exception template) of the service
    /// whose rate departs from its reference.
    EventPattern {
        /// Service and span name where it occurs (most often).
        service: String,
        operation: String,
        /// The template.
        template: String,
        /// Occurrences in the window, and expected from the reference
        /// (scaled to the service's span volume in the window).
        observed: f64,
        expected: f64,
        /// Signed deviance z-score.
        score: f64,
        /// Traces that show it (for a vanished pattern: traces of the
        /// operation that no longer log it).
        trace_ids: Vec<String>,
    },
    /// Errors that originate in the service: spans in error whose children
    /// are not.
    ErrorOrigin {
        service: String,
        operation: String,
        observed: f64,
        expected: f64,
        score: f64,
        trace_ids: Vec<String>,
    },
    /// The service's own processing time (self time) shifted.
    SelfTime {
        service: String,
        /// The operation that moved most.
        operation: String,
        /// Median self time in the window and the reference, ms.
        observed_ms: f64,
        expected_ms: f64,
        /// Spans compared.
        spans: u64,
        score: f64,
        trace_ids: Vec<String>,
    },
    /// A detected anomaly of the incident.
    Anomaly {
        id: u64,
        metric: String,
        subject: String,
        observed: f64,
        expected: f64,
    },
    /// A version of the service seen in spans for the first time.
    VersionChange {
        service: String,
        version: String,
        /// First span with it, unix ns.
        first_seen_ns: i64,
        previous: Vec<String>,
        trace_ids: Vec<String>,
    },
    /// An instance of the service (`service.instance.id`, else the pod)
    /// seen for the first time: a restart, a rollout or a scale-out.
    NewInstance {
        service: String,
        instance: String,
        /// First span from it, unix ns.
        first_seen_ns: i64,
        /// Instances the reference saw.
        previous: usize,
        trace_ids: Vec<String>,
    },
    /// A stored signal (commit, deploy, ticket, message ...).
    Signal {
        kind: String,
        source: String,
        external_id: String,
        title: String,
        url: Option<String>,
        /// Signal time, unix ns.
        time_ns: i64,
        /// Why it matched (`service`, `time`, and content terms).
        matched: Vec<String>,
    },
}

/// One ranked explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// Rank, from 1.
    pub rank: u32,
    /// The culprit service.
    pub service: String,
    /// Its operation that shows the problem most, when one does.
    pub operation: Option<String>,
    /// The most likely cause.
    pub cause: CauseKind,
    /// 0..1: the hypothesis's share of the evidence (a softmax over
    /// candidates' scores), not a calibrated probability.
    pub confidence: f64,
    /// The localization score (z-score scale).
    pub score: f64,
    /// A change (deploy, commit, PR) that likely caused it, as signal
    /// evidence, when one matches.
    pub change: Option<Evidence>,
    /// Why.
    pub evidence: Vec<Evidence>,
    /// Verdicts people gave on earlier incidents' hypotheses that stood on
    /// the same evidence; they weigh in `score`.
    #[serde(default)]
    pub precedents: Vec<Precedent>,
}

/// An earlier incident's verdict on the same evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precedent {
    /// The earlier incident (and report) id.
    pub incident: u64,
    /// Confirmed (true) or rejected there.
    pub confirmed: bool,
    /// The evidence matched: kind, service, and operation or template.
    pub evidence: String,
}

/// A ticket or message that reports the incident's symptoms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedReport {
    /// Signal evidence.
    pub signal: Evidence,
    /// Relevance score (BM25 over the symptoms, time and service match).
    pub score: f64,
}

/// One event of the incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix ns.
    pub time_ns: i64,
    /// What happened.
    pub what: String,
}

/// User feedback on a hypothesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The hypothesis's rank in the report it was given on.
    pub rank: u32,
    /// Its service.
    pub service: String,
    /// Confirmed (true) or rejected.
    pub confirmed: bool,
    /// Who (free text given with it).
    pub by: String,
    /// Why.
    pub comment: Option<String>,
    /// Unix ns.
    pub at_ns: i64,
}

/// The analysis of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RcaReport {
    /// Unique within the tenant (the incident's id: a report is updated
    /// as its incident evolves).
    pub id: u64,
    /// The tenant.
    pub tenant: String,
    /// The incident.
    pub incident: u64,
    /// Analysed window start, unix ns.
    pub window_start_ns: i64,
    /// Analysed window end, unix ns.
    pub window_end_ns: i64,
    /// Reference (healthy) spans the window was compared with.
    pub reference_spans: u64,
    /// Seconds of data (with spans) in the reference.
    pub reference_seconds: u64,
    /// One sentence.
    pub summary: String,
    /// A few sentences (template, or an LLM's when configured).
    pub narrative: String,
    /// Who wrote the narrative: `template` or the LLM model name.
    pub narrative_by: String,
    /// Ranked, best first.
    pub hypotheses: Vec<Hypothesis>,
    /// Services the incident touches.
    pub impacted_services: Vec<String>,
    /// Tickets and messages about it.
    pub reports: Vec<LinkedReport>,
    /// What happened when.
    pub timeline: Vec<TimelineEntry>,
    /// What to do next.
    pub next_steps: Vec<String>,
    /// Feedback received.
    pub feedback: Vec<Feedback>,
    /// When computed, unix ns (wall clock).
    pub computed_ns: i64,
    /// The incident's `updated_ns` the report was computed for: a stored
    /// report is current while the incident has not changed since (also
    /// across restarts).
    #[serde(default)]
    pub incident_updated_ns: i64,
}

impl RcaReport {
    /// Whether feedback arrived after the report was computed (it should
    /// be ranked again with it).
    pub fn has_newer_feedback(&self) -> bool {
        self.feedback.iter().any(|f| f.at_ns > self.computed_ns)
    }
}
