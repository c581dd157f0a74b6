//! The correlator: for an incident, which service and operation the fault
//! originates in ([`localize`]), what change most likely caused it and who
//! reported it ([`changes`]), as an [`RcaReport`] whose every claim cites
//! evidence in the store.
//!
//! ```text
//! incident + anomalies ─┐
//! span store (window, healthy reference) ─> localize ─> hypotheses ─┐
//! signal store (changes, tickets) ──────────────────> changes ──────┴─> RcaReport
//! ```
//!
//! Kernels are pure functions over span sets and signals; [`gather`] is the
//! only part that reads the store.

mod analyze;
pub mod changes;
pub mod config;
mod error;
mod gather;
pub mod history;
pub mod localize;
pub mod report;
pub mod spans;
pub mod stage;

use causeway_model::rca::{Evidence, Hypothesis, RcaReport};
use causeway_model::{Anomaly, CauseKind, Incident, Signal, TenantId};

pub use analyze::analyze;
#[cfg(test)]
use analyze::with_feedback;
pub use config::CorrelatorConfig;
pub use error::{Error, Result};
pub use gather::{
    Case, Excluded, Listing, SpanSource, StoreSource, excluded_ranges, gather, investigate,
};
use spans::{Interner, SpanSet};
pub use stage::{LiveEvent, RcaError, RcaService, ReportEvent, ReportSink};

#[allow(missing_docs)] // fields named for what they hold
/// Everything the analysis of one incident reads.
#[derive(Debug)]
pub struct Input<'a> {
    pub tenant: &'a TenantId,
    pub incident: &'a Incident,
    pub anomalies: &'a [Anomaly],
    /// Spans from onset.
    pub window: SpanSet,
    /// Healthy spans before onset.
    pub reference: SpanSet,
    pub strings: Interner,
    /// Signals of the tenant around the incident.
    pub signals: &'a [Signal],
    /// Wall-clock time of the analysis, unix ns.
    pub now_ns: i64,
    /// Verdicts users gave on this incident's earlier report, oldest
    /// first.
    pub feedback: &'a [causeway_model::rca::Feedback],
    /// Verdicts on the tenant's earlier incidents, by evidence.
    pub history: &'a history::History,
}

#[cfg(test)]
mod tests;
