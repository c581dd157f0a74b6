//! Fault localization: which service's own behaviour changed when the
//! incident began, from trace evidence alone.
//!
//! The window (spans from onset) is compared with a reference (healthy
//! spans before it) per service, on three kinds of evidence that point at
//! the service where a fault *originates* rather than where it shows:
//!
//! - **Event patterns.** Every span event (a log line recorded on the
//!   span, an exception) is reduced to a template. A fault in a service's
//!   code changes what that code logs: a line that was logged on every
//!   request stops (an exception skipped it), a new error line appears.
//!   Callers see at most a generic error; the specific pattern change is
//!   where the code changed. For each (service, template) the window's
//!   count is compared with what the reference predicts given the calls,
//!   in the window, of each operation that logs it (the operations are
//!   strata: load changes do not count, and a line logged less because
//!   its operation is called less is the request mix, not a change); an
//!   increase only for error-level lines (ERROR, FATAL, exceptions: a
//!   normal line logged more often is the request mix), a decrease only
//!   for the others (fewer errors is no fault). The test is a signed
//!   deviance z-score of the two counts (the conditional binomial test of
//!   two Poisson rates: given both counts, how the total splits between
//!   window and reference by their call volumes). A small reference makes
//!   the same counts less surprising, as it should: a pattern absent from
//!   one healthy minute may simply be rare. Lines on data-dependent
//!   branches vary with the request mix more than chance: each score is
//!   divided by the root of the line's over-dispersion between 30-s slices
//!   of the reference (quasi-Poisson, each slice with its own mix).
//! - **Error origins.** Spans in error none of whose children are:
//!   where an error starts, not where it propagates. Scored like a
//!   pattern.
//! - **Self time.** A saturated service (CPU, memory, I/O) gets slower in
//!   its own processing, not in its calls. Each window span's self time is
//!   placed in its operation's reference distribution (a mid-rank
//!   quantile, uniform when nothing changed); the service's mean quantile
//!   gives a z-score, discounted when the typical slowdown is small (full
//!   weight from 2×), so that a busier database does not outrank a
//!   service whose every operation doubled; also per operation (a slow
//!   code path), less the expected best of as many chance z-scores; and
//!   divided by the reference's own between-slice variation (drift);
//!   and, since a starved service may serve most calls as usual and a
//!   few far slower, the count of spans beyond their operation's slowest
//!   reference span (each has chance `1/(n+1)` of that under no change),
//!   from two such spans up, weighted by how far beyond (full from 2×);
//!   each also over the window's later part (last half, quarter, … to
//!   30 s) less the best of as many chance looks, since a saturation that
//!   joins an incident opened by something else is diluted over the
//!   whole window by the healthy spans before it.
//!   A client span's self time is time outside its callee's span: the
//!   callee's (network into it, its queue), and also the caller's when
//!   the caller's operation calls several services, so that one caller
//!   slower into all of them (a saturated caller) is told from one
//!   callee slower for all its callers.
//!
//! An error whose message names a service the caller depends on ("No
//! instances available for X", "connection refused: X") is a call that
//! failed before it reached X: it is not an origin in the caller's code.
//!
//! Errors propagate to callers, so more errors at a caller whose callee
//! (in the same trace, below it) did something unusual, an event sequence
//! its operation rarely shows in the reference, are explained by that
//! callee and do not count for the caller ("explaining away").
//!
//! A service's score is its strongest evidence. Nothing is tuned per
//! service: all thresholds are statistical.

use std::collections::HashMap;

use causeway_model::rca::Evidence;
use causeway_model::template;

use crate::spans::{Interner, SpanRec, SpanSet};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Operations need this many reference spans for self time.
const MIN_REFERENCE_SPANS: usize = 10;
/// A service needs this many window spans with a reference for self time.
const MIN_WINDOW_SPANS: usize = 5;
/// Example traces per evidence.
const EXAMPLES: usize = 3;

#[allow(missing_docs)] // fields named for what they hold
/// What the evidence says about one service.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub service: String,
    /// Strongest evidence's z-score.
    pub score: f64,
    /// The operation its strongest evidence is about.
    pub operation: Option<String>,
    /// Evidence, strongest first.
    pub evidence: Vec<Evidence>,
}

/// Signed deviance z-score of `k` events in the window against `c` in
/// the reference, with span volumes `nw` and `nr`: under "same rate", the
/// `k + c` events split binomially with window share `nw / (nw + nr)`.
pub fn two_rate_z(k: f64, c: f64, nw: f64, nr: f64) -> f64 {
    let n = k + c;
    if n <= 0.0 || nw <= 0.0 || nr <= 0.0 {
        return 0.0;
    }
    let p = nw / (nw + nr);
    let term = |x: f64, e: f64| if x > 0.0 { x * (x / e).ln() } else { 0.0 };
    let g = 2.0 * (term(k, n * p) + term(c, n * (1.0 - p)));
    g.max(0.0).sqrt().copysign(k - n * p)
}

/// Signed Poisson deviance z-score of `k` observations with mean `mu`:
/// `sign(k - mu) * sqrt(2 (k ln(k/mu) - (k - mu)))`.
pub fn poisson_z(k: f64, mu: f64) -> f64 {
    let mu = mu.max(1e-9);
    let g = if k <= 0.0 {
        2.0 * mu
    } else {
        2.0 * (k * (k / mu).ln() - (k - mu))
    };
    g.max(0.0).sqrt().copysign(k - mu)
}

/// Per-service tallies of one span set.
#[derive(Default)]
struct Tally {
    spans: Map<u32, u64>,
    /// (service, operation) → spans.
    ops: Map<(u32, u32), u64>,
    /// (service, template) → count.
    templates: Map<(u32, u32), u64>,
    /// (service, template) → operation → count.
    template_ops: Map<(u32, u32), Map<u32, u64>>,
    /// (service, operation) → error-origin spans not explained by a callee.
    origins: Map<(u32, u32), u64>,
}

/// Splits joined event strings into template ids, once per distinct string.
struct Templates<'a> {
    strings: &'a mut Interner,
    cache: Map<u32, Vec<u32>>,
}

impl Templates<'_> {
    fn of(&mut self, events: u32) -> &[u32] {
        if !self.cache.contains_key(&events) {
            let joined = self.strings.name(events).to_owned();
            let ids = template::split(&joined)
                .map(|t| self.strings.intern(t))
                .collect();
            self.cache.insert(events, ids);
        }
        self.cache.get(&events).map_or(&[], Vec::as_slice)
    }
}

