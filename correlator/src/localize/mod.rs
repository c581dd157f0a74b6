//! Fault localization: which service's own behaviour changed when the
//! incident began, from trace evidence alone.
//!
//! The window (spans from onset) is compared with a reference (healthy
//! spans before it) per service, on evidence that points at the service
//! where a fault *originates* rather than where it shows. One module per
//! kind of evidence, each saying what physical fault it detects:
//!
//! | module | evidence | faults it sees |
//! |---|---|---|
//! | [`patterns`] | log lines and exceptions that appear or stop | exceptions, wrong return values that change what code logs |
//! | [`calls`] | steps a service's code stops making (statements, calls) | wrong return values, early returns, skipped steps |
//! | [`origins`] | errors that start in a service, not below it; calls refused into a service with a new instance | exceptions, bad deploys; pod restarts and crash loops |
//! | [`self_time`] | time in a service's own spans | CPU contention or hog, memory pressure, GC pauses, slow code |
//! | [`waits`] | time callers wait outside a service's spans | network delay or loss on a pod, full queues, starved callers |
//!
//! over a shared core: [`score`] (tests on one z-score scale, effect in
//! doublings, how families of evidence combine) and [`shift`] (the time
//! tests own time and waits share).
//!
//! # The score
//!
//! Every test gives `z = sqrt(2 ln LR)` of "changed" against "as in the
//! reference": how sure the change is. Surprise is not size: a busy
//! service's small drift is as surprising as a quiet service's failure.
//! So every piece of evidence is ranked by its surprise times its effect
//! in doublings, uncapped, of a time (each plus 1 ms: sub-millisecond
//! shifts are scheduling noise) or of a count (each plus one event): a
//! wait that grew from 4 ms to 2 s outranks an own time that grew from
//! 4 ms to 8 ms however busy the second service is, and a log line that
//! stopped on 25 calls outranks a 10% rise of a busy service's errors. A
//! service's score combines the strongest evidence of each family (what
//! its code did, its own time, the waits on it) as independent
//! likelihood ratios: their squares add.
//!
//! # Explaining away
//!
//! Symptoms travel up the call tree: a caller fails when its callee
//! fails, waits when it is slow. A caller's errors and extra time in
//! traces where its callee did something unusual (an event sequence its
//! operation rarely shows, or a call longer than any in the reference)
//! are the callee's ([`origins::explained_spans`]). A delay on all the
//! edges into and out of one service is that service's, not its callers'
//! or callees' ([`waits::common_ends`]).
//!
//! Nothing is tuned per service or per application: every threshold is
//! statistical, and each constant says why it is what it is.

mod calls;
mod origins;
mod patterns;
mod score;
mod self_time;
mod shift;
#[cfg(test)]
mod tests;
mod waits;

use std::collections::HashMap;

use causeway_model::rca::Evidence;

pub use score::{poisson_z, two_rate_z};

use crate::spans::{Interner, SpanSet};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Operations need this many reference spans for self time: fewer say
/// too little about the operation's distribution (its maximum above all).
const MIN_REFERENCE_SPANS: usize = 10;
/// A service needs this many window spans with a reference for self
/// time: the mean of fewer uniform quantiles is too coarse to test.
const MIN_WINDOW_SPANS: usize = 5;
/// Example traces per evidence: enough to open one and compare.
const EXAMPLES: usize = 3;
/// Evidence kept per candidate.
const KEPT_EVIDENCE: usize = 5;

#[allow(missing_docs)] // fields named for what they hold
/// What the evidence says about one service.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub service: String,
    /// The evidence combined (z-score scale, see the module docs).
    pub score: f64,
    /// The operation its strongest evidence is about.
    pub operation: Option<String>,
    /// Evidence, strongest first.
    pub evidence: Vec<Evidence>,
}

