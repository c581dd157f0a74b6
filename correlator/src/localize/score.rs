//! The scoring core every evidence kind shares.
//!
//! Every test gives a signed z-score on one scale: the signed square root
//! of a deviance, `z² = 2 ln LR`, where LR is the likelihood ratio of
//! "changed" against "as in the reference". Scores of different kinds can
//! then be compared, and combined: independent observations multiply
//! their likelihood ratios, so their deviances add ([`combine`]).
//!
//! Surprise alone does not say where a fault is: a busy service's small
//! shift is as surprising as a quiet service's huge one, and only the
//! huge one is a fault's size. Every piece of evidence is therefore
//! ranked by its surprise times its effect in doublings, uncapped
//! ([`weighed`]): of a time ([`time_log_ratio`]) or of a count
//! ([`count_log_ratio`]).

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

/// [`two_rate_z`] with the window's expected share `p` given directly.
pub(super) fn share_z(k: f64, c: f64, p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    two_rate_z(k, c, p, 1.0 - p)
}

/// Signed binomial deviance z-score of `k` events in `n` trials at rate
/// `p` (as [`poisson_z`] for a binomial).
pub(super) fn binomial_z(k: f64, n: f64, p: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = p.clamp(1e-300, 1.0 - 1e-12);
    let term = |x: f64, e: f64| if x > 0.0 { x * (x / e).ln() } else { 0.0 };
    let g = 2.0 * (term(k, n * p) + term(n - k, n * (1.0 - p)));
    g.max(0.0).sqrt().copysign(k - n * p)
}

/// A z-score that is the best of `m` looks, as significant as one look:
/// Bonferroni on the deviance scale (`z²` is the deviance, and `m` looks
/// multiply a tail chance `≈ exp(-z²/2)` by `m`), `sqrt(z² - 2 ln m)`.
/// Subtracting the expected best of `m` chance z-scores (`sqrt(2 ln m)`)
/// instead would be right near chance level but too harsh on strong
/// evidence: it takes as much from a z of 6 as from a z of 2.
pub(super) fn best_of(z: f64, m: usize) -> f64 {
    if m <= 1 || z <= 0.0 {
        return z.max(0.0);
    }
    (z * z - 2.0 * (m as f64).ln()).max(0.0).sqrt()
}

/// Added to both sides of a time ratio ([`time_log_ratio`]): a shift of a
/// fraction of a millisecond is within the scheduling and timer noise of
/// any service (a context switch, a minor GC, a cache miss add tenths of a
/// millisecond), so 0.1 ms becoming 0.6 ms is not six times anything that
/// matters to a request, while 4 ms becoming 2 s is.
pub(super) const TIME_FLOOR_NS: f64 = 1_000_000.0;

/// The log ratio of a new time to an old one, both in ns, each plus
/// [`TIME_FLOOR_NS`].
pub(super) fn time_log_ratio(new_ns: f64, old_ns: f64) -> f64 {
    ((new_ns.max(0.0) + TIME_FLOOR_NS) / (old_ns.max(0.0) + TIME_FLOOR_NS)).ln()
}

/// The effect weight of a time shift of `log_ratio` (natural log of new
/// over old, see [`time_log_ratio`]): how many doublings, uncapped, 0 for
/// no slowdown. A shift
/// smaller than a doubling weighs less than its surprise (a busy
/// service's 10% drift is surprising and no fault); one larger weighs
/// more, one doubling at a time: a wait that went from 4 ms to 2 s is
/// nine doublings, a neighbour's own time going from 4 ms to 8 ms is one.
/// A fault is where the time is added, and faults (a hog, a network
/// delay, a lock) multiply times; what they cause elsewhere (a busier
/// neighbour, a shared node) shifts them by fractions.
pub(super) fn doublings(log_ratio: f64) -> f64 {
    (log_ratio / std::f64::consts::LN_2).max(0.0)
}