/// `explained[i]`: what span i did is explained by a callee (see
/// [`explained_spans`]); it is then left out of the tallies.
fn tally(set: &SpanSet, templates: &mut Templates<'_>, explained: &[bool]) -> Tally {
    let mut t = Tally::default();
    for (i, s) in set.spans.iter().enumerate() {
        if explained.get(i).copied().unwrap_or(false) {
            continue;
        }
        *t.spans.entry(s.service).or_default() += 1;
        *t.ops.entry((s.service, s.operation)).or_default() += 1;
        if let Some(ev) = s.events {
            for &id in templates.of(ev) {
                *t.templates.entry((s.service, id)).or_default() += 1;
                *t.template_ops
                    .entry((s.service, id))
                    .or_default()
                    .entry(s.operation)
                    .or_default() += 1;
            }
        }
        if s.error && !s.child_error {
            *t.origins.entry((s.service, s.operation)).or_default() += 1;
        }
    }
    t
}

/// The window's expected share of a template's occurrences (window plus
/// reference) if its rate per call of each operation that logs it is
/// unchanged: operations are strata, each with its own window share
/// `nw / (nw + nr)`, pooled by their occurrences. A line of an operation
/// that is called less (the request mix moved to other operations) is
/// then expected less often, and only a change in how the operation's
/// own calls log it is evidence.
fn expected_share(w: &Tally, r: &Tally, key: (u32, u32)) -> Option<f64> {
    let (service, _) = key;
    let mut ops: Vec<u32> = Vec::new();
    for t in [w, r] {
        if let Some(m) = t.template_ops.get(&key) {
            for &o in m.keys() {
                if !ops.contains(&o) {
                    ops.push(o);
                }
            }
        }
    }
    let (mut pooled, mut total) = (0.0, 0.0);
    for op in ops {
        let count = |t: &Tally| {
            t.template_ops
                .get(&key)
                .and_then(|m| m.get(&op))
                .copied()
                .unwrap_or(0) as f64
        };
        let n = count(w) + count(r);
        let nw = w.ops.get(&(service, op)).copied().unwrap_or(0) as f64;
        let nr = r.ops.get(&(service, op)).copied().unwrap_or(0) as f64;
        if nw + nr <= 0.0 {
            continue;
        }
        pooled += n * nw / (nw + nr);
        total += n;
    }
    (total > 0.0).then(|| pooled / total)
}

/// [`two_rate_z`] with the window's expected share `p` given directly.
fn share_z(k: f64, c: f64, p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    two_rate_z(k, c, p, 1.0 - p)
}

/// Reference slices for the dispersion estimate.
const SLICE_NS: i64 = 30_000_000_000;

/// Per (service, template): how much more than Poisson its rate varies
/// between slices of the reference (Pearson's chi-square per degree of
/// freedom, at least 1). A line on a data-dependent branch ("train number
/// starts with G") follows the request mix and varies a lot; a line every
/// call logs varies as chance does. Deviance z-scores are divided by the
/// square root (quasi-Poisson), so that the request mix of the window is
/// not mistaken for a changed code path.
fn dispersion(reference: &SpanSet, templates: &mut Templates<'_>) -> Map<(u32, u32), f64> {
    // Spans per (service, operation) per slice, and per (service,
    // template) the occurrences per slice and per operation: a slice's
    // expected count follows its own mix of operations, so only variation
    // within an operation's calls counts as over-dispersion.
    let mut op_slices: Map<(u32, u32), Map<i64, u64>> = Map::default();
    let mut counts: Map<(u32, u32), Map<i64, u64>> = Map::default();
    let mut by_op: Map<(u32, u32), Map<u32, u64>> = Map::default();
    let mut slices_of: Map<u32, Vec<i64>> = Map::default();
    for s in &reference.spans {
        let slice = s.start_ns.div_euclid(SLICE_NS);
        *op_slices
            .entry((s.service, s.operation))
            .or_default()
            .entry(slice)
            .or_default() += 1;
        let seen = slices_of.entry(s.service).or_default();
        if !seen.contains(&slice) {
            seen.push(slice);
        }
        if let Some(ev) = s.events {
            for &t in templates.of(ev) {
                *counts
                    .entry((s.service, t))
                    .or_default()
                    .entry(slice)
                    .or_default() += 1;
                *by_op
                    .entry((s.service, t))
                    .or_default()
                    .entry(s.operation)
                    .or_default() += 1;
            }
        }
    }
    // Each operation's spans over all slices, summed once.
    let op_totals: Map<(u32, u32), u64> = op_slices
        .iter()
        .map(|(&k, m)| (k, m.values().sum()))
        .collect();
    let mut out = Map::default();
    for (&(service, t), per_slice) in &counts {
        let Some(slices) = slices_of.get(&service) else {
            continue;
        };
        if slices.len() < 3 {
            continue;
        }
        let Some(ops) = by_op.get(&(service, t)) else {
            continue;
        };
        let chi2: f64 = slices
            .iter()
            .map(|&slice| {
                let e: f64 = ops
                    .iter()
                    .map(|(&op, &n_t)| {
                        let total = op_totals.get(&(service, op)).copied().unwrap_or(0);
                        let here = op_slices
                            .get(&(service, op))
                            .and_then(|m| m.get(&slice))
                            .copied()
                            .unwrap_or(0);
                        if total == 0 {
                            0.0
                        } else {
                            n_t as f64 * here as f64 / total as f64
                        }
                    })
                    .sum();
                let o = per_slice.get(&slice).copied().unwrap_or(0) as f64;
                if e > 0.0 { (o - e).powi(2) / e } else { 0.0 }
            })
            .sum();
        out.insert((service, t), (chi2 / (slices.len() - 1) as f64).max(1.0));
    }
    out
}

/// One piece of evidence found: its ranking score, the evidence, and for
/// a pattern its (template, seen in the window): its operation and
/// example traces are looked up only if it is kept.
type Found = (f64, Evidence, Option<(u32, bool)>);

/// Spans of one operation, and how many had each event sequence.
type SequenceCounts = (u64, Map<Option<u32>, u64>);

/// A window operation's spans with where their self time falls (see
/// [`Point`]).
type OpShift<'a> = Vec<(&'a SpanRec, Point)>;

/// Where one window span's self time falls in its operation's reference.
#[derive(Debug, Clone, Copy)]
struct Point {
    start_ns: i64,
    /// Mid-rank quantile.
    u: f64,
    /// Log ratio to the reference median.
    log_ratio: f64,
    /// Log ratio to the reference maximum (above 0: beyond anything
    /// seen before).
    over_max: f64,
    /// Chance of a value beyond the reference maximum (see [`Tail`]); 1
    /// when not beyond it.
    tail_p: f64,
}

/// An operation's reference self times beyond which a value is outside
/// anything seen before. Under no change, each window span exceeds the
/// reference maximum with chance `1 / (n + 1)` whatever the distribution
/// (exchangeability), so counting such spans needs no model of the tail:
/// a starved service's few calls far beyond its slowest ever are rare
/// however the median moved. (A model extrapolating the tail beyond the
/// maximum, peaks over a threshold, was tried: latencies' outliers come
/// from other mechanisms than the body's tail, and the model made busy
/// services' every stray call look impossible.)
#[derive(Debug, Clone, Copy)]
struct Tail {
    max: i64,
    /// Chance of exceeding the maximum: 1 / (n + 1).
    beyond_max: f64,
}

