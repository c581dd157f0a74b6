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

pub mod changes;
pub mod config;
mod error;
pub mod history;
pub mod localize;
pub mod report;
pub mod spans;

use causeway_model::rca::{Evidence, Hypothesis, RcaReport};
use causeway_model::{Anomaly, CauseKind, Incident, Signal, TenantId};
use causeway_store::SpanStore;

pub use config::CorrelatorConfig;
pub use error::{Error, Result};
use spans::{Interner, SpanSet};

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

/// The words that describe the incident's symptoms at `culprit`.
fn symptoms(culprit: &localize::Candidate, anomalies: &[Anomaly]) -> Vec<String> {
    let mut text = culprit.service.clone();
    for e in &culprit.evidence {
        match e {
            Evidence::EventPattern {
                operation,
                template,
                ..
            } => {
                text.push(' ');
                text.push_str(operation);
                text.push(' ');
                text.push_str(template);
            }
            Evidence::ErrorOrigin { operation, .. } | Evidence::SelfTime { operation, .. } => {
                text.push(' ');
                text.push_str(operation);
            }
            _ => {}
        }
    }
    for a in anomalies {
        if a.subject.services().contains(&culprit.service.as_str())
            && let Some(d) = &a.detail
        {
            text.push(' ');
            text.push_str(d);
        }
    }
    changes::words(&text)
}

/// The cause the localization evidence points at.
fn evidence_cause(e: Option<&Evidence>) -> CauseKind {
    match e {
        Some(Evidence::ErrorOrigin { .. }) => CauseKind::CodeError,
        Some(Evidence::EventPattern {
            template, score, ..
        }) => {
            let t = template.to_ascii_lowercase();
            if *score > 0.0
                && (t.starts_with("error") || t.starts_with("fatal") || t.starts_with("exception"))
            {
                CauseKind::CodeError
            } else {
                CauseKind::BehaviourChange
            }
        }
        Some(Evidence::SelfTime { .. }) => CauseKind::Resource,
        _ => CauseKind::Traffic,
    }
}

