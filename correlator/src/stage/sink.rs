//! Where finished RCA reports go besides the report store: notifications,
//! OTLP log export, the API's live event stream.

use causeway_model::TenantId;
use causeway_model::rca::RcaReport;

/// A report was written.
#[derive(Debug, Clone)]
pub struct ReportEvent {
    /// Its tenant.
    pub tenant: TenantId,
    /// The report as stored.
    pub report: RcaReport,
    /// The report it replaced (the incident evolved), if any.
    pub previous: Option<RcaReport>,
}

impl ReportEvent {
    /// Whether the conclusion is news: a first report, or a different top
    /// culprit or cause than before. Chat hears about these, not about
    /// every re-analysis.
    pub fn is_news(&self) -> bool {
        let top = |r: &RcaReport| r.hypotheses.first().map(|h| (h.service.clone(), h.cause));
        match &self.previous {
            None => true,
            Some(p) => top(p) != top(&self.report),
        }
    }
}

/// Takes reports as they are written. Runs on the RCA task: queue, do not
/// block.
pub trait ReportSink: Send + Sync + std::fmt::Debug {
    /// A report was written.
    fn report(&self, event: &ReportEvent);
}

/// What the live event stream (`GET /api/v1/events`) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    /// Only this tenant's subscribers see it.
    pub tenant: TenantId,
    /// `incident` or `rca`.
    pub kind: &'static str,
    /// The incident's or report's id.
    pub id: u64,
}
