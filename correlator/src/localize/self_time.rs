//! Own time: a saturated service (CPU contention or a hog, memory
//! pressure and GC pauses, a slow disk, a lock) gets slower in its own
//! processing, not in its calls. A span's own time is its duration less
//! its children's; a client span's own time is a wait on another service
//! and belongs to [`super::waits`].
//!
//! Per service, pooled over all its operations (a saturated service
//! slows everything), and per operation (a slow code path), the latter as
//! significant as one look among as many operations ([`best_of`]); each
//! with the shift and tail tests of [`super::shift`].
//!
//! Spans a callee explains are left out: a caller whose callee failed or
//! ran longer than ever before in the same trace does extra work
//! (handling the error, waiting out a timeout) that is the callee's
//! ([`super::origins::explained_spans`]).

use super::score::{Family, best_of};
use super::shift::{References, pool, time_evidence};
use super::{Found, Map};
use crate::spans::{Interner, SpanRec, SpanSet};

/// What an own-time pool is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// All of a service's own spans.
    Service(u32),
    /// One operation's: (service, operation).
    Operation(u32, u32),
}

/// A span's own work, not a wait on a call into another service.
pub(super) fn is_own_work(s: &SpanRec) -> bool {
    super::waits::callee(s).is_none()
}

/// Own-time evidence per service.
pub(super) fn own_time_evidence(
    refs: &References,
    reference: &SpanSet,
    window: &SpanSet,
    explained: &[bool],
    strings: &Interner,
    evidence: &mut Map<u32, Vec<Found>>,
) {
    let pooled = pool(
        refs,
        reference,
        window,
        |i, s| !explained.get(i).copied().unwrap_or(false) && !s.child_error,
        |s, keys: &mut Vec<Key>| {
            if is_own_work(s) {
                keys.push(Key::Service(s.service));
                keys.push(Key::Operation(s.service, s.operation));
            }
        },
    );
    // Per service: its operations and the best of them.
    let mut best: Map<u32, (usize, Option<(f64, u32)>)> = Map::default();
    for key in pooled.points.keys() {
        let &Key::Operation(service, op) = key else {
            continue;
        };
        let score = pooled.score(key);
        let e = best.entry(service).or_default();
        e.0 += 1;
        if e.1.is_none_or(|(b, o)| score > b || (score == b && op < o)) {
            e.1 = Some((score, op));
        }
    }
    for (service, (ops, top)) in best {
        let Some((op_score, op)) = top else { continue };
        let whole = pooled.score(&Key::Service(service));
        let score = whole.max(best_of(op_score, ops));
        if score < 1.0 {
            continue;
        }
        let (Some(spans), Some(all)) = (
            pooled.points.get(&Key::Operation(service, op)),
            pooled.points.get(&Key::Service(service)),
        ) else {
            continue;
        };
        evidence.entry(service).or_default().push(Found {
            score,
            family: Family::OwnTime,
            evidence: time_evidence(
                strings.name(service).to_owned(),
                strings.name(op).to_owned(),
                spans,
                refs.median_ms(service, op),
                all.len(),
                score,
            ),
            pending: None,
        });
    }
}
