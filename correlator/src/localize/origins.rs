//! Error origins: spans in error none of whose children are, where an
//! error starts rather than where it propagates; only an increase is
//! evidence, scored like a pattern.
//!
//! Explaining away: errors propagate to callers, so more errors at a
//! caller whose callee (in the same trace, below it) did something
//! unusual, an event sequence its operation rarely shows in the
//! reference, are explained by that callee and do not count for the
//! caller ([`explained_spans`]). An error whose message names a service
//! the caller depends on ("No instances available for X", "connection
//! refused: X") is a call that failed before it reached X: it is not an
//! origin in the caller's code either. Such failures are the named
//! service's only when its own spans say it changed: a new instance
//! appeared (a restart or a crash loop), see [`restart_evidence`].

use causeway_model::rca::Evidence;

use super::patterns::Tally;
use super::score::{Family, count_log_ratio, two_rate_z, weighed};
use super::{EXAMPLES, Found, MIN_REFERENCE_SPANS, Map, hex};
use crate::spans::{Interner, SpanRec, SpanSet};

/// Spans of one operation, and how many had each event sequence.
type SequenceCounts = (u64, Map<Option<u32>, u64>);

/// A span is unusual when its operation has a reference (10+ spans) in
/// which its exact event sequence, or for a span serving a request the
/// combination of steps it made ([`super::calls::signatures`]), occurs in
/// at most 1% of spans, or when
/// it serves a call from another service and lasted longer than any
/// reference span of its operation (10+ spans): its callers timed out or
/// waited on it. Every ancestor of an unusual span in another service is
/// marked explained: their errors and extra time are its.
///
/// A span whose error names a service it depends on ("No instances
/// available for ts-basic-service", "connection refused: cart:8080") is a
/// call that failed before it reached that service, so it left no span
/// there: it is explained by the call, not by the caller's own code, and
/// marked too. Nothing is credited to the named service: whether it
/// changed is for its own spans to tell (a client that cannot find
/// instances is as often the discovery layer as the service).
pub(super) fn explained_spans(
    reference: &SpanSet,
    window: &SpanSet,
    signatures: (&[u64], &[u64]),
    deps: &Map<u32, Vec<u32>>,
    strings: &Interner,
) -> Vec<bool> {
    let (ref_sigs, window_sigs) = signatures;
    let mut seqs: Map<(u32, u32), SequenceCounts> = Map::default();
    let mut sigs: Map<(u32, u32), (u64, Map<u64, u64>)> = Map::default();
    for (i, s) in reference.spans.iter().enumerate() {
        let e = seqs.entry((s.service, s.operation)).or_default();
        e.0 += 1;
        *e.1.entry(s.events).or_default() += 1;
        if let Some(&sig) = ref_sigs.get(i).filter(|&&g| g != 0) {
            let e = sigs.entry((s.service, s.operation)).or_default();
            e.0 += 1;
            *e.1.entry(sig).or_default() += 1;
        }
    }
    let rare_signature = |i: usize, s: &SpanRec| {
        let Some(&sig) = window_sigs.get(i).filter(|&&g| g != 0) else {
            return false;
        };
        sigs.get(&(s.service, s.operation)).is_some_and(|(n, m)| {
            *n >= MIN_REFERENCE_SPANS as u64
                && (m.get(&sig).copied().unwrap_or(0) as f64) <= 0.01 * *n as f64
        })
    };
    let mut longest: Map<(u32, u32), (i64, u64)> = Map::default();
    for s in &reference.spans {
        let e = longest.entry((s.service, s.operation)).or_default();
        e.0 = e.0.max(s.end_ns - s.start_ns);
        e.1 += 1;
    }
    let index: Map<([u8; 16], [u8; 8]), usize> = window
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.span), i))
        .collect();
    let serves_another = |s: &SpanRec| {
        s.parent
            .and_then(|p| index.get(&(s.trace, p)))
            .is_some_and(|&pi| window.spans[pi].service != s.service)
    };
    let unusual = |s: &SpanRec| {
        let rare = seqs.get(&(s.service, s.operation)).is_some_and(|(n, m)| {
            *n >= MIN_REFERENCE_SPANS as u64
                && (m.get(&s.events).copied().unwrap_or(0) as f64) <= 0.01 * *n as f64
        });
        let late = || {
            longest
                .get(&(s.service, s.operation))
                .is_some_and(|&(max, n)| {
                    n >= MIN_REFERENCE_SPANS as u64 && s.end_ns - s.start_ns > max
                })
                && serves_another(s)
        };
        rare || late()
    };
    let mut explained = vec![false; window.spans.len()];
    for (i, s) in window.spans.iter().enumerate() {
        let (Some(text), Some(callees)) = (s.error_text, deps.get(&s.service)) else {
            continue;
        };
        let text = strings.name(text);
        if callees.iter().any(|&c| names(text, strings.name(c))) {
            explained[i] = true;
        }
    }
    for (_, s) in window
        .spans
        .iter()
        .enumerate()
        .filter(|&(i, s)| unusual(s) || rare_signature(i, s))
    {
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
pub(super) fn dependencies(reference: &SpanSet, window: &SpanSet) -> Map<u32, Vec<u32>> {
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
pub(super) fn names(text: &str, service: &str) -> bool {
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

/// Error-origin evidence per service: error origins in `own` (the window
/// without explained spans) against the reference `r`.
pub(super) fn origin_evidence(
    own: &Tally,
    r: &Tally,
    window: &SpanSet,
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
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
        evidence.entry(service).or_default().push(Found {
            score: weighed(z, count_log_ratio(count as f64, mu)),
            family: Family::Behaviour,
            evidence: Evidence::ErrorOrigin {
                service: strings.name(service).to_owned(),
                operation: strings.name(op).to_owned(),
                observed: count as f64,
                expected: mu,
                score: z,
                trace_ids,
            },
            pending: None,
        });
    }
}

/// Per service, how many spans of `set` failed with an error naming it
/// among their caller's dependencies `deps` (a call refused or lost
/// before it reached the service), with up to [`EXAMPLES`] traces.
fn named_failures(
    set: &SpanSet,
    deps: &Map<u32, Vec<u32>>,
    strings: &Interner,
) -> Map<u32, (u64, Vec<String>)> {
    let mut out: Map<u32, (u64, Vec<String>)> = Map::default();
    for s in &set.spans {
        let (Some(text), Some(callees)) = (s.error_text, deps.get(&s.service)) else {
            continue;
        };
        let text = strings.name(text);
        for &c in callees.iter().filter(|&&c| names(text, strings.name(c))) {
            let e = out.entry(c).or_default();
            e.0 += 1;
            if e.1.len() < EXAMPLES {
                e.1.push(hex(&s.trace));
            }
        }
    }
    out
}

/// A restart: calls into a service fail naming it ("connection refused:
/// X") more often than in the reference, and the service's own spans
/// show an instance the reference never did. Either alone is common (a
/// discovery layer that loses instances, a scale-out); together they are
/// the pod going away and a new one coming up. Scored as the failures'
/// rise (the calls' volumes in both sets), weighed by its size.
pub(super) fn restart_evidence(
    reference: &SpanSet,
    window: &SpanSet,
    deps: &Map<u32, Vec<u32>>,
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
    let (before, now) = (
        named_failures(reference, deps, strings),
        named_failures(window, deps, strings),
    );
    let instances = |set: &SpanSet, service: u32| -> Vec<(u32, i64)> {
        let mut out: Vec<(u32, i64)> = Vec::new();
        for s in set.spans.iter().filter(|s| s.service == service) {
            let Some(i) = s.instance else { continue };
            match out.iter_mut().find(|(x, _)| *x == i) {
                Some(e) => e.1 = e.1.min(s.start_ns),
                None => out.push((i, s.start_ns)),
            }
        }
        out
    };
    for (&service, (k, traces)) in &now {
        let old = instances(reference, service);
        if old.is_empty() {
            continue;
        }
        let Some(&(new, first_seen_ns)) = instances(window, service)
            .iter()
            .filter(|(i, _)| !old.iter().any(|(o, _)| o == i))
            .min_by_key(|(_, t)| *t)
        else {
            continue;
        };
        let c = before.get(&service).map_or(0, |b| b.0) as f64;
        let (nw, nr) = (window.spans.len() as f64, reference.spans.len() as f64);
        let z = two_rate_z(*k as f64, c, nw, nr);
        if z < 1.0 {
            continue;
        }
        let mu = c * nw / nr.max(1.0);
        evidence.entry(service).or_default().push(Found {
            score: weighed(z, count_log_ratio(*k as f64, mu)),
            family: Family::Behaviour,
            evidence: Evidence::NewInstance {
                service: strings.name(service).to_owned(),
                instance: strings.name(new).to_owned(),
                first_seen_ns,
                previous: old.len(),
                trace_ids: traces.clone(),
            },
            pending: None,
        });
    }
}
