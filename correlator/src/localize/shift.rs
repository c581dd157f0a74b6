//! The time-shift tests own time and waits share: where each window
//! span's time falls in its operation's reference, pooled by a key (a
//! service, an operation, a call edge), and how surprising and how large
//! a pool's shift is.
//!
//! - **Shift.** Each window span's time is placed in its operation's
//!   reference distribution (a mid-rank quantile, uniform when nothing
//!   changed); the pool's mean quantile gives a z-score, weighed by the
//!   typical slowdown in doublings ([`super::score::doublings`]), and
//!   divided by the reference's own between-slice variation (drift).
//! - **Tail.** A starved service may serve most calls as usual and a few
//!   far slower: the count of spans beyond their operation's slowest
//!   reference span (each has chance `1/(n+1)` of that under no change,
//!   raised where the reference itself drifts past its older maximum),
//!   from two such spans up, weighed by how far beyond.
//! - **Later part.** Each also over the window's later part (last half,
//!   quarter, … to 30 s), less the best of as many chance looks, since a
//!   saturation that joins an incident opened by something else is
//!   diluted over the whole window by the healthy spans before it.

use std::hash::Hash;

use super::score::{best_of, binomial_z, doublings, time_log_ratio};
use super::{MIN_REFERENCE_SPANS, MIN_WINDOW_SPANS, Map};
use crate::spans::{SpanRec, SpanSet};

/// Reference slices for the drift estimate.
const SLICE_NS: i64 = super::patterns::SLICE_NS;

/// Where one window span's self time falls in its operation's reference.
#[derive(Debug, Clone, Copy)]
pub(super) struct Point {
    pub(super) start_ns: i64,
    /// Mid-rank quantile.
    pub(super) u: f64,
    /// Log ratio to the reference median (see `time_log_ratio`).
    pub(super) log_ratio: f64,
    /// Log ratio to the reference maximum, as `log_ratio` (above 0: beyond anything
    /// seen before).
    pub(super) over_max: f64,
    /// Chance of a value beyond the reference maximum (see [`Tail`]); 1
    /// when not beyond it.
    pub(super) tail_p: f64,
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
        let over = time_log_ratio(v as f64, self.max as f64);
        (over, if v > self.max { self.beyond_max } else { 1.0 })
    }
}

/// The mid-rank quantile of `v` in the sorted `reference`, in (0, 1):
/// uniform when `v` comes from the same distribution.
pub(super) fn quantile(reference: &[i64], v: i64) -> f64 {
    let lo = reference.partition_point(|&x| x < v);
    let hi = reference.partition_point(|&x| x <= v);
    ((lo + hi) as f64 / 2.0 + 0.5) / (reference.len() as f64 + 1.0)
}

/// z-score of a mean of `n` mid-rank quantiles against uniform, times
/// the median's shift in doublings.
pub(super) fn shift_score(quantile_sum: f64, n: usize, log_ratios: &mut [f64]) -> f64 {
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
    z * doublings(effect)
}

/// Most extreme spans the tail test considers together.
const MAX_TAIL_SPANS: usize = 10;

