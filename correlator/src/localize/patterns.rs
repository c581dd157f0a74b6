//! Event patterns: a fault in a service's code changes what that code
//! logs. Every span event (a log line recorded on the span, an exception)
//! is reduced to a template; a line that was logged on every request stops
//! (an exception skipped it), or a new error line appears. Callers see at
//! most a generic error; the specific pattern change is where the code
//! changed.
//!
//! For each (service, template) the window's count is compared with what
//! the reference predicts given the calls, in the window, of each
//! operation that logs it (the operations are strata: load changes do not
//! count, and a line logged less because its operation is called less is
//! the request mix, not a change); an increase only for error-level lines
//! (ERROR, FATAL, exceptions: a normal line logged more often is the
//! request mix), a decrease only for the others (fewer errors is no
//! fault). The test is a signed deviance z-score of the two counts (the
//! conditional binomial test of two Poisson rates: given both counts, how
//! the total splits between window and reference by their call volumes).
//! A small reference makes the same counts less surprising, as it should:
//! a pattern absent from one healthy minute may simply be rare. Lines on
//! data-dependent branches vary with the request mix more than chance:
//! each score is divided by the root of the line's over-dispersion
//! between 30-s slices of the reference (quasi-Poisson, each slice with
//! its own mix). An increase counts only in spans whose callees behaved
//! as usual ([`super::origins::explained_spans`]).

use causeway_model::rca::Evidence;
use causeway_model::template;

use super::score::{Family, count_log_ratio, share_z, weighed};
use super::{EXAMPLES, Found, Map, hex};
use crate::spans::{Interner, SpanRec, SpanSet};

/// Per-service tallies of one span set.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) spans: Map<u32, u64>,
    /// (service, operation) → spans.
    pub(super) ops: Map<(u32, u32), u64>,
    /// (service, template) → count.
    pub(super) templates: Map<(u32, u32), u64>,
    /// (service, template) → operation → count.
    pub(super) template_ops: Map<(u32, u32), Map<u32, u64>>,
    /// (service, operation) → error-origin spans not explained by a callee.
    pub(super) origins: Map<(u32, u32), u64>,
}

/// Splits joined event strings into template ids, once per distinct string.
pub(super) struct Templates<'a> {
    pub(super) strings: &'a mut Interner,
    pub(super) cache: Map<u32, Vec<u32>>,
}

impl Templates<'_> {
    pub(super) fn of(&mut self, events: u32) -> &[u32] {
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

/// What span `i` of a set contributes to a tally: (stratum operation,
/// template) pairs, counted for its service. For log lines the stratum
/// is the span's own operation; for call patterns it is the operation
/// that served the request ([`super::calls`]).
pub(super) type Observe<'o> = dyn FnMut(usize, &SpanRec, &mut Vec<(u32, u32)>) + 'o;

/// The event templates of a span, each in its own operation's stratum.
pub(super) fn log_lines<'o>(
    templates: &'o mut Templates<'_>,
) -> impl FnMut(usize, &SpanRec, &mut Vec<(u32, u32)>) + 'o {
    move |_, s, out| {
        if let Some(ev) = s.events {
            out.extend(templates.of(ev).iter().map(|&t| (s.operation, t)));
        }
    }
}