impl Tail {
    /// The tail of a sorted reference.
    fn of(sorted: &[i64]) -> Self {
        Self {
            max: sorted.last().copied().unwrap_or(0),
            beyond_max: 1.0 / (sorted.len() + 1) as f64,
        }
    }

    /// (log ratio to the maximum, chance of a value beyond it) of `v`.
    fn place(&self, v: i64) -> (f64, f64) {
        let over = (v as f64 / self.max.max(1) as f64).ln();
        (over, if v > self.max { self.beyond_max } else { 1.0 })
    }
}

/// A span is unusual when its operation has a reference (10+ spans) in
/// which its exact event sequence occurs in at most 1% of spans. Every
/// ancestor of an unusual span in another service is marked explained.
///
/// A span whose error names a service it depends on ("No instances
/// available for ts-basic-service", "connection refused: cart:8080") is a
/// call that failed before it reached that service, so it left no span
/// there: it is explained by the call, not by the caller's own code, and
/// marked too. Nothing is credited to the named service: whether it
/// changed is for its own spans to tell (a client that cannot find
/// instances is as often the discovery layer as the service).
fn explained_spans(reference: &SpanSet, window: &SpanSet, strings: &Interner) -> Vec<bool> {
    let mut seqs: Map<(u32, u32), SequenceCounts> = Map::default();
    for s in &reference.spans {
        let e = seqs.entry((s.service, s.operation)).or_default();
        e.0 += 1;
        *e.1.entry(s.events).or_default() += 1;
    }
    let unusual = |s: &SpanRec| {
        seqs.get(&(s.service, s.operation)).is_some_and(|(n, m)| {
            *n >= MIN_REFERENCE_SPANS as u64
                && (m.get(&s.events).copied().unwrap_or(0) as f64) <= 0.01 * *n as f64
        })
    };
    let index: Map<([u8; 16], [u8; 8]), usize> = window
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.span), i))
        .collect();
    let mut explained = vec![false; window.spans.len()];
    let deps = dependencies(reference, window);
    for (i, s) in window.spans.iter().enumerate() {
        let (Some(text), Some(callees)) = (s.error_text, deps.get(&s.service)) else {
            continue;
        };
        let text = strings.name(text);
        if callees.iter().any(|&c| names(text, strings.name(c))) {
            explained[i] = true;
        }
    }
    for s in window.spans.iter().filter(|s| unusual(s)) {
        let mut at = s.parent;
        // Bounded walk: a malformed trace could hold a parent cycle.
        for _ in 0..256 {
            let Some(p) = at else { break };
            let Some(&pi) = index.get(&(s.trace, p)) else {
                break;
            };
            if window.spans[pi].service != s.service {
                explained[pi] = true;
            }
            at = window.spans[pi].parent;
        }
    }
    explained
}

/// Per service, the services its spans called (a child span in another
/// service), in either set.
fn dependencies(reference: &SpanSet, window: &SpanSet) -> Map<u32, Vec<u32>> {
    let mut deps: Map<u32, Vec<u32>> = Map::default();
    for set in [reference, window] {
        let service_of: Map<([u8; 16], [u8; 8]), u32> = set
            .spans
            .iter()
            .map(|s| ((s.trace, s.span), s.service))
            .collect();
        for s in &set.spans {
            let Some(p) = s.parent else { continue };
            let Some(&caller) = service_of.get(&(s.trace, p)) else {
                continue;
            };
            if caller != s.service {
                let callees = deps.entry(caller).or_default();
                if !callees.contains(&s.service) {
                    callees.push(s.service);
                }
            }
        }
    }
    deps
}

/// `text` names `service` as a whole word: not inside a longer name
/// (`cart` is not named by `cartography`, nor `ts-cart` by `ts-cart-v2`).
fn names(text: &str, service: &str) -> bool {
    if service.is_empty() {
        return false;
    }
    let part_of_name = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_');
    text.match_indices(service).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + service.len()..].chars().next();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ranks the services of `window` against `reference`.
