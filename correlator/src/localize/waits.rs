//! Waits: time a caller's client span spends outside its callee's span,
//! on the network between them or in a queue before the callee starts
//! work. It moves when the network of one end is delayed or lossy (a
//! `tc netem` delay or packet loss on a pod adds to every packet in and
//! out of it), when the callee's queue or connection pool fills, or when
//! the caller itself is too starved to send and read promptly.
//!
//! Each call edge (caller service → callee service) is tested on its own
//! first ([`super::shift`]). A delay on an edge is explained by one of
//! its two ends, and the end is told by the other edges it has: a pod
//! whose network is delayed delays every edge into *and* out of it, a
//! starved caller every edge out of it, a full queue every edge into it.
//! So an edge's delay is credited to the end whose other edges are
//! delayed too (the common end, [`common_ends`]), and by default, when
//! neither end's other edges tell, to the callee: one caller slower into
//! one callee is the callee's network or queue as often as not, and the
//! callee is where a user would look. A gateway that waits on a delayed
//! service is then not blamed (its other calls are not delayed), nor is
//! a service the delayed pod calls (its other callers are not).
//!
//! Per credited service the credited edges' spans are pooled, and per
//! calling operation, as for own time. Unlike own time, waits in traces
//! where the callee did something unusual still count: they are outside
//! the callee's span and about the callee already.

use super::score::{Family, best_of};
use super::shift::{References, pool, time_evidence};
use super::{Found, MIN_WINDOW_SPANS, Map};
use crate::spans::{Interner, SpanRec, SpanSet};

/// The service a client span waits on: its one child in another service.
pub(super) fn callee(s: &SpanRec) -> Option<u32> {
    s.remote_child.filter(|&c| c != s.service)
}

/// A call edge: (caller service, callee service).
type Edge = (u32, u32);

/// What a wait pool is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// All waits credited to a service.
    Service(u32),
    /// Those of one calling operation: (credited service, caller
    /// service, caller operation).
    Operation(u32, u32, u32),
}

/// Wait evidence per service.
pub(super) fn wait_evidence(
    refs: &References,
    reference: &SpanSet,
    window: &SpanSet,
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
    // Every wait counts, also in traces where the callee was unusual: a
    // wait is outside the callee's span and already about the callee.
    let use_span = |_: usize, _: &SpanRec| true;
    let edges = pool(
        refs,
        reference,
        window,
        use_span,
        |s, keys: &mut Vec<Edge>| {
            if let Some(c) = callee(s) {
                keys.push((s.service, c));
            }
        },
    );
    let scores: Map<Edge, f64> = edges
        .points
        .iter()
        .filter(|(_, spans)| spans.len() >= MIN_WINDOW_SPANS)
        .map(|(&e, _)| (e, edges.score(&e)))
        .collect();
    let credit = common_ends(&scores);
    let credited =
        |s: &SpanRec| callee(s).map(|c| credit.get(&(s.service, c)).copied().unwrap_or(c));
    let pooled = pool(
        refs,
        reference,
        window,
        use_span,
        |s, keys: &mut Vec<Key>| {
            if let Some(node) = credited(s) {
                keys.push(Key::Service(node));
                keys.push(Key::Operation(node, s.service, s.operation));
            }
        },
    );
    // Per credited service: its calling operations, and the best of them
    // as (score, caller, operation).
    type Best = (usize, Option<(f64, u32, u32)>);
    let mut best: Map<u32, Best> = Map::default();
    for key in pooled.points.keys() {
        let &Key::Operation(node, caller, op) = key else {
            continue;
        };
        let score = pooled.score(key);
        let e = best.entry(node).or_default();
        e.0 += 1;
        if e.1
            .is_none_or(|(b, c, o)| score > b || (score == b && (caller, op) < (c, o)))
        {
            e.1 = Some((score, caller, op));
        }
    }
    for (node, (ops, top)) in best {
        let Some((op_score, caller, op)) = top else {
            continue;
        };
        let score = pooled
            .score(&Key::Service(node))
            .max(best_of(op_score, ops));
        if score < 1.0 {
            continue;
        }
        let (Some(spans), Some(all)) = (
            pooled.points.get(&Key::Operation(node, caller, op)),
            pooled.points.get(&Key::Service(node)),
        ) else {
            continue;
        };
        let operation = if node == caller {
            // A starved caller: slow to send and read on all its calls.
            format!(
                "{} {} (waits on all its calls: time outside its callees' spans)",
                strings.name(caller),
                strings.name(op)
            )
        } else {
            // The callee's network, or its queue before it starts work.
            format!(
                "{} {} (calls into {}: time outside its spans)",
                strings.name(caller),
                strings.name(op),
                strings.name(node)
            )
        };
        evidence.entry(node).or_default().push(Found {
            score,
            family: Family::Waits,
            evidence: time_evidence(
                strings.name(node).to_owned(),
                operation,
                spans,
                refs.median_ms(caller, op),
                all.len(),
                score,
            ),
            pending: None,
        });
    }
}