/// The tail test of window spans: the `k` spans furthest beyond their
/// operation's reference maximum (`k` from 2: one stray span is no
/// shift), against `k` of `n` at the largest chance among them (valid
/// for any mix of operations: each span's chance of being beyond its
/// maximum is `1 / (reference + 1)`, so the spans with at most that
/// chance number at most a binomial count), times how many doublings
/// beyond the reference maximum the least extreme of them is; the best
/// `k`, as significant as one look ([`best_of`]).
///
/// Spans are taken furthest beyond first, not rarest first: in a pool
/// of operations, a span barely beyond the maximum of a large reference
/// is "rarer" than one far beyond a small reference's, and taking it
/// first would weigh every set it starts by its negligible effect (a
/// starved service's callers waiting 3x to 8x their longest wait would
/// count for nothing beside its own spans 1% over theirs).
pub(super) fn tail_score(points: &[Point]) -> f64 {
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
        best = best.max(z * doublings(over));
    }
    best_of(best, looks)
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
pub(super) fn scanned_shift(points: &mut [Point], phi: f64) -> f64 {
    fn score(points: &[Point], phi: f64) -> f64 {
        let usum: f64 = points.iter().map(|p| p.u).sum();
        let mut logs: Vec<f64> = points.iter().map(|p| p.log_ratio).collect();
        (shift_score(usum, points.len(), &mut logs) / phi).max(tail_score(points))
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
    whole.max(best_of(best, looks))
}

/// How often a pool's reference passes its own older maximum: the
/// tail test's chance `1 / (n + 1)` holds when the window and the
/// reference come from one distribution, and a service whose time
/// drifts upward through the day (a growing table, a filling cache)
/// passes an older maximum more often with no fault, by about as much
/// between the reference's halves as between the reference and the
/// window that follows it. How far beyond matters: a drift carries
/// spans a little past the maximum, not twenty times past it.
#[derive(Debug, Default)]
pub(super) struct Drift {
    /// Log ratios to the older half's maximum of the newer half's spans
    /// that passed it, ascending.
    passes: Vec<f64>,
    /// Passes expected under no drift: `Σ 1 / (n + 1)`.
    expected: f64,
}

impl Drift {
    /// How many times the chance of passing the maximum by `over` (log
    /// ratio) is raised: the newer half's passes at least that far
    /// against those expected, each shrunk toward no drift by one
    /// pseudo-pass at the expected rate (a small reference says little
    /// either way), at least 1.
    pub(super) fn factor(&self, over: f64) -> f64 {
        let at_least = self.passes.len() - self.passes.partition_point(|&x| x < over);
        ((at_least as f64 + 1.0) / (self.expected + 1.0)).max(1.0)
    }
}

/// Every (service, operation)'s reference self times, sorted, for
/// operations with [`MIN_REFERENCE_SPANS`] or more.
pub(super) struct References(Map<(u32, u32), Vec<i64>>);

impl References {
    pub(super) fn of(reference: &SpanSet) -> Self {
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
        Self(by_op)
    }

    /// The sorted reference of a span's operation.
    pub(super) fn get(&self, s: &SpanRec) -> Option<&[i64]> {
        self.0.get(&(s.service, s.operation)).map(Vec::as_slice)
    }

    /// Median self time of `(service, operation)`'s reference, ms.
    pub(super) fn median_ms(&self, service: u32, operation: u32) -> f64 {
        self.0
            .get(&(service, operation))
            .map_or(0.0, |r| r[r.len() / 2] as f64 / 1e6)
    }

    /// Where `s`'s self time falls in its operation's reference.
    fn point(&self, s: &SpanRec) -> Option<Point> {
        let r = self.get(s)?;
        let v = s.self_ns.max(1);
        let median = r[r.len() / 2];
        let (over_max, tail_p) = Tail::of(r).place(v);
        Some(Point {
            start_ns: s.start_ns,
            u: quantile(r, v),
            log_ratio: time_log_ratio(v as f64, median as f64),
            over_max,
            tail_p,
        })
    }
}

/// A time evidence of `service`: the median own time of the window spans
/// of the pool that scored best (`spans`, against `expected_ms`), the
/// spans of the whole pool (`pooled`), and the slowest spans as examples.
pub(super) fn time_evidence(
    service: String,
    operation: String,
    spans: &[(&SpanRec, Point)],
    expected_ms: f64,
    pooled: usize,
    score: f64,
) -> causeway_model::rca::Evidence {
    let mut times: Vec<i64> = spans.iter().map(|(s, _)| s.self_ns.max(1)).collect();
    times.sort_unstable();
    let observed_ms = times.get(times.len() / 2).map_or(0.0, |&t| t as f64 / 1e6);
    let mut examples: Vec<&SpanRec> = spans.iter().map(|&(s, _)| s).collect();
    examples.sort_by_key(|s| std::cmp::Reverse(s.self_ns));
    causeway_model::rca::Evidence::SelfTime {
        service,
        operation,
        observed_ms,
        expected_ms,
        spans: pooled as u64,
        score,
        trace_ids: examples
            .iter()
            .take(super::EXAMPLES)
            .map(|s| super::hex(&s.trace))
            .collect(),
    }
}

/// Window spans pooled by key, with where each falls ([`Point`]), and
/// per key the reference's drift between slices, as the divisor of the
/// shift's z-score (`phi`, at least 1).
pub(super) struct Pooled<'a, K> {
    pub(super) points: Map<K, Vec<(&'a SpanRec, Point)>>,
    pub(super) phi: Map<K, f64>,
}

impl<K: Copy + Eq + Hash> Pooled<'_, K> {
    /// The scanned shift score of one key's pool ([`scanned_shift`]).
    pub(super) fn score(&self, key: &K) -> f64 {
        let Some(spans) = self.points.get(key) else {
            return 0.0;
        };
        let mut points: Vec<Point> = spans.iter().map(|&(_, p)| p).collect();
        scanned_shift(&mut points, self.phi.get(key).copied().unwrap_or(1.0))
    }
}