/// The log ratio of a new count to an old (expected) one, each plus one:
/// a count is uncertain by about one event either way at the smallest
/// counts, so 0 against 1 expected is no effect, and 0 against 25 is a
/// 26-fold drop (4.7 doublings), as is 25 against 0.
pub(super) fn count_log_ratio(new: f64, old: f64) -> f64 {
    ((new.max(0.0) + 1.0) / (old.max(0.0) + 1.0)).ln()
}

/// A ranking score: the surprise `z` (how sure the change is real) times
/// its effect in doublings (how large it is: see [`doublings`]), the same
/// for every kind of evidence, so that a large change in a quiet service
/// outranks a small change in a busy one.
pub(super) fn weighed(z: f64, log_ratio: f64) -> f64 {
    z.abs() * doublings(log_ratio.abs())
}

/// What physical observation a piece of evidence is, for [`combine`]:
/// evidence of one family is the same observation seen twice (an
/// exception is both an error span and an error log line), so only the
/// strongest of a family counts; families are different observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Family {
    /// What the service's code did: its error origins and log patterns.
    Behaviour,
    /// Time in the service's own spans (its work).
    OwnTime,
    /// Time its callers waited outside its spans, or that it waited on
    /// all its calls (network, queues).
    Waits,
}

/// A service's score from the strongest evidence of each family: the
/// root of the summed deviances (independent likelihood ratios multiply).
/// A service whose own time and its callers' waits both moved is more
/// surely the origin than one with either alone.
pub(super) fn combine(best: impl IntoIterator<Item = f64>) -> f64 {
    best.into_iter()
        .map(|z| z.max(0.0).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn best_of_m_looks_is_bonferroni_on_the_deviance_scale() {
        assert_eq!(best_of(2.5, 1), 2.5);
        assert_eq!(best_of(-1.0, 4), 0.0);
        // p ≈ exp(-z²/2): m looks at z are one look at sqrt(z² - 2 ln m).
        let z = best_of(6.0, 10);
        assert!((z * z - (36.0 - 2.0 * 10f64.ln())).abs() < 1e-9, "{z}");
        // Strong evidence loses little, weak evidence all.
        assert!(best_of(6.0, 10) > 5.5);
        assert_eq!(best_of(2.0, 10), 0.0);
    }

    #[test]
    fn effect_is_counted_in_doublings_without_a_cap() {
        assert_eq!(doublings(-0.3), 0.0);
        assert!((doublings(2f64.ln()) - 1.0).abs() < 1e-12);
        // 4 ms to 2 s: about nine doublings.
        assert!((doublings((2000.0f64 / 4.0).ln()) - 8.97).abs() < 0.01);
    }

    #[test]
    fn sub_millisecond_shifts_are_small_effects() {
        // 0.1 ms to 0.6 ms: well under a doubling; 4 ms to 8 ms: most of
        // one; 0.4 ms to 2 s: ten.
        assert!(doublings(time_log_ratio(0.6e6, 0.1e6)) < 0.6);
        assert!((doublings(time_log_ratio(8e6, 4e6)) - 0.85).abs() < 0.01);
        assert!(doublings(time_log_ratio(2e9, 0.4e6)) > 10.0);
    }

    #[test]
    fn counts_are_weighed_by_their_change_in_doublings() {
        assert!(count_log_ratio(0.0, 0.0).abs() < 1e-12);
        assert!((doublings(-count_log_ratio(0.0, 25.0)) - 4.7).abs() < 0.01);
        assert!((doublings(count_log_ratio(25.0, 0.0)) - 4.7).abs() < 0.01);
        // A drop from 100 to 50 is one doubling, whichever way.
        assert!((weighed(-6.0, count_log_ratio(50.0, 100.0)) - 6.0 * 0.986).abs() < 0.01);
    }

    #[test]
    fn families_combine_as_independent_likelihood_ratios() {
        assert_eq!(combine([3.0, 4.0]), 5.0);
        assert_eq!(combine([3.0, -2.0]), 3.0);
        assert_eq!(combine([]), 0.0);
    }
}