/// One piece of evidence found.
struct Found {
    /// Its ranking score (z-score scale).
    score: f64,
    family: score::Family,
    evidence: Evidence,
    /// For a pattern, (template, seen in the window): its operation and
    /// example traces are looked up only if it is kept.
    pending: Option<(u32, bool)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ranks the services of `window` against `reference`.
pub fn localize(reference: &SpanSet, window: &SpanSet, strings: &mut Interner) -> Vec<Candidate> {
    let ref_steps = calls::steps(reference, strings);
    let window_steps = calls::steps(window, strings);
    let signatures = (
        calls::signatures(reference, &ref_steps),
        calls::signatures(window, &window_steps),
    );
    let mut templates = patterns::Templates {
        strings,
        cache: Map::default(),
    };
    let r = patterns::tally(reference, &mut patterns::log_lines(&mut templates), &[]);
    let phi = patterns::dispersion(reference, &mut patterns::log_lines(&mut templates));
    let w = patterns::tally(window, &mut patterns::log_lines(&mut templates), &[]);
    // Increases count only in spans whose callees behaved as usual.
    // Who calls whom, in either set: read by explaining away and restarts.
    let deps = origins::dependencies(reference, window);
    let explained = origins::explained_spans(
        reference,
        window,
        (&signatures.0, &signatures.1),
        &deps,
        templates.strings,
    );
    let own = patterns::tally(window, &mut patterns::log_lines(&mut templates), &explained);
    let mut evidence: Map<u32, Vec<Found>> = Map::default();
    patterns::pattern_evidence(&w, &r, &own, &phi, templates.strings, &mut evidence);
    origins::origin_evidence(&own, &r, window, templates.strings, &mut evidence);
    origins::restart_evidence(reference, window, &deps, templates.strings, &mut evidence);
    let call_r = patterns::tally(reference, &mut calls::observe(&ref_steps), &[]);
    let call_phi = patterns::dispersion(reference, &mut calls::observe(&ref_steps));
    let call_w = patterns::tally(window, &mut calls::observe(&window_steps), &[]);
    calls::call_evidence(
        &call_w,
        &call_r,
        &call_phi,
        window,
        &window_steps,
        &explained,
        templates.strings,
        &mut evidence,
    );
    let refs = shift::References::of(reference);
    self_time::own_time_evidence(
        &refs,
        reference,
        window,
        &explained,
        templates.strings,
        &mut evidence,
    );
    waits::wait_evidence(&refs, reference, window, templates.strings, &mut evidence);

    let mut out = Vec::with_capacity(w.spans.len());
    for &service in w.spans.keys() {
        let mut ev = evidence.remove(&service).unwrap_or_default();
        ev.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut best: Map<score::Family, f64> = Map::default();
        for e in &ev {
            let b = best.entry(e.family).or_default();
            *b = b.max(e.score);
        }
        let score = score::combine(best.into_values());
        ev.truncate(KEPT_EVIDENCE);
        let mut kept = Vec::with_capacity(ev.len());
        for found in ev {
            let mut e = found.evidence;
            if let (
                Some((tpl, present)),
                Evidence::EventPattern {
                    operation,
                    trace_ids,
                    ..
                },
            ) = (found.pending, &mut e)
            {
                let (op, traces) = patterns::pattern_examples(
                    window,
                    reference,
                    &mut templates,
                    service,
                    tpl,
                    present,
                );
                *operation = templates.strings.name(op).to_owned();
                *trace_ids = traces;
            }
            kept.push(e);
        }
        out.push(Candidate {
            service: templates.strings.name(service).to_owned(),
            score,
            operation: kept.first().and_then(operation_of),
            evidence: kept,
        });
    }
    rank(&mut out);
    out
}

/// Orders candidates best first (ties by name, so the order is stable
/// across runs).
pub fn rank(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.service.cmp(&b.service))
    });
}

/// The operation an evidence is about.
pub fn operation_of(e: &Evidence) -> Option<String> {
    match e {
        Evidence::EventPattern { operation, .. }
        | Evidence::ErrorOrigin { operation, .. }
        | Evidence::SelfTime { operation, .. } => Some(operation.clone()),
        _ => None,
    }
}
