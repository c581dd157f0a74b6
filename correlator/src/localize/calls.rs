//! Call patterns: what a service's code does for a request, seen in the
//! spans it makes while serving it (its database statements, cache
//! reads, calls into other services, internal steps). A fault that makes
//! code take another path without an error (a wrong return value, an
//! early return, a feature flag, a bad deploy that skips a step) changes
//! which steps it makes: a call it made on every request stops.
//!
//! Each step is counted in the stratum of the operation that served the
//! request (the nearest span of the same service whose parent is in
//! another service, or the root), and tested as log lines are
//! ([`super::patterns`]): against what the reference predicts for the
//! window's calls of each serving operation, divided by the step's
//! over-dispersion between reference slices (a step on a data-dependent
//! branch varies with the request mix). Only a decrease is evidence: more
//! of a step is retries and request mix as often as a fault.
//!
//! Explaining away: a caller that skipped its later calls because a callee
//! answered wrongly shows the same kind of change. A span whose own steps
//! are a combination its operation rarely makes in the reference is
//! unusual ([`signatures`]), and its callers' spans in that trace are
//! explained ([`super::origins::explained_spans`]). A caller's missing
//! steps in explained requests are not held against it: they count as if
//! made ([`call_evidence`]), so the deepest service whose steps changed
//! is left with the evidence. (Leaving explained requests out instead
//! would bias the count: the requests that reached the unusual callee are
//! the ones that made the call into it.)
//!
//! The evidence is reported as an event pattern whose template is the
//! step, `calls <operation>` or `calls <operation> (<callee>)`.

use causeway_model::rca::Evidence;

use super::patterns::{Tally, expected_share};
use super::score::{Family, count_log_ratio, share_z, weighed};
use super::{EXAMPLES, Found, Map, hex};
use crate::spans::{Interner, SpanRec, SpanSet};

/// Longest chain of same-service parents followed to find the serving
/// span: a malformed trace could hold a parent cycle.
const MAX_DEPTH: usize = 64;

/// One step: a span whose parent is in its own service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// The operation of the span serving the request.
    pub(super) serving_op: u32,
    /// That span's index in the set.
    pub(super) serving: usize,
    /// The step's template: `calls <operation> [(<callee>)]`.
    pub(super) template: u32,
}

/// Per span of a set: its [`Step`], `None` for a serving span or a span
/// whose parent is not in the set.
pub(super) fn steps(set: &SpanSet, strings: &mut Interner) -> Vec<Option<Step>> {
    let index: Map<([u8; 16], [u8; 8]), usize> = set
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.span), i))
        .collect();
    let mut names: Map<(u32, Option<u32>), u32> = Map::default();
    set.spans
        .iter()
        .map(|s| {
            let parent = index.get(&(s.trace, s.parent?)).copied()?;
            let serving = serving_span(set, &index, parent, s.service)?;
            let callee = super::waits::callee(s);
            let tpl = *names.entry((s.operation, callee)).or_insert_with(|| {
                let text = match callee {
                    Some(c) => format!("calls {} ({})", strings.name(s.operation), strings.name(c)),
                    None => format!("calls {}", strings.name(s.operation)),
                };
                strings.intern(&text)
            });
            Some(Step {
                serving_op: set.spans[serving].operation,
                serving,
                template: tpl,
            })
        })
        .collect()
}

/// The span of `service` that serves the request span `at` belongs to:
/// up the same-service parents to one whose parent is elsewhere or
/// absent. `None` when `at` is in another service (a step's parent must
/// be its own service's).
fn serving_span(
    set: &SpanSet,
    index: &Map<([u8; 16], [u8; 8]), usize>,
    mut at: usize,
    service: u32,
) -> Option<usize> {
    if set.spans[at].service != service {
        return None;
    }
    for _ in 0..MAX_DEPTH {
        let s = &set.spans[at];
        match s.parent.and_then(|p| index.get(&(s.trace, p))) {
            Some(&p) if set.spans[p].service == service => at = p,
            _ => return Some(at),
        }
    }
    None
}

/// Per serving span index, the templates of its steps.
fn steps_below(steps: &[Option<Step>]) -> Map<usize, Vec<u32>> {
    let mut below: Map<usize, Vec<u32>> = Map::default();
    for step in steps.iter().flatten() {
        below.entry(step.serving).or_default().push(step.template);
    }
    below
}