/// Services that call or are called by `service` in `window`.
fn neighbours(window: &SpanSet, strings: &Interner, service: &str) -> Vec<String> {
    let Some(id) = strings.get(service) else {
        return Vec::new();
    };
    let by_span: std::collections::HashMap<([u8; 16], [u8; 8]), u32> = window
        .spans
        .iter()
        .map(|s| ((s.trace, s.span), s.service))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for s in &window.spans {
        let Some(p) = s.parent else { continue };
        let Some(&ps) = by_span.get(&(s.trace, p)) else {
            continue;
        };
        let other = if s.service == id && ps != id {
            ps
        } else if ps == id && s.service != id {
            s.service
        } else {
            continue;
        };
        let name = strings.name(other).to_owned();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A value first seen in the window: the value, its first span time, up
/// to three traces.
type FirstSeen = (u32, i64, Vec<String>);

/// Values of `field` for `service` in the window that the reference never
/// showed, and the reference's values. Nothing when the reference has no
/// value at all (then the first one seen is no change).
fn first_seen(
    input: &Input<'_>,
    service: &str,
    field: fn(&spans::SpanRec) -> Option<u32>,
) -> (Vec<FirstSeen>, std::collections::BTreeSet<u32>) {
    let Some(id) = input.strings.get(service) else {
        return Default::default();
    };
    let before: std::collections::BTreeSet<u32> = input
        .reference
        .spans
        .iter()
        .filter(|s| s.service == id)
        .filter_map(field)
        .collect();
    if before.is_empty() {
        return Default::default();
    }
    let mut first: std::collections::BTreeMap<u32, (i64, Vec<String>)> = Default::default();
    for s in input.window.spans.iter().filter(|s| s.service == id) {
        let Some(v) = field(s).filter(|v| !before.contains(v)) else {
            continue;
        };
        let e = first.entry(v).or_insert((s.start_ns, Vec::new()));
        e.0 = e.0.min(s.start_ns);
        if e.1.len() < 3 {
            e.1.push(s.trace.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    (
        first.into_iter().map(|(v, (t, tr))| (v, t, tr)).collect(),
        before,
    )
}

/// Versions of `service` first seen in the window, as deploys seen in
/// traces.
fn version_changes(input: &Input<'_>, service: &str) -> Vec<Evidence> {
    let (new, before) = first_seen(input, service, |s| s.version);
    new.into_iter()
        .map(|(v, t, traces)| Evidence::VersionChange {
            service: service.to_owned(),
            version: input.strings.name(v).to_owned(),
            first_seen_ns: t,
            previous: before
                .iter()
                .map(|&b| input.strings.name(b).to_owned())
                .collect(),
            trace_ids: traces,
        })
        .collect()
}

/// Instances of `service` first seen in the window (restarts, rollouts,
/// scale-out), at most three.
fn new_instances(input: &Input<'_>, service: &str) -> Vec<Evidence> {
    let (new, before) = first_seen(input, service, |s| s.instance);
    new.into_iter()
        .take(3)
        .map(|(v, t, traces)| Evidence::NewInstance {
            service: service.to_owned(),
            instance: input.strings.name(v).to_owned(),
            first_seen_ns: t,
            previous: before.len(),
            trace_ids: traces,
        })
        .collect()
}

/// The hypotheses to report, best first, at most `k`: the evidence's
/// ranking, overruled by what people who looked said about this incident
/// (their latest word per service). A confirmed service leads, even one the
/// evidence ranks low; a rejected one goes after every other candidate
/// with evidence, and is still listed with its evidence when there is room
/// (the evidence did not change; the ranking did).
fn with_feedback<'c>(
    candidates: &'c [localize::Candidate],
    feedback: &[causeway_model::rca::Feedback],
    k: usize,
) -> Vec<&'c localize::Candidate> {
    let mut verdict: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for f in feedback {
        verdict.insert(f.service.as_str(), f.confirmed);
    }
    let group = |c: &localize::Candidate| match verdict.get(c.service.as_str()) {
        Some(true) => 0,
        None => 1,
        Some(false) => 2,
    };
    let mut top: Vec<&localize::Candidate> = candidates
        .iter()
        .filter(|c| c.score > 0.0 || group(c) == 0)
        .collect();
    // Stable: within a group, the evidence's order.
    top.sort_by_key(|c| group(c));
    top.truncate(k);
    top
}

/// Scores of candidates that rest on the incident's anomalies alone
/// ([`from_anomalies`]): far below any localization evidence (which
/// starts at 1), decreasing in the fallback's order.
const FALLBACK_SCORE: f64 = 1e-3;

/// Candidates when no service has localization evidence (a fault that
/// changed what code returned, not its errors, logs or time; or a window
/// too thin to test): the services the incident's anomalies name, each
/// with those anomalies as evidence. Callees come before their callers,
/// since symptoms travel up the call tree and the deepest anomalous
/// service is the likeliest origin; then by the anomalies' scores. The
/// incident's other services follow, so that an incident always gets a
/// ranked list.
fn from_anomalies(
    incident: &Incident,
    anomalies: &[Anomaly],
    window: &SpanSet,
    strings: &Interner,
) -> Vec<localize::Candidate> {
    let mut named: Vec<(String, f64, Vec<Evidence>)> = Vec::new();
    for a in anomalies {
        // An edge's server side first: the call into it is what moved.
        let mut services = a.subject.services();
        services.reverse();
        for s in services {
            let e = Evidence::Anomaly {
                id: a.id,
                metric: a.metric.to_owned(),
                subject: a.subject.to_string(),
                observed: a.observed,
                expected: a.expected,
            };
            match named.iter_mut().find(|(n, ..)| n == s) {
                Some(entry) => {
                    entry.1 = entry.1.max(a.score);
                    entry.2.push(e);
                }
                None => named.push((s.to_owned(), a.score, vec![e])),
            }
        }
    }
    for s in &incident.services {
        if !named.iter().any(|(n, ..)| n == s) {
            named.push((s.clone(), 0.0, Vec::new()));
        }
    }
    let names: Vec<String> = named.iter().map(|(n, ..)| n.clone()).collect();
    // How many of the other named services call each one.
    let callers = |service: &str| {
        let above = callers_of(window, strings, service);
        names
            .iter()
            .filter(|other| other.as_str() != service && above.contains(other))
            .count()
    };
    let mut keyed: Vec<(usize, f64, String, Vec<Evidence>)> = named
        .into_iter()
        .map(|(n, score, ev)| (callers(&n), score, n, ev))
        .collect();
    // Stable: ties keep the anomalies' order (an edge's server first).
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let n = keyed.len().max(1) as f64;
    keyed
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, service, evidence))| localize::Candidate {
            service,
            score: FALLBACK_SCORE * (n - i as f64) / n,
            operation: None,
            evidence,
        })
        .collect()
}