pub fn localize(reference: &SpanSet, window: &SpanSet, strings: &mut Interner) -> Vec<Candidate> {
    let mut templates = Templates {
        strings,
        cache: Map::default(),
    };
    let r = tally(reference, &mut templates, &[]);
    let phi = dispersion(reference, &mut templates);
    let w = tally(window, &mut templates, &[]);
    // Increases count only in spans whose callees behaved as usual.
    let explained = explained_spans(reference, window, templates.strings);
    let own = tally(window, &mut templates, &explained);
    let mut evidence: Map<u32, Vec<Found>> = Map::default();

    // Event patterns, both directions, for services seen in both.
    let mut keys: Vec<(u32, u32)> = w.templates.keys().copied().collect();
    keys.extend(
        r.templates
            .keys()
            .filter(|k| !w.templates.contains_key(k))
            .copied(),
    );
    for (service, tpl) in keys {
        if !r.spans.contains_key(&service) || !w.spans.contains_key(&service) {
            continue;
        }
        let k = w.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
        let c = r.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
        let Some(p) = expected_share(&w, &r, (service, tpl)) else {
            continue;
        };
        // What the reference's rate predicts for the window: its count
        // scaled by the window's exposure relative to it.
        let mu = if p < 1.0 { c * p / (1.0 - p) } else { 0.0 };
        let scale = phi.get(&(service, tpl)).copied().unwrap_or(1.0).sqrt();
        let mut z = share_z(k, c, p) / scale;
        let error_level = is_error_template(templates.strings.name(tpl));
        if z < 0.0 && error_level {
            // Fewer errors than usual is not a fault.
            continue;
        }
        if z > 0.0 && !error_level {
            // More of a normal line is the request mix, not a fault:
            // faults add errors and cut normal work short.
            continue;
        }
        if z > 0.0 {
            let k_own = own.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
            let p_own = expected_share(&own, &r, (service, tpl)).unwrap_or(0.0);
            z = (share_z(k_own, c, p_own) / scale).max(0.0);
        }
        if z.abs() < 1.0 {
            continue;
        }
        evidence.entry(service).or_default().push((
            z.abs(),
            Evidence::EventPattern {
                service: templates.strings.name(service).to_owned(),
                operation: String::new(),
                template: templates.strings.name(tpl).to_owned(),
                observed: k,
                expected: mu,
                score: z,
                trace_ids: Vec::new(),
            },
            Some((tpl, k > 0.0)),
        ));
    }

    // Error origins: only an increase is evidence, in spans whose callees
    // behaved as usual.
    for (&(service, op), &count) in &own.origins {
        let (Some(&nr), Some(&nw)) = (r.spans.get(&service), own.spans.get(&service)) else {
            continue;
        };
        let c = r.origins.get(&(service, op)).copied().unwrap_or(0) as f64;
        let mu = c / nr as f64 * nw as f64;
        let z = two_rate_z(count as f64, c, nw as f64, nr as f64);
        if z < 1.0 {
            continue;
        }
        let trace_ids = window
            .spans
            .iter()
            .filter(|s| s.service == service && s.operation == op && s.error && !s.child_error)
            .take(EXAMPLES)
            .map(|s| hex(&s.trace))
            .collect();
        evidence.entry(service).or_default().push((
            z,
            Evidence::ErrorOrigin {
                service: templates.strings.name(service).to_owned(),
                operation: templates.strings.name(op).to_owned(),
                observed: count as f64,
                expected: mu,
                score: z,
                trace_ids,
            },
            None,
        ));
    }

    for (service, score, ev) in self_time_shifts(reference, window, templates.strings) {
        evidence.entry(service).or_default().push((score, ev, None));
    }

    let mut out = Vec::with_capacity(w.spans.len());
    for &service in w.spans.keys() {
        let mut ev = evidence.remove(&service).unwrap_or_default();
        ev.sort_by(|a, b| b.0.total_cmp(&a.0));
        ev.truncate(5);
        let score = ev.first().map_or(0.0, |e| e.0);
        let mut kept = Vec::with_capacity(ev.len());
        for (_, mut e, pending) in ev {
            if let (
                Some((tpl, present)),
                Evidence::EventPattern {
                    operation,
                    trace_ids,
                    ..
                },
            ) = (pending, &mut e)
            {
                let (op, traces) =
                    pattern_examples(window, reference, &mut templates, service, tpl, present);
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

/// An error-level template: severity ERROR/FATAL/CRITICAL or an exception.
fn is_error_template(t: &str) -> bool {
    ["ERROR", "FATAL", "CRITICAL", "exception "]
        .iter()
        .any(|p| t.starts_with(p))
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

/// Where a template occurs most (in the window when it occurs there, else
/// in the reference) and example traces: traces with it, or for a pattern
/// that vanished, window traces of that operation (which no longer log it).
fn pattern_examples(
    window: &SpanSet,
    reference: &SpanSet,
    templates: &mut Templates<'_>,
    service: u32,
    tpl: u32,
    present: bool,
) -> (u32, Vec<String>) {
    let source = if present { window } else { reference };
    let mut ops: Map<u32, u64> = Map::default();
    for s in source.spans.iter().filter(|s| s.service == service) {
        if let Some(ev) = s.events
            && templates.of(ev).contains(&tpl)
        {
            *ops.entry(s.operation).or_default() += 1;
        }
    }
    let op = ops
        .into_iter()
        .max_by_key(|&(op, n)| (n, std::cmp::Reverse(op)))
        .map_or(0, |(op, _)| op);
    let mut traces = Vec::new();
    for s in window
        .spans
        .iter()
        .filter(|s| s.service == service && s.operation == op)
    {
        let has = s.events.is_some_and(|ev| templates.of(ev).contains(&tpl));
        if has == present {
            let t = hex(&s.trace);
            if !traces.contains(&t) {
                traces.push(t);
            }
            if traces.len() == EXAMPLES {
                break;
            }
        }
    }
    (op, traces)
}

/// A service's window spans, its operation count, and its best
/// operation's (score, (attributed service, own service, operation)).
type ServiceShift = (Vec<Point>, usize, Option<(f64, OpKey)>);

/// (attributed service, own service, operation).
type OpKey = (u32, u32, u32);

/// The mid-rank quantile of `v` in the sorted `reference`, in (0, 1):
/// uniform when `v` comes from the same distribution.
fn quantile(reference: &[i64], v: i64) -> f64 {
    let lo = reference.partition_point(|&x| x < v);
    let hi = reference.partition_point(|&x| x <= v);
    ((lo + hi) as f64 / 2.0 + 0.5) / (reference.len() as f64 + 1.0)
}

/// z-score of a mean of `n` mid-rank quantiles against uniform, times
/// the effect weight (full from a doubling of the median).
fn shift_score(quantile_sum: f64, n: usize, log_ratios: &mut [f64]) -> f64 {
    if n < MIN_WINDOW_SPANS {
        return 0.0;
    }
    let mean = quantile_sum / n as f64;
    let z = (mean - 0.5) / (1.0 / (12.0 * n as f64)).sqrt();
    log_ratios.sort_by(f64::total_cmp);
    let effect = log_ratios[n / 2];
    if z <= 0.0 || effect <= 0.0 {
        return 0.0;
    }
    z * (effect / std::f64::consts::LN_2).min(1.0)
}

/// Most extreme spans the tail test considers together.
const MAX_TAIL_SPANS: usize = 10;

/// Signed binomial deviance z-score of `k` events in `n` trials at rate
/// `p` (as [`poisson_z`] for a binomial).
fn binomial_z(k: f64, n: f64, p: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = p.clamp(1e-300, 1.0 - 1e-12);
    let term = |x: f64, e: f64| if x > 0.0 { x * (x / e).ln() } else { 0.0 };
    let g = 2.0 * (term(k, n * p) + term(n - k, n * (1.0 - p)));
    g.max(0.0).sqrt().copysign(k - n * p)
}

/// The tail test of window spans: the `k` spans furthest beyond their
/// operation's reference maximum (`k` from 2: one stray span is no
/// shift), against `k` of `n` at the largest chance among them (valid
/// for any mix of operations: each span's chance of being beyond its
/// maximum is `1 / (reference + 1)`, so the spans with at most that
/// chance number at most a binomial count), times the effect weight of
/// the least extreme of them (full from twice the reference maximum);
/// the best `k`, less the expected best of as many chance looks.
///
/// Spans are taken furthest beyond first, not rarest first: in a pool
/// of operations, a span barely beyond the maximum of a large reference
/// is "rarer" than one far beyond a small reference's, and taking it
/// first would weigh every set it starts by its negligible effect (a
/// starved service's callers waiting 3x to 8x their longest wait would
/// count for nothing beside its own spans 1% over theirs).
fn tail_score(points: &[Point]) -> f64 {
    let n = points.len();
    if n < MIN_WINDOW_SPANS {
        return 0.0;
    }
    let mut beyond: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.over_max > 0.0)
        .map(|p| (p.tail_p, p.over_max))
        .collect();
    if beyond.len() < 2 {
        return 0.0;
    }
    // Furthest beyond first; of equal effect, the rarest first, so that
    // which spans are taken together does not depend on the order spans
    // arrived in.
    beyond.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.total_cmp(&b.0)));
    beyond.truncate(MAX_TAIL_SPANS);
    let (mut best, mut looks, mut chance) = (0.0f64, 0usize, 0.0f64);
    for (i, &(p, over)) in beyond.iter().enumerate() {
        chance = chance.max(p);
        if i == 0 {
            continue;
        }
        looks += 1;
        let z = binomial_z((i + 1) as f64, n as f64, chance);
        best = best.max(z * (over / std::f64::consts::LN_2).min(1.0));
    }
    (best - (2.0 * (looks as f64).ln()).sqrt()).max(0.0)
}

/// Shortest later part of the window the self-time tests look at.
const MIN_SCAN_NS: i64 = 30_000_000_000;

/// The self-time shift of window spans `(start, quantile, log ratio)` (a
/// service's pool or one operation's), drift `phi`: over the whole window,
/// and over its later part (the last half, quarter, … down to 30 s). An
/// incident's onset is its first symptom, and a fault that joins it later
/// (the service saturates a minute after something else opened the
/// incident) shows in its own spans only from then on: over the whole
/// window it is diluted by the healthy spans before it. A later part is one of several
/// looks, so it must beat the whole window by the expected best of as many
/// chance z-scores (`sqrt(2 ln m)` for `m` looks), as for operations.
fn scanned_shift(points: &mut [Point], phi: f64) -> f64 {
    fn score(points: &[Point], phi: f64) -> f64 {
        let usum: f64 = points.iter().map(|p| p.u).sum();
        let mut logs: Vec<f64> = points.iter().map(|p| p.log_ratio).collect();
        shift_score(usum, points.len(), &mut logs).max(tail_score(points)) / phi
    }
    points.sort_unstable_by_key(|p| p.start_ns);
    let whole = score(points, phi);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return whole;
    };
    let end = last.start_ns;
    let mut len = (end - first.start_ns) / 2;
    let (mut best, mut looks) = (f64::NEG_INFINITY, 1usize);
    while len >= MIN_SCAN_NS {
        let tail = &points[points.partition_point(|p| p.start_ns < end - len)..];
        if tail.len() < MIN_WINDOW_SPANS {
            break;
        }
        best = best.max(score(tail, phi));
        looks += 1;
        len /= 2;
    }
    if looks == 1 {
        return whole;
    }
    whole.max(best - (2.0 * (looks as f64).ln()).sqrt())
}

/// Whom a span's self time is evidence about: a span whose child runs in
/// another service (a client span and its server span) spends its self
/// time waiting outside the callee's span, on the callee's network or in
/// its queue, so it counts for the callee; any other span for its own
/// service.
fn attributed(s: &SpanRec) -> u32 {
    s.remote_child.unwrap_or(s.service)
}

/// Client operations (service, operation) whose calls reach two or more
/// services, in the reference and window together. Time outside the
/// callee's span is the callee's by default (network into it, its queue),
/// but when one caller's calls into several callees all take longer, the
/// caller is the common factor (a saturated caller is slow to send and to
/// read answers). That can be told apart only when the caller has several
/// callees; with one, it stays the callee's.
fn fan_out_clients(reference: &SpanSet, window: &SpanSet) -> Map<(u32, u32), Vec<u32>> {
    let mut callees: Map<(u32, u32), Vec<u32>> = Map::default();
    for s in reference.spans.iter().chain(&window.spans) {
        let Some(c) = s.remote_child.filter(|&c| c != s.service) else {
            continue;
        };
        let e = callees.entry((s.service, s.operation)).or_default();
        if !e.contains(&c) {
            e.push(c);
        }
    }
    callees.retain(|_, v| v.len() >= 2);
    callees
}

/// The pools a span's self time counts in: the attributed service's
/// (see [`attributed`]), and for a client span of an operation that fans
/// out to several callees, also its own service's.
fn pools(s: &SpanRec, fan_out: &Map<(u32, u32), Vec<u32>>) -> impl Iterator<Item = OpKey> {
    let first = (attributed(s), s.service, s.operation);
    let caller = (first.0 != s.service && fan_out.contains_key(&(s.service, s.operation)))
        .then_some((s.service, s.service, s.operation));
    std::iter::once(first).chain(caller)
}

/// Per service, the self-time shift (see the module docs): pooled over
/// all its operations (a saturated service slows everything), and per
/// operation (a slow code path), the latter less the expected maximum of
/// as many null z-scores (`sqrt(2 ln m)` for `m` operations), since the
/// best of many operations is high by chance.
fn self_time_shifts(
    reference: &SpanSet,
    window: &SpanSet,
    strings: &Interner,
) -> Vec<(u32, f64, Evidence)> {
    let mut by_op: Map<(u32, u32), Vec<i64>> = Map::default();
    for s in &reference.spans {
        by_op
            .entry((s.service, s.operation))
            .or_default()
            .push(s.self_ns.max(1));
    }
    by_op.retain(|_, v| v.len() >= MIN_REFERENCE_SPANS);
    for v in by_op.values_mut() {
        v.sort_unstable();
    }
    let fan_out = fan_out_clients(reference, window);
    // Window spans by (attributed service, own service, operation).
    let mut per_op: Map<OpKey, OpShift<'_>> = Map::default();
    for s in &window.spans {
        let Some(r) = by_op.get(&(s.service, s.operation)) else {
            continue;
        };
        let v = s.self_ns.max(1);
        let median = r[r.len() / 2];
        let (over_max, tail_p) = Tail::of(r).place(v);
        let point = Point {
            start_ns: s.start_ns,
            u: quantile(r, v),
            log_ratio: (v as f64 / median as f64).ln(),
            over_max,
            tail_p,
        };
        for key in pools(s, &fan_out) {
            per_op.entry(key).or_default().push((s, point));
        }
    }
    // How much the reference's own slices vary (drift through the day,
    // load), per service and per operation: each reference span's quantile
    // within its operation's reference, averaged per slice, against the
    // variance of a mean of uniforms (quasi-likelihood, as for patterns).
    let mut slices: Map<(OpKey, i64), (f64, u64)> = Map::default();
    for s in &reference.spans {
        let Some(r) = by_op.get(&(s.service, s.operation)) else {
            continue;
        };
        let u = quantile(r, s.self_ns.max(1));
        for key in pools(s, &fan_out) {
            let e = slices
                .entry((key, s.start_ns.div_euclid(SLICE_NS)))
                .or_default();
            e.0 += u;
            e.1 += 1;
        }
    }
    let mut op_chi: Map<OpKey, (f64, usize)> = Map::default();
    let mut service_slices: Map<(u32, i64), (f64, u64)> = Map::default();
    for (&(key, slice), &(usum, n)) in &slices {
        let mean = usum / n as f64;
        let e = op_chi.entry(key).or_default();
        e.0 += 12.0 * n as f64 * (mean - 0.5).powi(2);
        e.1 += 1;
        let s = service_slices.entry((key.0, slice)).or_default();
        s.0 += usum;
        s.1 += n;
    }
    let mut service_chi: Map<u32, (f64, usize)> = Map::default();
    for (&(service, _), &(usum, n)) in &service_slices {
        let mean = usum / n as f64;
        let e = service_chi.entry(service).or_default();
        e.0 += 12.0 * n as f64 * (mean - 0.5).powi(2);
        e.1 += 1;
    }
    let phi = |chi: Option<&(f64, usize)>| match chi {
        Some(&(c, k)) if k >= 3 => (c / (k - 1) as f64).max(1.0).sqrt(),
        _ => 1.0,
    };
    // Per service: pooled sums, and the best operation.
    let mut services: Map<u32, ServiceShift> = Map::default();
    for (&key, spans) in &per_op {
        let e = services.entry(key.0).or_default();
        let mut points: Vec<Point> = spans.iter().map(|&(_, p)| p).collect();
        let score = scanned_shift(&mut points, phi(op_chi.get(&key)));
        e.0.extend(points);
        e.1 += 1;
        if e.2.is_none_or(|(best, _)| score > best) {
            e.2 = Some((score, key));
        }
    }
    let mut out = Vec::new();
    for (service, (mut points, ops, best)) in services {
        let n = points.len();
        let pooled = scanned_shift(&mut points, phi(service_chi.get(&service)));
        let Some((op_score, key)) = best else {
            continue;
        };
        let (_, own, op) = key;
        let corrected = op_score - (2.0 * (ops as f64).ln()).sqrt();
        let score = pooled.max(corrected);
        if score < 1.0 {
            continue;
        }
        let Some(spans) = per_op.get(&key) else {
            continue;
        };
        let mut selfs: Vec<i64> = spans.iter().map(|(s, ..)| s.self_ns.max(1)).collect();
        selfs.sort_unstable();
        let observed = selfs[selfs.len() / 2] as f64 / 1e6;
        let expected = by_op
            .get(&(own, op))
            .map_or(0.0, |r| r[r.len() / 2] as f64 / 1e6);
        let operation = if own == service {
            strings.name(op).to_owned()
        } else {
            // Time a caller waits beyond the callee's own span: the
            // callee's network, or its queue before it starts working.
            format!(
                "{} {} (calls into {}: time outside its spans)",
                strings.name(own),
                strings.name(op),
                strings.name(service)
            )
        };
        // The slowest spans are the best examples.
        let mut examples: Vec<&SpanRec> = spans.iter().map(|&(s, ..)| s).collect();
        examples.sort_by_key(|s| std::cmp::Reverse(s.self_ns));
        out.push((
            service,
            score,
            Evidence::SelfTime {
                service: strings.name(service).to_owned(),
                operation,
                observed_ms: observed,
                expected_ms: expected,
                spans: n as u64,
                score,
                trace_ids: examples
                    .iter()
                    .take(EXAMPLES)
                    .map(|s| hex(&s.trace))
                    .collect(),
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny trace builder: `frontend` calls `checkout`, which calls
    /// `db`; each span may log templates.
    struct Gen {
        strings: Interner,
        next: u64,
        /// Added to the frontend's wait for checkout (network delay).
        wire_ns: i64,
    }

    impl Gen {
        fn new() -> Self {
            Self {
                strings: Interner::default(),
                next: 1,
                wire_ns: 0,
            }
        }

        fn id8(&mut self) -> [u8; 8] {
            self.next += 1;
            self.next.to_be_bytes()
        }

        #[allow(clippy::too_many_arguments)]
        fn span(
            &mut self,
            trace: [u8; 16],
            parent: Option<[u8; 8]>,
            service: &str,
            op: &str,
            start: i64,
            dur: i64,
            error: bool,
            events: &[&str],
        ) -> SpanRec {
            let events = (!events.is_empty()).then(|| self.strings.intern(&events.join("\n")));
            SpanRec {
                trace,
                span: self.id8(),
                parent,
                service: self.strings.intern(service),
                version: None,
                instance: None,
                operation: self.strings.intern(op),
                start_ns: start,
                end_ns: start + dur,
                error,
                events,
                self_ns: dur,
                child_error: false,
                remote_child: None,
                error_text: None,
            }
        }

        /// One request at `t`. `skip_log`: checkout no longer logs its
        /// second line and fails (an exception skipped it), and the
        /// frontend fails with a generic error. `slow_db`: the database's
        /// own work takes `factor` times longer.
        fn request(&mut self, t: i64, skip_log: bool, db_factor: i64) -> Vec<SpanRec> {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&t.to_be_bytes());
            trace[8..].copy_from_slice(&self.next.to_be_bytes());
            let fe = self.span(
                trace,
                None,
                "frontend",
                "GET /buy",
                t,
                10_000_000 + self.wire_ns,
                skip_log,
                if skip_log {
                    &["ERROR request failed"]
                } else {
                    &[]
                },
            );
            let checkout_events: &[&str] = if skip_log {
                &["INFO Checkout#10 pricing cart"]
            } else {
                &[
                    "INFO Checkout#10 pricing cart",
                    "INFO Checkout#20 cart priced",
                ]
            };
            let co = self.span(
                trace,
                Some(fe.span),
                "checkout",
                "POST /checkout",
                t + 1_000_000,
                8_000_000,
                false,
                checkout_events,
            );
            // Deterministic jitter so that quantiles are not all ties.
            let jitter = ((t / 1_000_000) % 7) * 10_000;
            let db = self.span(
                trace,
                Some(co.span),
                "db",
                "SELECT cart",
                t + 2_000_000,
                (300_000 + jitter) * db_factor,
                false,
                &[],
            );
            vec![fe, co, db]
        }
    }

    impl Gen {
        /// `n` requests from `start`, one every `every` ns (see `request`).
        fn requests(
            &mut self,
            n: i64,
            start: i64,
            every: i64,
            fault: impl Fn(i64) -> bool,
            db_factor: i64,
        ) -> SpanSet {
            let mut spans = Vec::new();
            for i in 0..n {
                spans.extend(self.request(start + i * every, fault(i), db_factor));
            }
            set(spans)
        }

        /// Five minutes of healthy traffic from 0, one request a second.
        fn healthy_reference(&mut self) -> SpanSet {
            self.requests(300, 0, 1_000_000_000, |_| false, 1)
        }
    }

    fn set(mut spans: Vec<SpanRec>) -> SpanSet {
        crate::spans::compute_self_times(&mut spans);
        SpanSet { spans }
    }

    #[test]
    fn a_vanished_log_line_points_at_the_service_whose_code_changed() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        // Half the requests hit the fault.
        let w = g.requests(100, 400_000_000_000, 1_000_000_000, |i| i % 2 == 0, 1);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
        let Evidence::EventPattern {
            template,
            score,
            trace_ids,
            observed,
            expected,
            ..
        } = &ranked[0].evidence[0]
        else {
            panic!("pattern evidence expected: {:?}", ranked[0].evidence);
        };
        assert_eq!(template, "INFO Checkout#20 cart priced");
        // Once per call in the reference; 100 calls in the window, half
        // of them without it.
        assert_eq!(*observed, 50.0);
        assert!((expected - 100.0).abs() < 1e-6, "{expected}");
        assert!(*score < -3.0, "the line vanished: {score}");
        assert_eq!(trace_ids.len(), EXAMPLES);
        // The frontend's errors are real but not where the fault is: it
        // ranks below (its error is a symptom).
        assert!(ranked[0].score > ranked[1].score);
    }

    #[test]
    fn healthy_traffic_at_another_rate_points_nowhere() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        // Three times the load, same behaviour.
        let w = g.requests(300, 400_000_000_000, 333_000_000, |_| false, 1);
        let ranked = localize(&r, &w, &mut g.strings);
        assert!(
            ranked.iter().all(|c| c.score < 3.0),
            "no strong evidence on healthy traffic: {ranked:#?}"
        );
    }

    #[test]
    fn a_saturated_service_shows_in_its_self_time_not_its_callers() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        let w = g.requests(60, 400_000_000_000, 1_000_000_000, |_| false, 4);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "db", "{ranked:#?}");
        assert!(matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }));
        // checkout's duration grew too, but not its self time.
        let checkout = ranked.iter().find(|c| c.service == "checkout");
        assert!(checkout.is_none_or(|c| c.score < 1.0), "{checkout:?}");
    }

    /// A starved service (CPU contention) serves most calls as usual and
    /// a few far slower than anything before: the median moved not at
    /// all, but two or three calls at 50 times the slowest reference call
    /// are beyond chance. One such call alone is not.
    #[test]
    fn a_few_calls_far_beyond_anything_before_point_at_their_service() {
        let window = |g: &mut Gen, slow: &[i64]| {
            let mut spans = Vec::new();
            for i in 0..60 {
                let factor = if slow.contains(&i) { 50 } else { 1 };
                spans.extend(g.request(400_000_000_000 + i * 1_000_000_000, false, factor));
            }
            set(spans)
        };
        let mut g = Gen::new();
        let r = g.healthy_reference();
        let w = window(&mut g, &[17, 41, 50]);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "db", "{ranked:#?}");
        assert!(
            matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }),
            "{ranked:#?}"
        );
        assert!(ranked[0].score > 1.0, "{ranked:#?}");

        let mut g = Gen::new();
        let r = g.healthy_reference();
        let w = window(&mut g, &[17]);
        let ranked = localize(&r, &w, &mut g.strings);
        let db = ranked.iter().find(|c| c.service == "db");
        assert!(db.is_none_or(|c| c.score < 1.0), "{db:?}");
    }

    /// Something else opened the incident: the window starts two minutes
    /// before the database saturates, so over the whole window most of its
    /// spans are as usual (the median slowdown is none); its last minute
    /// is four times slower.
    #[test]
    fn a_saturation_that_joins_an_incident_late_shows_in_the_windows_later_part() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        let start = 400_000_000_000;
        let mut w = g.requests(120, start, 1_000_000_000, |_| false, 1);
        let late = g.requests(60, start + 120_000_000_000, 1_000_000_000, |_| false, 4);
        w.spans.extend(late.spans);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "db", "{ranked:#?}");
        let Evidence::SelfTime { score, .. } = &ranked[0].evidence[0] else {
            panic!("self-time evidence expected: {:?}", ranked[0].evidence);
        };
        assert!(*score > 3.0, "{score}");
        // Over the whole window alone the shift is diluted below notice.
        let db = g.strings.intern("db");
        let mut points: Vec<Point> = w
            .spans
            .iter()
            .filter(|s| s.service == db)
            .map(|s| {
                let slow = s.start_ns >= start + 120_000_000_000;
                Point {
                    start_ns: s.start_ns,
                    u: if slow { 1.0 } else { 0.5 },
                    log_ratio: if slow { 4f64.ln() } else { 0.0 },
                    over_max: 0.0,
                    tail_p: 1.0,
                }
            })
            .collect();
        let all = points.len();
        let usum: f64 = points.iter().map(|p| p.u).sum();
        let mut logs: Vec<f64> = points.iter().map(|p| p.log_ratio).collect();
        assert_eq!(shift_score(usum, all, &mut logs), 0.0);
        assert!(scanned_shift(&mut points, 1.0) > 3.0);
    }

    /// A window span at the reference median whose self time is
    /// `over_max` (log ratio) from its operation's maximum, beyond it with
    /// chance `tail_p`: only the tail test looks at these two.
    fn point(over_max: f64, tail_p: f64) -> Point {
        Point {
            start_ns: 0,
            u: 0.5,
            log_ratio: 0.0,
            over_max,
            tail_p,
        }
    }

    /// Spans beyond the same maximum have the same chance; which of them
    /// the tail test takes together (and so the effect weight of the
    /// least extreme) must not depend on the order they arrived in.
    #[test]
    fn the_tail_test_does_not_depend_on_the_order_of_spans() {
        let p = 1.0 / 70.0;
        // Three spans far beyond the slowest reference span, one just
        // beyond it, two ordinary ones.
        let mut points = vec![
            point(0.02, p),
            point(2.0, p),
            point(1.8, p),
            point(2.1, p),
            point(-1.0, 1.0),
            point(-1.2, 1.0),
        ];
        let first = tail_score(&points);
        points.reverse();
        let reversed = tail_score(&points);
        assert!(first > 2.0, "{first}");
        assert_eq!(first, reversed);
    }

    /// A service's pool mixes operations with references of very
    /// different sizes. Its own busy operation (2,000 reference spans)
    /// has two spans 1% over their maximum; its callers' waits into it
    /// (69 reference waits) are 3x to 8x their longest on four calls.
    /// The four far beyond are the shift, whatever the rarer near ones.
    #[test]
    fn far_beyond_a_small_reference_outweighs_just_beyond_a_large_one() {
        let (busy, waits) = (1.0 / 2_001.0, 1.0 / 70.0);
        let mut points = vec![
            point(0.01, busy),
            point(0.02, busy),
            point(1.1, waits),
            point(1.6, waits),
            point(2.0, waits),
            point(2.1, waits),
        ];
        points.extend((0..10).map(|i| point(-0.5 - f64::from(i) / 100.0, 1.0)));
        let far = tail_score(&points);
        assert!(far > 2.0, "{far}");
        // The two near ones alone are no shift: their effect is nil.
        let near: Vec<Point> = points
            .iter()
            .copied()
            .filter(|p| p.over_max < 0.1)
            .collect();
        assert!(tail_score(&near) < 0.5, "{}", tail_score(&near));
    }

    #[test]
    fn network_delay_into_a_service_is_the_callees_not_the_callers() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        // The frontend now waits 20 ms longer for checkout, whose own span
        // is unchanged: time on checkout's network or in its queue.
        g.wire_ns = 20_000_000;
        let w = g.requests(60, 400_000_000_000, 1_000_000_000, |_| false, 1);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
        let Evidence::SelfTime { operation, .. } = &ranked[0].evidence[0] else {
            panic!("self-time evidence expected: {:?}", ranked[0].evidence);
        };
        assert!(operation.contains("calls into checkout"), "{operation}");
        let frontend = ranked.iter().find(|c| c.service == "frontend");
        assert!(frontend.is_none_or(|c| c.score < 1.0), "{frontend:?}");
    }

    /// checkout has two operations; the line `Checkout#20` is logged by
    /// one of them on every call. In the window the request mix moves to
    /// the other operation: the line is logged less, but exactly as often
    /// per call of its operation, so it is no evidence.
    #[test]
    fn a_line_logged_less_because_its_operation_is_called_less_is_no_evidence() {
        let mut g = Gen::new();
        let mix = |g: &mut Gen, n: i64, start: i64, priced_every: i64| {
            let mut spans = Vec::new();
            for i in 0..n {
                let t = start + i * 1_000_000_000;
                let trace = [(i % 251) as u8; 16];
                let (op, events): (&str, &[&str]) = if i % priced_every == 0 {
                    ("POST /checkout", &["INFO Checkout#20 cart priced"])
                } else {
                    ("GET /cart", &["INFO Cart#5 cart read"])
                };
                spans.push(g.span(trace, None, "checkout", op, t, 5_000_000, false, events));
            }
            set(spans)
        };
        // Reference: every other call prices a cart; window: one in five.
        let r = mix(&mut g, 300, 0, 2);
        let w = mix(&mut g, 200, 400_000_000_000, 5);
        let ranked = localize(&r, &w, &mut g.strings);
        assert!(
            ranked.iter().all(|c| c.score < 1.0),
            "a change of mix is not a fault: {ranked:#?}"
        );
    }

    /// checkout fails its calls to `db` before they leave ("No instances
    /// available for db"): no span reaches db, and checkout's error is the
    /// failed call's, not an error of checkout's own code.
    #[test]
    fn an_error_that_names_a_dependency_is_not_an_origin_in_the_caller() {
        let mut g = Gen::new();
        let r = g.healthy_reference();
        let mut w = g.requests(100, 400_000_000_000, 1_000_000_000, |_| false, 1);
        let db = g.strings.intern("db");
        let checkout = g.strings.intern("checkout");
        let text = g
            .strings
            .intern("Request processing failed; nested exception is java.lang.IllegalStateException: No instances available for db");
        let mut failed = 0;
        // Every other request: the db span never happened.
        let mut gone = std::collections::HashSet::new();
        for (i, s) in w.spans.iter().enumerate() {
            if s.service == db && (s.start_ns / 1_000_000_000) % 2 == 0 {
                gone.insert(i);
            }
        }
        let dropped: Vec<[u8; 16]> = gone.iter().map(|&i| w.spans[i].trace).collect();
        let mut kept = Vec::new();
        for (i, mut s) in std::mem::take(&mut w.spans).into_iter().enumerate() {
            if gone.contains(&i) {
                continue;
            }
            if s.service == checkout && dropped.contains(&s.trace) {
                s.error = true;
                s.error_text = Some(text);
                failed += 1;
            }
            kept.push(s);
        }
        let w = set(kept);
        assert_eq!(failed, 50);
        let ranked = localize(&r, &w, &mut g.strings);
        let origin_in_checkout = ranked.iter().any(|c| {
            c.service == "checkout"
                && c.evidence
                    .iter()
                    .any(|e| matches!(e, Evidence::ErrorOrigin { .. }))
        });
        assert!(!origin_in_checkout, "{ranked:#?}");

        // The same errors without the dependency's name are checkout's.
        let plain = g.strings.intern("NullPointerException in PriceCalculator");
        let mut spans = w.spans;
        for s in &mut spans {
            if s.error_text == Some(text) {
                s.error_text = Some(plain);
            }
        }
        let ranked = localize(&r, &set(spans), &mut g.strings);
        assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
        assert!(matches!(
            ranked[0].evidence[0],
            Evidence::ErrorOrigin { .. }
        ));
    }

    /// The frontend's calls go to two services; in the window every call
    /// waits 20 ms longer outside the callee's span, into both. The
    /// common factor is the caller (a saturated frontend), not either
    /// callee.
    #[test]
    fn slower_calls_from_one_caller_into_several_callees_are_the_callers() {
        let mut g = Gen::new();
        let traffic = |g: &mut Gen, n: i64, start: i64, extra: i64| {
            let mut spans = Vec::new();
            for i in 0..n {
                let t = start + i * 1_000_000_000;
                let mut trace = [0u8; 16];
                trace[..8].copy_from_slice(&t.to_be_bytes());
                let callee = if i % 2 == 0 { "checkout" } else { "search" };
                let jitter = (i % 7) * 100_000;
                let fe = g.span(
                    trace,
                    None,
                    "frontend",
                    "HTTP GET",
                    t,
                    10_000_000 + jitter + extra,
                    false,
                    &[],
                );
                let server = g.span(
                    trace,
                    Some(fe.span),
                    callee,
                    "GET /api",
                    t + 1_000_000 + extra / 2,
                    8_000_000,
                    false,
                    &[],
                );
                spans.push(fe);
                spans.push(server);
            }
            set(spans)
        };
        let r = traffic(&mut g, 300, 0, 0);
        let w = traffic(&mut g, 60, 400_000_000_000, 20_000_000);
        let ranked = localize(&r, &w, &mut g.strings);
        assert_eq!(ranked[0].service, "frontend", "{ranked:#?}");
        assert!(matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }));
        for callee in ["checkout", "search"] {
            let c = ranked.iter().find(|c| c.service == callee);
            assert!(
                c.is_none_or(|c| c.score < ranked[0].score),
                "{callee}: {c:?}"
            );
        }
    }

    #[test]
    fn names_match_whole_service_names_only() {
        assert!(names(
            "No instances available for ts-basic-service",
            "ts-basic-service"
        ));
        assert!(names("connect to cart:8080 refused", "cart"));
        assert!(!names(
            "No instances available for ts-basic-service-v2",
            "ts-basic-service"
        ));
        assert!(!names("cartography failed", "cart"));
        assert!(!names("anything", ""));
    }

    #[test]
    fn two_rate_z_weighs_the_reference_size() {
        // Same rate: nothing.
        assert!(two_rate_z(10.0, 100.0, 1.0, 10.0).abs() < 1e-9);
        // Twelve new occurrences against a reference ten times larger
        // without any: very surprising; against a reference a third the
        // size: hardly.
        assert!(two_rate_z(12.0, 0.0, 1.0, 10.0) > 5.0);
        assert!(two_rate_z(12.0, 0.0, 3.0, 1.0) < 3.0);
        // A pattern that stopped.
        assert!(two_rate_z(0.0, 25.0, 1.0, 1.0) < -5.0);
    }

    #[test]
    fn poisson_z_is_signed_and_zero_at_the_mean() {
        assert!(poisson_z(10.0, 10.0).abs() < 1e-9);
        assert!(poisson_z(30.0, 10.0) > 4.0);
        assert!(poisson_z(0.0, 10.0) < -4.0);
    }
}