/// Pools window spans (those `use_span` allows) and reference spans by
/// the keys `keys` gives each (none: not in any pool). The tail test's
/// chance is raised per key by the drift its reference shows
/// ([`Drift`]); the shift's z-score is divided per key by the
/// reference's between-slice variation: each reference span's quantile
/// within its operation's reference, averaged per slice, against the
/// variance of a mean of uniforms (quasi-likelihood, as for patterns).
pub(super) fn pool<'a, K: Copy + Eq + Hash>(
    refs: &References,
    reference: &SpanSet,
    window: &'a SpanSet,
    use_span: impl Fn(usize, &SpanRec) -> bool,
    keys: impl Fn(&SpanRec, &mut Vec<K>),
) -> Pooled<'a, K> {
    let drift = tail_drift(reference, &keys);
    let mut out = Pooled {
        points: Map::default(),
        phi: Map::default(),
    };
    let mut ks = Vec::new();
    for (i, s) in window.spans.iter().enumerate() {
        if !use_span(i, s) {
            continue;
        }
        let Some(point) = refs.point(s) else {
            continue;
        };
        ks.clear();
        keys(s, &mut ks);
        for &key in &ks {
            let mut point = point;
            if let (Some(d), true) = (drift.get(&key), point.over_max > 0.0) {
                point.tail_p = (point.tail_p * d.factor(point.over_max)).min(1.0);
            }
            out.points.entry(key).or_default().push((s, point));
        }
    }
    let mut slices: Map<(K, i64), (f64, u64)> = Map::default();
    for s in &reference.spans {
        let Some(r) = refs.get(s) else { continue };
        let u = quantile(r, s.self_ns.max(1));
        ks.clear();
        keys(s, &mut ks);
        for &key in &ks {
            let e = slices
                .entry((key, s.start_ns.div_euclid(SLICE_NS)))
                .or_default();
            e.0 += u;
            e.1 += 1;
        }
    }
    let mut chi: Map<K, (f64, usize)> = Map::default();
    for (&(key, _), &(usum, n)) in &slices {
        let mean = usum / n as f64;
        let e = chi.entry(key).or_default();
        e.0 += 12.0 * n as f64 * (mean - 0.5).powi(2);
        e.1 += 1;
    }
    for (key, (c, k)) in chi {
        if k >= 3 {
            out.phi.insert(key, (c / (k - 1) as f64).max(1.0).sqrt());
        }
    }
    out
}

/// Per key, its [`Drift`]: the reference split at its median start
/// time, each operation's older half's maximum (from
/// [`MIN_REFERENCE_SPANS`] spans) passed or not by its newer half.
pub(super) fn tail_drift<K: Copy + Eq + Hash>(
    reference: &SpanSet,
    keys: &impl Fn(&SpanRec, &mut Vec<K>),
) -> Map<K, Drift> {
    let mut starts: Vec<i64> = reference.spans.iter().map(|s| s.start_ns).collect();
    if starts.len() < 2 * MIN_REFERENCE_SPANS {
        return Map::default();
    }
    let mid = *starts.select_nth_unstable(reference.spans.len() / 2).1;
    // Older half: (service, operation) → (maximum, spans).
    let mut older: Map<(u32, u32), (i64, usize)> = Map::default();
    for s in reference.spans.iter().filter(|s| s.start_ns < mid) {
        let e = older.entry((s.service, s.operation)).or_default();
        e.0 = e.0.max(s.self_ns.max(1));
        e.1 += 1;
    }
    let mut drift: Map<K, Drift> = Map::default();
    let mut ks = Vec::new();
    for s in reference.spans.iter().filter(|s| s.start_ns >= mid) {
        let Some(&(max, n)) = older.get(&(s.service, s.operation)) else {
            continue;
        };
        if n < MIN_REFERENCE_SPANS {
            continue;
        }
        let v = s.self_ns.max(1);
        ks.clear();
        keys(s, &mut ks);
        for &key in &ks {
            let d = drift.entry(key).or_default();
            d.expected += 1.0 / (n + 1) as f64;
            if v > max {
                d.passes.push(time_log_ratio(v as f64, max as f64));
            }
        }
    }
    for d in drift.values_mut() {
        d.passes.sort_by(f64::total_cmp);
    }
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