/// Per span index, a hash of the multiset of step templates below it
/// within its service, for serving spans (other spans: 0); what
/// [`super::origins::explained_spans`] compares with its operation's
/// reference.
pub(super) fn signatures(set: &SpanSet, steps: &[Option<Step>]) -> Vec<u64> {
    use std::hash::{BuildHasher, Hasher};
    let mut below = steps_below(steps);
    // A fixed hasher: signatures of the window and the reference must
    // agree.
    let state = foldhash::fast::FixedState::with_seed(0x5eed);
    (0..set.spans.len())
        .map(|i| {
            if steps.get(i).copied().flatten().is_some() {
                return 0;
            }
            let mut tpls = below.remove(&i).unwrap_or_default();
            tpls.sort_unstable();
            let mut h = state.build_hasher();
            for t in tpls {
                h.write_u32(t);
            }
            h.finish() | 1
        })
        .collect()
}

/// The observation function of call steps for [`super::patterns::tally`].
pub(super) fn observe(
    steps: &[Option<Step>],
) -> impl FnMut(usize, &SpanRec, &mut Vec<(u32, u32)>) + '_ {
    move |i, _, out| {
        if let Some(step) = steps.get(i).copied().flatten() {
            out.push((step.serving_op, step.template));
        }
    }
}

/// Call-pattern evidence: steps made less often than the reference
/// predicts in the window (`w`), counting a step missing from an
/// explained request (`explained`) as made.
#[allow(clippy::too_many_arguments)] // the tallies and the window's parts
pub(super) fn call_evidence(
    w: &Tally,
    r: &Tally,
    phi: &Map<(u32, u32), f64>,
    window: &SpanSet,
    window_steps: &[Option<Step>],
    explained: &[bool],
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
    let below = steps_below(window_steps);
    // Explained serving spans per (service, operation), with the steps
    // each made.
    let mut excused: Map<(u32, u32), Vec<usize>> = Map::default();
    for (i, s) in window.spans.iter().enumerate() {
        if explained.get(i).copied().unwrap_or(false)
            && window_steps.get(i).is_some_and(Option::is_none)
        {
            excused.entry((s.service, s.operation)).or_default().push(i);
        }
    }
    for (&(service, tpl), &c) in &r.templates {
        if !w.spans.contains_key(&service) {
            continue;
        }
        let made = w.templates.get(&(service, tpl)).copied().unwrap_or(0) as f64;
        // Explained requests of the operations that make the step, which
        // did not make it.
        let missing_excused = r
            .template_ops
            .get(&(service, tpl))
            .into_iter()
            .flat_map(|m| m.keys())
            .flat_map(|&op| excused.get(&(service, op)).into_iter().flatten())
            .filter(|&&i| !below.get(&i).is_some_and(|t| t.contains(&tpl)))
            .count() as f64;
        let k = made + missing_excused;
        let c = c as f64;
        let Some(p) = expected_share(w, r, (service, tpl)) else {
            continue;
        };
        let mu = if p < 1.0 { c * p / (1.0 - p) } else { 0.0 };
        let scale = phi.get(&(service, tpl)).copied().unwrap_or(1.0).sqrt();
        let z = share_z(k, c, p) / scale;
        if z > -1.0 {
            continue;
        }
        // The serving operation that makes the step most, and window
        // traces of it without the step.
        let serving = r
            .template_ops
            .get(&(service, tpl))
            .and_then(|m| m.iter().max_by_key(|&(op, n)| (*n, std::cmp::Reverse(*op))))
            .map(|(&op, _)| op);
        let Some(serving) = serving else { continue };
        let with_step: std::collections::HashSet<[u8; 16]> = window
            .spans
            .iter()
            .zip(window_steps)
            .filter(|(_, st)| st.is_some_and(|st| st.serving_op == serving && st.template == tpl))
            .map(|(s, _)| s.trace)
            .collect();
        let mut traces: Vec<String> = Vec::new();
        for s in window
            .spans
            .iter()
            .filter(|s| s.service == service && s.operation == serving)
        {
            if !with_step.contains(&s.trace) {
                let t = hex(&s.trace);
                if !traces.contains(&t) {
                    traces.push(t);
                }
                if traces.len() == EXAMPLES {
                    break;
                }
            }
        }
        evidence.entry(service).or_default().push(Found {
            score: weighed(z, count_log_ratio(k, mu)),
            family: Family::Behaviour,
            evidence: Evidence::EventPattern {
                service: strings.name(service).to_owned(),
                operation: strings.name(serving).to_owned(),
                template: strings.name(tpl).to_owned(),
                observed: made,
                expected: mu,
                score: z,
                trace_ids: traces,
            },
            pending: None,
        });
    }
}