/// An edge's score from which it counts as delayed when telling the
/// common end: the score below which evidence is dropped as noise.
const DELAYED: f64 = 1.0;

/// For each measured edge, the end its delay is credited to: the end
/// whose *other* measured edges (into and out of it) are delayed more,
/// by their median score (the median, so that one edge too thin to show
/// a delay does not hide it, and one delayed edge among many undelayed
/// does not make a common end); the callee when they tie (neither end
/// has other edges, or neither's are delayed).
pub(super) fn common_ends(scores: &Map<Edge, f64>) -> Map<Edge, u32> {
    let mut incident: Map<u32, Vec<(Edge, f64)>> = Map::default();
    for (&e, &s) in scores {
        incident.entry(e.0).or_default().push((e, s));
        incident.entry(e.1).or_default().push((e, s));
    }
    let common = |node: u32, edge: Edge| -> f64 {
        let mut others: Vec<f64> = incident
            .get(&node)
            .into_iter()
            .flatten()
            .filter(|(e, _)| *e != edge)
            .map(|&(_, s)| s)
            .collect();
        if others.is_empty() {
            return 0.0;
        }
        others.sort_by(f64::total_cmp);
        others[(others.len() - 1) / 2]
    };
    scores
        .keys()
        .map(|&(caller, callee)| {
            let edge = (caller, callee);
            let by_caller = common(caller, edge);
            // The caller is the common end only when its other edges are
            // delayed beyond noise (a ranking score of 1, below which
            // evidence is dropped everywhere), and more than the callee's.
            let end = if by_caller >= DELAYED && by_caller > common(callee, edge) {
                caller
            } else {
                callee
            };
            (edge, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(edges: &[(u32, u32, f64)]) -> Map<Edge, f64> {
        edges.iter().map(|&(a, b, s)| ((a, b), s)).collect()
    }

    /// 0 is a gateway calling 1, 2, 3; 1 calls 4 and 5. The network of
    /// 1 is delayed: every edge into and out of it is.
    #[test]
    fn a_delay_on_every_edge_of_one_service_is_that_services() {
        let s = scores(&[
            (0, 1, 9.0),
            (0, 2, 0.2),
            (0, 3, 0.0),
            (1, 4, 8.0),
            (1, 5, 7.0),
        ]);
        let credit = common_ends(&s);
        assert_eq!(credit[&(0, 1)], 1, "not the gateway");
        assert_eq!(credit[&(1, 4)], 1, "not the callee");
        assert_eq!(credit[&(1, 5)], 1);
        assert_eq!(credit[&(0, 2)], 2);
    }

    /// A starved caller: all its calls wait, into services others call
    /// promptly.
    #[test]
    fn a_delay_on_every_call_of_one_caller_is_the_callers() {
        let s = scores(&[(0, 1, 6.0), (0, 2, 5.0), (0, 3, 7.0), (9, 1, 0.1)]);
        let credit = common_ends(&s);
        for callee in 1..=3 {
            assert_eq!(credit[&(0, callee)], 0);
        }
    }

    /// One edge delayed and nothing else to tell: the callee's (its
    /// queue or network). Noise on the caller's other edges tells
    /// nothing either.
    #[test]
    fn a_lone_delayed_edge_is_the_callees() {
        let s = scores(&[(0, 1, 6.0)]);
        assert_eq!(common_ends(&s)[&(0, 1)], 1);
        let s = scores(&[(0, 1, 6.0), (0, 2, 0.0), (1, 3, 0.0)]);
        assert_eq!(common_ends(&s)[&(0, 1)], 1);
        let s = scores(&[(0, 1, 6.0), (0, 2, 0.4), (0, 3, 0.3), (1, 4, 0.0)]);
        assert_eq!(common_ends(&s)[&(0, 1)], 1);
    }
}
