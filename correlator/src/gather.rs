//! Reading an incident's spans (the window from onset, a healthy
//! reference before it) from wherever they are, and the one call that
//! gathers and analyses an incident: `serve`'s RCA stage, the evaluations
//! and the tests all go through [`investigate`].

use causeway_model::rca::{Feedback, RcaReport};
use causeway_model::{Anomaly, Incident, Signal, TenantId};
use causeway_store::SpanStore;

use crate::config::CorrelatorConfig;
use crate::error::Result;
use crate::history::History;
use crate::spans::{self, Interner, SpanSet};
use crate::{Input, analyze};

/// Time ranges `[from, to)` other incidents cover: kept out of the
/// reference.
pub type Excluded = Vec<(i64, i64)>;

/// Where spans are read from.
pub trait SpanSource {
    /// Spans starting in `[from_ns, to_ns)`, projected to `columns`.
    fn scan(
        &self,
        from_ns: i64,
        to_ns: i64,
        columns: &[&str],
    ) -> Result<Vec<arrow_array::RecordBatch>>;
}

#[allow(missing_docs)] // fields named for what they hold
/// One tenant of a span store.
#[derive(Debug)]
pub struct StoreSource<'a>(pub &'a SpanStore, pub &'a TenantId);

impl SpanSource for StoreSource<'_> {
    fn scan(
        &self,
        from_ns: i64,
        to_ns: i64,
        columns: &[&str],
    ) -> Result<Vec<arrow_array::RecordBatch>> {
        Ok(self.0.scan(self.1, from_ns, to_ns, columns)?)
    }
}

#[allow(missing_docs)] // fields named for what they hold
/// A listing of one tenant's span files and buffered batches, as a
/// processor snapshot hands them over.
#[derive(Debug)]
pub struct Listing<'a> {
    pub files: &'a [std::path::PathBuf],
    pub buffered: &'a [arrow_array::RecordBatch],
}

impl SpanSource for Listing<'_> {
    fn scan(
        &self,
        from_ns: i64,
        to_ns: i64,
        columns: &[&str],
    ) -> Result<Vec<arrow_array::RecordBatch>> {
        Ok(causeway_store::scan_files(
            self.files,
            self.buffered,
            from_ns,
            to_ns,
            columns,
        )?)
    }
}

/// Reads the window and the reference of `incident` from `source`.
///
/// The window runs from onset to the latest onset of the incident's
/// anomalies, at least `window` and at most `max_window` long (an incident
/// grows: a fault that joins an incident opened by something earlier is
/// still analysed). The reference is the most
/// recent `reference` of data before `onset - guard`, going back at most
/// `lookback`, skipping `excluded` ranges (other incidents, which are not
/// healthy), and at most `reference_max_spans` spans.
pub fn gather(
    source: &dyn SpanSource,
    incident: &Incident,
    excluded: &[(i64, i64)],
    config: &CorrelatorConfig,
    strings: &mut Interner,
) -> Result<(SpanSet, SpanSet)> {
    let onset = incident.onset_ns;
    let window_end = config.window_end(incident);
    let batches = source.scan(onset, window_end, &spans::COLUMNS)?;
    let window = SpanSet::from_batches(&batches, strings)?;

    // Backwards hour by hour until enough healthy data.
    const STEP: i64 = 3_600_000_000_000;
    let mut reference = SpanSet::default();
    let mut to = onset.saturating_sub(config.guard_ns());
    let floor = onset.saturating_sub(config.lookback_ns());
    // 10-s buckets with spans, kept as parts arrive (see
    // `SpanSet::covered_seconds`).
    let mut buckets = std::collections::HashSet::new();
    while to > floor
        && (buckets.len() as u64) * spans::BUCKET_SECONDS < config.reference_seconds()
        && reference.spans.len() < config.reference_max_spans
    {
        let from = to.saturating_sub(STEP).max(floor);
        let batches = source.scan(from, to, &spans::COLUMNS)?;
        let mut part = SpanSet::from_batches(&batches, strings)?;
        part.spans.retain(|s| {
            !excluded
                .iter()
                .any(|&(a, b)| s.start_ns >= a && s.start_ns < b)
        });
        // Most recent first, so a cap keeps the freshest reference: at
        // most the spans that fit, and no bucket beyond the coverage asked
        // for (an hour's scan would otherwise hand in the whole hour, and
        // with it the hour's drift).
        part.spans
            .sort_unstable_by_key(|s| std::cmp::Reverse(s.start_ns));
        let room = config.reference_max_spans - reference.spans.len();
        part.spans.truncate(room);
        let wanted = config.reference_seconds().div_ceil(spans::BUCKET_SECONDS) as usize;
        let mut keep = part.spans.len();
        for (i, s) in part.spans.iter().enumerate() {
            let bucket = s.bucket();
            if buckets.len() >= wanted && !buckets.contains(&bucket) {
                keep = i;
                break;
            }
            buckets.insert(bucket);
        }
        part.spans.truncate(keep);
        reference.spans.extend(part.spans);
        to = from;
    }
    // Self times are per set; the parts were computed separately, and a
    // parent and child split by an hour boundary are rare enough.
    Ok((window, reference))
}

/// The ranges of `others` (not `incident`) to keep out of the reference:
/// each from 30 s before its onset to 30 s after its last change.
pub fn excluded_ranges(incident: &Incident, others: &[Incident]) -> Excluded {
    const PAD: i64 = 30_000_000_000;
    others
        .iter()
        .filter(|o| o.id != incident.id)
        .map(|o| {
            let end = o.resolved_ns.unwrap_or(o.updated_ns).max(o.updated_ns);
            (o.onset_ns - PAD, end + PAD)
        })
        .collect()
}

#[allow(missing_docs)] // fields named for what they hold
/// One incident to analyse and what the analysis weighs besides its spans.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub tenant: &'a TenantId,
    pub incident: &'a Incident,
    pub anomalies: &'a [Anomaly],
    /// Other incidents' ranges, kept out of the reference
    /// ([`excluded_ranges`]).
    pub excluded: &'a [(i64, i64)],
    /// Changes and tickets of the tenant around the incident.
    pub signals: &'a [Signal],
    /// Wall-clock time of the analysis, unix ns (how old a change is).
    pub now_ns: i64,
    /// Verdicts on this incident's earlier report, oldest first.
    pub feedback: &'a [Feedback],
    /// Verdicts on the tenant's earlier incidents.
    pub history: &'a History,
}

/// Gathers `case`'s spans from `source` and analyses them.
pub fn investigate(
    source: &dyn SpanSource,
    case: Case<'_>,
    config: &CorrelatorConfig,
) -> Result<RcaReport> {
    let mut strings = Interner::default();
    let (window, reference) = gather(source, case.incident, case.excluded, config, &mut strings)?;
    Ok(analyze(
        Input {
            tenant: case.tenant,
            incident: case.incident,
            anomalies: case.anomalies,
            window,
            reference,
            strings,
            signals: case.signals,
            now_ns: case.now_ns,
            feedback: case.feedback,
            history: case.history,
        },
        config,
    ))
}