/// Services that call `service` in `window`.
fn callers_of(window: &SpanSet, strings: &Interner, service: &str) -> Vec<String> {
    let Some(id) = strings.get(service) else {
        return Vec::new();
    };
    let by_span: std::collections::HashMap<([u8; 16], [u8; 8]), u32> = window
        .spans
        .iter()
        .map(|s| ((s.trace, s.span), s.service))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for s in window.spans.iter().filter(|s| s.service == id) {
        let Some(&caller) = s.parent.and_then(|p| by_span.get(&(s.trace, p))) else {
            continue;
        };
        if caller != id {
            let name = strings.name(caller).to_owned();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Analyses one incident.
pub fn analyze(mut input: Input<'_>, config: &CorrelatorConfig) -> RcaReport {
    let mut candidates = localize::localize(&input.reference, &input.window, &mut input.strings);
    if candidates.iter().all(|c| c.score <= 0.0) {
        candidates = from_anomalies(
            input.incident,
            input.anomalies,
            &input.window,
            &input.strings,
        );
    }
    // Earlier incidents' verdicts on the same evidence weigh in.
    let mut precedents: std::collections::HashMap<String, Vec<causeway_model::Precedent>> =
        std::collections::HashMap::new();
    if !input.history.is_empty() {
        for c in &mut candidates {
            let p = input.history.precedents(c, input.incident.id);
            if !p.is_empty() {
                c.score = history::weighed(c.score, &p);
                precedents.insert(c.service.clone(), p);
            }
        }
        localize::rank(&mut candidates);
    }
    let top = with_feedback(&candidates, input.feedback, config.hypotheses);
    let max = top.iter().map(|c| c.score).fold(0.0, f64::max);
    let norm: f64 = top.iter().map(|c| (c.score - max).exp()).sum();
    let mut hypotheses = Vec::new();
    let mut symptom_words = Vec::new();
    for (i, c) in top.iter().enumerate() {
        let words = symptoms(c, input.anomalies);
        if i == 0 {
            symptom_words = words.clone();
        }
        let near = neighbours(&input.window, &input.strings, &c.service);
        let ctx = changes::Context {
            culprit: &c.service,
            neighbours: &near,
            onset_ns: input.incident.onset_ns,
            symptoms: &words,
            lookback_ns: config.change_lookback_ns(),
            half_life_ns: config.change_half_life_ns(),
        };
        let mut evidence = c.evidence.clone();
        let mut cause = evidence_cause(evidence.first());
        let mut change = None;
        let versions = version_changes(&input, &c.service);
        let ranked = changes::rank_changes(input.signals, &ctx);
        // A change mapped to this service (or strongly matching it) is the
        // cause; a version first seen in its spans is a deploy even when
        // no connector reported one.
        if let Some(m) = ranked
            .first()
            .filter(|m| m.score >= config.min_change_score)
        {
            let own = matches!(
                &m.evidence,
                Evidence::Signal { matched, .. } if matched.first().is_some_and(|w| w == "service")
            );
            cause = match m.kind {
                // A change of a neighbour: the dependency changed.
                _ if !own => CauseKind::Dependency,
                causeway_model::SignalKind::Deploy | causeway_model::SignalKind::Release => {
                    CauseKind::Deploy
                }
                _ => CauseKind::Commit,
            };
            change = Some(m.evidence.clone());
            evidence.push(m.evidence.clone());
        } else if let Some(v) = versions.first() {
            cause = CauseKind::Deploy;
            change = Some(v.clone());
        }
        evidence.extend(versions);
        for e in new_instances(&input, &c.service) {
            // Localization may have cited the instance already (a restart).
            let cited = |x: &Evidence| {
                matches!((x, &e), (
                    Evidence::NewInstance { instance: a, .. },
                    Evidence::NewInstance { instance: b, .. },
                ) if a == b)
            };
            if !evidence.iter().any(cited) {
                evidence.push(e);
            }
        }
        hypotheses.push(Hypothesis {
            rank: (i + 1) as u32,
            service: c.service.clone(),
            operation: c.operation.clone(),
            cause,
            confidence: (c.score - max).exp() / norm.max(f64::MIN_POSITIVE),
            score: c.score,
            change,
            evidence,
            precedents: precedents.remove(&c.service).unwrap_or_default(),
        });
    }
    let culprit = hypotheses.first().map(|h| h.service.clone());
    let near = culprit
        .as_deref()
        .map(|c| neighbours(&input.window, &input.strings, c))
        .unwrap_or_default();
    let impacted: Vec<String> = input.incident.services.iter().cloned().collect();
    let reports = match &culprit {
        Some(c) => {
            let ctx = changes::Context {
                culprit: c,
                neighbours: &near,
                onset_ns: input.incident.onset_ns,
                symptoms: &symptom_words,
                lookback_ns: config.report_lookback_ns(),
                half_life_ns: config.change_half_life_ns(),
            };
            changes::rank_reports(input.signals, &ctx, &impacted)
                .into_iter()
                .take(config.reports)
                .map(|m| causeway_model::rca::LinkedReport {
                    signal: m.evidence,
                    score: m.score,
                })
                .collect()
        }
        None => Vec::new(),
    };
    report::build(report::Parts {
        tenant: input.tenant,
        incident: input.incident,
        anomalies: input.anomalies,
        window: (input.incident.onset_ns, config.window_end(input.incident)),
        reference_spans: input.reference.spans.len() as u64,
        reference_seconds: input.reference.covered_seconds(),
        hypotheses,
        impacted,
        reports,
        now_ns: input.now_ns,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use causeway_model::{IncidentState, Severity};

    use super::*;
    use crate::spans::SpanRec;

    /// One `pay` span per second: `version` on `instance`, failing with a
    /// new exception when `fail`.
    fn spans(
        strings: &mut Interner,
        from: i64,
        n: i64,
        version: &str,
        instance: &str,
        fail: bool,
    ) -> SpanSet {
        let events = fail.then(|| strings.intern("exception java.lang.NullPointerException"));
        let mut out = Vec::new();
        for i in 0..n {
            let start = from + i * 1_000_000_000;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&start.to_be_bytes());
            out.push(SpanRec {
                trace,
                span: start.to_be_bytes(),
                parent: None,
                service: strings.intern("pay"),
                version: Some(strings.intern(version)),
                instance: Some(strings.intern(instance)),
                operation: strings.intern("POST /pay"),
                start_ns: start,
                end_ns: start + 5_000_000,
                error: fail,
                events,
                self_ns: 5_000_000,
                child_error: false,
                remote_child: None,
                error_text: None,
            });
        }
        SpanSet { spans: out }
    }

    /// The report of `incident` with no signals, feedback or history, at
    /// its onset.
    fn analyze_one(
        incident: &Incident,
        anomalies: &[Anomaly],
        window: SpanSet,
        reference: SpanSet,
        strings: Interner,
    ) -> RcaReport {
        let tenant = TenantId::new("t").expect("tenant");
        analyze(
            Input {
                tenant: &tenant,
                incident,
                anomalies,
                window,
                reference,
                strings,
                signals: &[],
                now_ns: incident.onset_ns,
                feedback: &[],
                history: &history::History::default(),
            },
            &CorrelatorConfig::default(),
        )
    }

    /// One span a second from 0 to `until_s`, as the span store holds
    /// them (the columns the correlator reads, the rest null or zero).
    struct EverySecond {
        until_s: i64,
    }

    impl SpanSource for EverySecond {
        fn scan(
            &self,
            from_ns: i64,
            to_ns: i64,
            _columns: &[&str],
        ) -> Result<Vec<arrow_array::RecordBatch>> {
            use arrow_array::builder::{FixedSizeBinaryBuilder, StringDictionaryBuilder};
            use arrow_array::types::UInt32Type;
            use arrow_array::{ArrayRef, Int8Array, Int64Array, TimestampNanosecondArray};
            use causeway_model::schema::col;
            let starts: Vec<i64> = (0..self.until_s)
                .map(|i| i * 1_000_000_000)
                .filter(|t| (from_ns..to_ns).contains(t))
                .collect();
            if starts.is_empty() {
                return Ok(Vec::new());
            }
            let schema = causeway_model::schema::span_schema();
            let n = starts.len();
            let dict = |v: &str| -> ArrayRef {
                let mut b = StringDictionaryBuilder::<UInt32Type>::new();
                for _ in 0..n {
                    b.append_value(v);
                }
                Arc::new(b.finish())
            };
            let ids = |width: i32, salt: u8| -> ArrayRef {
                let mut b = FixedSizeBinaryBuilder::new(width);
                for t in &starts {
                    let mut id = vec![salt; width as usize];
                    id[..8].copy_from_slice(&t.to_be_bytes());
                    let _ = b.append_value(&id);
                }
                Arc::new(b.finish())
            };
            let ts = |v: Vec<i64>| -> ArrayRef {
                Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
            };
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    col::TENANT => dict("t"),
                    col::TRACE_ID => ids(16, 1),
                    col::SPAN_ID => ids(8, 2),
                    col::SERVICE_NAME => dict("pay"),
                    col::SPAN_NAME => dict("POST /pay"),
                    col::SPAN_KIND => Arc::new(Int8Array::from(vec![2; n])),
                    col::START_TIME => ts(starts.clone()),
                    col::END_TIME => ts(starts.iter().map(|t| t + 5_000_000).collect()),
                    col::DURATION_NS => Arc::new(Int64Array::from(vec![5_000_000; n])),
                    col::STATUS_CODE => Arc::new(Int8Array::from(vec![0; n])),
                    _ => arrow_array::new_null_array(f.data_type(), n),
                })
                .collect();
            arrow_array::RecordBatch::try_new(schema, columns)
                .map_err(|e| Error::Data(e.to_string()))
                .map(|b| vec![b])
        }
    }

    #[test]
    fn the_reference_is_the_most_recent_coverage_asked_for_not_the_whole_hour() {
        let source = EverySecond { until_s: 7200 };
        let onset = 7000 * 1_000_000_000;
        let incident = Incident {
            id: 1,
            state: IncidentState::Open,
            onset_ns: onset,
            updated_ns: onset,
            last_onset_ns: Some(onset),
            resolved_ns: None,
            severity: Severity::Major,
            services: BTreeSet::from(["pay".to_owned()]),
            anomalies: Vec::new(),
        };
        let config = CorrelatorConfig::default();
        let mut strings = Interner::default();
        let (window, reference) =
            gather(&source, &incident, &[], &config, &mut strings).expect("gather");
        assert_eq!(window.spans.len(), 180, "the shortest window: 3 minutes");
        // 30 minutes of 10-s buckets, ending at onset - guard (30 s).
        assert_eq!(reference.covered_seconds(), 1800);
        assert_eq!(reference.spans.len(), 1800);
        let oldest = reference.spans.iter().map(|s| s.start_ns).min();
        assert_eq!(oldest, Some(onset - 30_000_000_000 - 1800 * 1_000_000_000));
    }

    #[test]
    fn feedback_overrules_the_evidences_ranking_latest_word_first() {
        let c = |service: &str, score: f64| localize::Candidate {
            service: service.into(),
            score,
            operation: None,
            evidence: Vec::new(),
        };
        let candidates = [c("a", 5.0), c("b", 3.0), c("c", 2.0), c("d", 0.0)];
        let f = |service: &str, confirmed: bool| causeway_model::rca::Feedback {
            rank: 1,
            service: service.into(),
            confirmed,
            by: "sre".into(),
            comment: None,
            at_ns: 0,
        };
        let names = |v: Vec<&localize::Candidate>| -> Vec<String> {
            v.iter().map(|c| c.service.clone()).collect()
        };
        assert_eq!(names(with_feedback(&candidates, &[], 5)), ["a", "b", "c"]);
        // Rejected: after the others with evidence.
        assert_eq!(
            names(with_feedback(&candidates, &[f("a", false)], 5)),
            ["b", "c", "a"]
        );
        // Confirmed: first, even without evidence of its own.
        assert_eq!(
            names(with_feedback(&candidates, &[f("d", true)], 5)),
            ["d", "a", "b", "c"]
        );
        // The latest word counts; the cap still holds.
        assert_eq!(
            names(with_feedback(
                &candidates,
                &[f("c", false), f("c", true)],
                2
            )),
            ["c", "a"]
        );
    }

    #[test]
    fn a_new_version_on_new_instances_is_a_deploy_seen_in_traces() {
        let mut strings = Interner::default();
        let reference = spans(&mut strings, 0, 600, "1.0.0", "pay-7f9c", false);
        let onset = 700_000_000_000;
        let window = spans(&mut strings, onset, 120, "1.1.0", "pay-b21d", true);
        let incident = Incident {
            id: 1,
            state: IncidentState::Open,
            onset_ns: onset,
            updated_ns: onset + 60_000_000_000,
            last_onset_ns: Some(onset + 60_000_000_000),
            resolved_ns: None,
            severity: Severity::Major,
            services: BTreeSet::from(["pay".to_owned()]),
            anomalies: Vec::new(),
        };
        let report = analyze_one(&incident, &[], window, reference, strings);
        let top = &report.hypotheses[0];
        assert_eq!(top.service, "pay");
        assert_eq!(top.cause, CauseKind::Deploy);
        assert!(
            matches!(&top.change, Some(Evidence::VersionChange { version, previous, .. }) if version == "1.1.0" && previous == &["1.0.0".to_owned()]),
            "{:?}",
            top.change
        );
        assert!(
            top.evidence.iter().any(|e| matches!(e, Evidence::NewInstance { instance, previous: 1, .. } if instance == "pay-b21d")),
            "{:?}",
            top.evidence
        );
        assert!(report.summary.contains("pay"), "{}", report.summary);
        assert!(report::markdown(&report).contains("pay-b21d"));
    }

    /// A fault that changed only what a service returned: nothing in the
    /// spans moved, but detection saw the calls into `pay` change. The
    /// RCA still ranks the services the anomalies name, the callee of the
    /// anomalous edge first, with the anomalies as evidence.
    #[test]
    fn an_incident_without_localization_evidence_still_gets_a_ranked_list() {
        let mut strings = Interner::default();
        let reference = spans(&mut strings, 0, 600, "1.0.0", "pay-7f9c", false);
        let onset = 700_000_000_000;
        let window = spans(&mut strings, onset, 120, "1.0.0", "pay-7f9c", false);
        let incident = Incident {
            id: 1,
            state: IncidentState::Open,
            onset_ns: onset,
            updated_ns: onset + 60_000_000_000,
            last_onset_ns: Some(onset),
            resolved_ns: None,
            severity: Severity::Minor,
            services: BTreeSet::from(["pay".to_owned(), "api".to_owned(), "cart".to_owned()]),
            anomalies: vec![7],
        };
        let anomaly = Anomaly {
            id: 7,
            subject: causeway_model::Subject::Edge {
                client: "api".into(),
                server: "pay".into(),
                connection: String::new(),
            },
            metric: "request_rate",
            onset_ns: onset,
            detected_ns: onset,
            last_ns: onset,
            resolved_ns: None,
            observed: 2.0,
            expected: 5.0,
            score: 4.0,
            severity: Severity::Minor,
            example_trace_ids: Vec::new(),
            incident: 1,
            detail: None,
        };
        let report = analyze_one(
            &incident,
            std::slice::from_ref(&anomaly),
            window,
            reference,
            strings,
        );
        let ranked: Vec<&str> = report
            .hypotheses
            .iter()
            .map(|h| h.service.as_str())
            .collect();
        assert_eq!(ranked, ["pay", "api", "cart"]);
        assert!(
            matches!(
                &report.hypotheses[0].evidence[..],
                [Evidence::Anomaly { id: 7, .. }]
            ),
            "{:?}",
            report.hypotheses[0].evidence
        );
        assert!(report.hypotheses[0].score < 1.0);
    }
}