/// `explained[i]`: what span i did is explained by a callee (see
/// [`super::origins::explained_spans`]); it is then left out of the
/// tallies.
pub(super) fn tally(set: &SpanSet, observe: &mut Observe<'_>, explained: &[bool]) -> Tally {
    let mut t = Tally::default();
    let mut seen = Vec::new();
    for (i, s) in set.spans.iter().enumerate() {
        if explained.get(i).copied().unwrap_or(false) {
            continue;
        }
        *t.spans.entry(s.service).or_default() += 1;
        *t.ops.entry((s.service, s.operation)).or_default() += 1;
        seen.clear();
        observe(i, s, &mut seen);
        for &(stratum, id) in &seen {
            *t.templates.entry((s.service, id)).or_default() += 1;
            *t.template_ops
                .entry((s.service, id))
                .or_default()
                .entry(stratum)
                .or_default() += 1;
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
pub(super) fn expected_share(w: &Tally, r: &Tally, key: (u32, u32)) -> Option<f64> {
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

/// Reference slices for the dispersion estimate.
pub(super) const SLICE_NS: i64 = 30_000_000_000;

/// Per (service, template): how much more than Poisson its rate varies
/// between slices of the reference (Pearson's chi-square per degree of
/// freedom, at least 1). A line on a data-dependent branch ("train number
/// starts with G") follows the request mix and varies a lot; a line every
/// call logs varies as chance does. Deviance z-scores are divided by the
/// square root (quasi-Poisson), so that the request mix of the window is
/// not mistaken for a changed code path.
pub(super) fn dispersion(reference: &SpanSet, observe: &mut Observe<'_>) -> Map<(u32, u32), f64> {
    // Spans per (service, operation) per slice, and per (service,
    // template) the occurrences per slice and per operation: a slice's
    // expected count follows its own mix of operations, so only variation
    // within an operation's calls counts as over-dispersion.
    let mut op_slices: Map<(u32, u32), Map<i64, u64>> = Map::default();
    let mut counts: Map<(u32, u32), Map<i64, u64>> = Map::default();
    let mut by_op: Map<(u32, u32), Map<u32, u64>> = Map::default();
    let mut slices_of: Map<u32, Vec<i64>> = Map::default();
    let mut observed = Vec::new();
    for (i, s) in reference.spans.iter().enumerate() {
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
        observed.clear();
        observe(i, s, &mut observed);
        for &(stratum, t) in &observed {
            *counts
                .entry((s.service, t))
                .or_default()
                .entry(slice)
                .or_default() += 1;
            *by_op
                .entry((s.service, t))
                .or_default()
                .entry(stratum)
                .or_default() += 1;
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

/// An error-level template: severity ERROR/FATAL/CRITICAL or an exception.
pub(super) fn is_error_template(t: &str) -> bool {
    ["ERROR", "FATAL", "CRITICAL", "exception "]
        .iter()
        .any(|p| t.starts_with(p))
}

/// Where a template occurs most (in the window when it occurs there, else
/// in the reference) and example traces: traces with it, or for a pattern
/// that vanished, window traces of that operation (which no longer log it).
pub(super) fn pattern_examples(
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

/// Event-pattern evidence per service (see the module docs), for
/// services seen in both the window `w` and the reference `r`; `own` is
/// the window without the spans a callee explains, `phi` each line's
/// over-dispersion ([`dispersion`]).
pub(super) fn pattern_evidence(
    w: &Tally,
    r: &Tally,
    own: &Tally,
    phi: &Map<(u32, u32), f64>,
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
    let mut keys: Vec<(u32, u32)> = w.templates.keys().copied().collect();
    keys.extend(
        r.templates
            .keys()
            .filter(|k| !w.templates.contains_key(k))
            .copied(),
    );
    // In a fixed order: evidence of equal score (one line logged as an
    // event and as an exception) is then listed the same way every run,
    // not in the hash map's order of the process.
    keys.sort_unstable();
    for (service, tpl) in keys {
        if !r.spans.contains_key(&service) || !w.spans.contains_key(&service) {
            continue;
        }
        let k = w.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
        let c = r.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
        let Some(p) = expected_share(w, r, (service, tpl)) else {
            continue;
        };
        // What the reference's rate predicts for the window: its count
        // scaled by the window's exposure relative to it.
        let mu = if p < 1.0 { c * p / (1.0 - p) } else { 0.0 };
        let scale = phi.get(&(service, tpl)).copied().unwrap_or(1.0).sqrt();
        let mut z = share_z(k, c, p) / scale;
        let error_level = is_error_template(strings.name(tpl));
        if z < 0.0 && error_level {
            // Fewer errors than usual is not a fault.
            continue;
        }
        if z > 0.0 && !error_level {
            // More of a normal line is the request mix, not a fault:
            // faults add errors and cut normal work short.
            continue;
        }
        // The change in the count, against what was expected.
        let mut effect = count_log_ratio(k, mu);
        if z > 0.0 {
            let k_own = own.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
            let p_own = expected_share(own, r, (service, tpl)).unwrap_or(0.0);
            z = (share_z(k_own, c, p_own) / scale).max(0.0);
            let mu_own = if p_own < 1.0 {
                c * p_own / (1.0 - p_own)
            } else {
                0.0
            };
            effect = count_log_ratio(k_own, mu_own);
        }
        if z.abs() < 1.0 {
            continue;
        }
        evidence.entry(service).or_default().push(Found {
            score: weighed(z, effect),
            family: Family::Behaviour,
            evidence: Evidence::EventPattern {
                service: strings.name(service).to_owned(),
                operation: String::new(),
                template: strings.name(tpl).to_owned(),
                observed: k,
                expected: mu,
                score: z,
                trace_ids: Vec::new(),
            },
            pending: Some((tpl, k > 0.0)),
        });
    }
}
