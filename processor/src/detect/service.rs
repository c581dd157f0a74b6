//! Service-level detection over a sliding window: what the per-operation
//! detector cannot see at low volume.
//!
//! A service with three calls a minute never fills a 10-second window with
//! enough calls to estimate a p99, yet "every call of the last minute
//! failed" or "every call of the last minute took thirty times its usual
//! p99" is a clear signal. So instead of comparing quantiles, this counts
//! events whose rate in normal operation is learned, and tests the count:
//!
//! - errors: spans with status ERROR, against the service's error rate;
//! - slow calls: spans longer than `slow_factor` × their own operation's
//!   normal p99, against the rate of such spans (about 1% or less); since
//!   slow spans come in clusters (one slow query slows a request's spans
//!   together), the share must also be far outside its own variation
//!   between sliding windows, as for traffic;
//! - traffic: calls against the service's usual share of the tenant's
//!   calls (a daily cycle moves every service alike; a drop in one service
//!   does not); since real traffic is burstier than a Poisson process, the
//!   share must also be far outside its own usual variation.
//!
//! Each test bounds the probability of a count at least this extreme under
//! the learned rate (Chernoff: `exp(-n·KL(q‖p))` for a binomial, the
//! analogue for a Poisson count), and the score is its `-log10`: 6 is one in
//! a million. A minimum count and a minimum effect size keep noise from
//! paging anyone: a rate that is "significantly" 1.1 times its normal at
//! high volume is not an incident.
//!
//! Only the service's own spans count (not CLIENT or PRODUCER spans, whose
//! duration and status are the callee's): the caller of a failing service
//! shows up through its own server spans, and the graph groups them.

use std::collections::VecDeque;

use super::baseline::Baseline;
use super::seasonal::Seasonal;
use super::{Event, Finding, Metric};

/// What one window holds for one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Spans.
    pub calls: u64,
    /// Spans with status ERROR.
    pub errors: u64,
    /// Spans of operations that have a slow threshold yet.
    pub measured: u64,
    /// Of those, spans above their operation's threshold.
    pub slow: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.measured += o.measured;
        self.slow += o.slow;
    }
}

/// Settings of the sliding-window detectors.
#[derive(Debug, Clone, Copy)]
pub struct SlidingSettings {
    /// Length of the sliding window, ns.
    pub slide_ns: i64,
    /// Windows a service is seen before it is judged.
    pub warmup: usize,
    /// `-log10` probability that opens an anomaly.
    pub open_score: f64,
    /// Below this score a window counts as quiet.
    pub hold_score: f64,
    /// Events (errors, slow calls) the sliding window needs to open.
    pub min_events: u64,
    /// Error ratio must exceed the learned rate by this much.
    pub min_error_delta: f64,
    /// Share of slow calls must reach this.
    pub min_slow_share: f64,
    /// A span is slow above this many times its operation's normal p99.
    pub slow_factor: f64,
    /// Reference spans an operation needs before its threshold is used.
    pub min_reference: u64,
    /// Expected calls in the sliding window before traffic is judged.
    pub min_traffic: f64,
    /// A drop leaves at most this share of the expected calls.
    pub drop_ratio: f64,
    /// A surge brings at least this many times the expected calls.
    pub surge_ratio: f64,
    /// Quiet windows in a row that close an anomaly.
    pub quiet_windows: usize,
    /// Healthy windows remembered by the learned rates (they forget with
    /// this time constant).
    pub memory_windows: f64,
}

impl Default for SlidingSettings {
    fn default() -> Self {
        Self {
            slide_ns: 60_000_000_000,
            warmup: 12,
            open_score: 6.0,
            hold_score: 3.0,
            min_events: 3,
            min_error_delta: 0.05,
            min_slow_share: 0.1,
            slow_factor: 1.5,
            min_reference: 20,
            min_traffic: 30.0,
            drop_ratio: 0.5,
            surge_ratio: 2.5,
            // Two sliding windows: consecutive sliding sums share most of
            // their windows, so six quiet ones in a row are one noisy
            // minute, not a recovery.
            quiet_windows: 12,
            memory_windows: 360.0,
        }
    }
}

/// `-log10` of the Chernoff bound on `P(X >= k)`, `X ~ Binomial(n, p)`;
/// 0 when `k/n <= p`.
pub fn binomial_upper_score(k: u64, n: u64, p: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let q = k as f64 / n as f64;
    if q <= p {
        return 0.0;
    }
    n as f64 * kl(q, p) / std::f64::consts::LN_10
}

/// `-log10` of the Chernoff bound on `P(X >= k)` (`k > λ`) or `P(X <= k)`
/// (`k < λ`), `X ~ Poisson(λ)`.
pub fn poisson_score(k: f64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let t = if k <= 0.0 {
        lambda
    } else {
        lambda - k + k * (k / lambda).ln()
    };
    t.max(0.0) / std::f64::consts::LN_10
}

/// Kullback-Leibler divergence of Bernoulli(q) from Bernoulli(p), nats.
pub(crate) fn kl(q: f64, p: f64) -> f64 {
    let term = |a: f64, b: f64| if a <= 0.0 { 0.0 } else { a * (a / b).ln() };
    term(q, p) + term(1.0 - q, 1.0 - p)
}

/// A rate learned from healthy windows that forgets slowly, with a prior of
/// one event in a hundred trials so that a spotless short history does not
/// make one event infinitely surprising.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Rate {
    events: f64,
    trials: f64,
}

impl Rate {
    const PRIOR_EVENTS: f64 = 1.0;
    const PRIOR_TRIALS: f64 = 100.0;

    fn p(&self) -> f64 {
        ((self.events + Self::PRIOR_EVENTS) / (self.trials + Self::PRIOR_TRIALS)).clamp(1e-6, 0.999)
    }

    fn learn(&mut self, events: u64, trials: u64, memory: f64) {
        let keep = 1.0 - 1.0 / memory.max(1.0);
        self.events = self.events * keep + events as f64;
        self.trials = self.trials * keep + trials as f64;
    }
}

/// The sliding metrics, in a fixed order.
const SLIDING: [Metric; 4] = [
    Metric::ErrorRatio,
    Metric::SlowRatio,
    Metric::TrafficDrop,
    Metric::TrafficSurge,
];

/// Windows kept for the onset search (and the sliding sums).
const KEEP: usize = 30;

/// One window of a service.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Entry {
    start_ns: i64,
    counts: Counts,
    /// The tenant's calls in the same window.
    tenant: u64,
    /// Per metric: whether the metric was remarkable (or open) while this
    /// window was in the sliding window. Untainted windows teach.
    taint: [bool; 4],
    /// Whether it has left the sliding window and taught what it could.
    settled: bool,
}

fn slow_share_history() -> Baseline {
    Baseline::new(120)
}

/// Detection state of one service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServiceDetector {
    recent: VecDeque<Entry>,
    /// Windows that left the sliding window since the engine last asked,
    /// and whether their durations may teach (nothing slow built up while
    /// they were in it).
    settled: Vec<(i64, bool)>,
    errors: Rate,
    slow: Rate,
    /// The service's share of the tenant's calls, per sliding window.
    share: Baseline,
    /// The share by time of day, learned over days.
    #[serde(default)]
    seasonal_share: Seasonal,
    /// The share of slow calls, per healthy sliding window.
    #[serde(default = "slow_share_history")]
    slow_share: Baseline,
    /// Open metric: onset and quiet windows since.
    open: [Option<(i64, usize)>; 4],
    seen: usize,
}

impl ServiceDetector {
    /// A fresh detector.
    pub fn new() -> Self {
        Self {
            recent: VecDeque::with_capacity(KEEP),
            settled: Vec::new(),
            errors: Rate::default(),
            slow: Rate::default(),
            share: Baseline::new(120),
            seasonal_share: Seasonal::default(),
            slow_share: slow_share_history(),
            open: [None; 4],
            seen: 0,
        }
    }

    /// Forgets that `metric` is open (closed from outside).
    pub fn close(&mut self, metric: Metric) {
        if let Some(i) = SLIDING.iter().position(|m| *m == metric) {
            self.open[i] = None;
        }
    }

    /// Whether any metric is open.
    pub fn is_open(&self) -> bool {
        self.open.iter().any(Option::is_some)
    }

    /// Feeds the next window (in start order): this service's counts and
    /// the tenant's calls in the same window.
    pub fn observe(
        &mut self,
        s: &SlidingSettings,
        start_ns: i64,
        counts: Counts,
        tenant_calls: u64,
    ) -> Vec<Event> {
        if self.recent.len() == KEEP
            && let Some(old) = self.recent.pop_front()
            && !old.settled
        {
            self.settle(s, old);
        }
        self.recent.push_back(Entry {
            start_ns,
            counts,
            tenant: tenant_calls,
            taint: [false; 4],
            settled: false,
        });
        self.seen += 1;
        let (sum, tenant) = self.sliding(start_ns, s.slide_ns);
        let share = if tenant == 0 {
            0.0
        } else {
            sum.calls as f64 / tenant as f64
        };
        if tenant > 0 {
            self.seasonal_share.observe(start_ns, share);
        }
        let warm = self.seen > s.warmup;
        let mut events = Vec::new();
        let mut scores = [0.0; 4];
        // Two sliding windows, as multi-window alerting does: at a few
        // calls a minute, a minute holds too few failed or slow calls to
        // prove anything even when every call is affected, while twice
        // the window does; the longer look pays for being a second one.
        let (long, _) = self.sliding(start_ns, s.slide_ns.saturating_mul(2));
        for (i, metric) in SLIDING.into_iter().enumerate() {
            let (mut score, mut observed, mut expected) =
                self.score(s, metric, &sum, tenant, start_ns);
            let mut judged = sum;
            let mut look = s.slide_ns;
            if metric == Metric::SlowRatio {
                let (l_score, l_observed, l_expected) =
                    self.score(s, metric, &long, tenant, start_ns);
                let l_score = l_score - std::f64::consts::LOG10_2;
                if l_score > score {
                    (score, observed, expected) = (l_score, l_observed, l_expected);
                    judged = long;
                    look = s.slide_ns.saturating_mul(2);
                }
            }
            scores[i] = score;
            let opens = warm
                && score >= s.open_score
                && self.effect(s, metric, &judged, observed, expected);
            let finding = |onset_ns| Finding {
                metric,
                onset_ns,
                detected_ns: start_ns,
                observed,
                expected,
                score,
            };
            match self.open[i] {
                None if opens => {
                    let onset = self.onset(s, metric, start_ns, look, observed);
                    self.open[i] = Some((onset, 0));
                    events.push(Event::Opened(finding(onset)));
                }
                None => {}
                Some((onset, quiet)) => {
                    if score < s.hold_score {
                        let quiet = quiet + 1;
                        if quiet >= s.quiet_windows {
                            self.open[i] = None;
                            let since = self
                                .recent
                                .iter()
                                .rev()
                                .nth(quiet - 1)
                                .map_or(start_ns, |r| r.start_ns);
                            events.push(Event::Resolved {
                                metric,
                                since_ns: since,
                            });
                        } else {
                            self.open[i] = Some((onset, quiet));
                        }
                    } else {
                        self.open[i] = Some((onset, 0));
                        events.push(Event::Ongoing(finding(onset)));
                    }
                }
            }
        }
        // A window teaches only after it left the sliding window without
        // having been part of anything remarkable: a fault must not become
        // normal, neither over a long time nor in the windows before it is
        // confirmed.
        let horizon = start_ns - s.slide_ns;
        let mut leaving = Vec::new();
        for (idx, e) in self.recent.iter_mut().enumerate() {
            if e.start_ns > horizon {
                for (i, score) in scores.iter().enumerate() {
                    e.taint[i] |= *score >= s.hold_score || self.open[i].is_some();
                }
            } else if !e.settled {
                e.settled = true;
                leaving.push(idx);
            }
        }
        for idx in leaving {
            if let Some(e) = self.recent.get(idx).copied() {
                self.settle(s, e);
            }
        }
        // Every sliding window not in a slow-call anomaly teaches the
        // share's variation, remarkable or not: clusters are what it must
        // learn, and a window left out for being remarkable would keep
        // them surprising forever.
        if self.open[1].is_none() && sum.measured > 0 {
            self.slow_share.push(sum.slow as f64 / sum.measured as f64);
        }
        if self.open[2].is_none()
            && self.open[3].is_none()
            && scores[2] < s.hold_score
            && scores[3] < s.hold_score
            && tenant > 0
        {
            self.share.push(share);
        }
        events
    }

    /// Learns from a window that left the sliding window.
    fn settle(&mut self, s: &SlidingSettings, e: Entry) {
        if !e.taint[0] {
            self.errors
                .learn(e.counts.errors, e.counts.calls, s.memory_windows);
        }
        let latency_ok = !e.taint[1];
        if latency_ok {
            self.slow
                .learn(e.counts.slow, e.counts.measured, s.memory_windows);
        }
        self.settled.push((e.start_ns, latency_ok));
    }

    /// Windows settled since the last call: (start, whether the
    /// operations' durations of that window may teach their references).
    pub fn take_settled(&mut self) -> Vec<(i64, bool)> {
        std::mem::take(&mut self.settled)
    }

    /// Sums over the sliding window ending with the window at `now_ns`.
    fn sliding(&self, now_ns: i64, slide_ns: i64) -> (Counts, u64) {
        let mut sum = Counts::default();
        let mut tenant = 0;
        for e in self.recent.iter().rev() {
            if e.start_ns <= now_ns - slide_ns {
                break;
            }
            sum.add(&e.counts);
            tenant += e.tenant;
        }
        (sum, tenant)
    }

    /// Score, observed and expected of `metric` for a sliding sum.
    fn score(
        &self,
        s: &SlidingSettings,
        metric: Metric,
        sum: &Counts,
        tenant: u64,
        now_ns: i64,
    ) -> (f64, f64, f64) {
        let ratio = |k: u64, n: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        match metric {
            Metric::ErrorRatio => {
                let p = self.errors.p();
                (
                    binomial_upper_score(sum.errors, sum.calls, p),
                    ratio(sum.errors, sum.calls),
                    p,
                )
            }
            Metric::SlowRatio => {
                let p = self.slow.p();
                let observed = ratio(sum.slow, sum.measured);
                let mut score = binomial_upper_score(sum.slow, sum.measured, p);
                // Slow calls come in clusters (a slow query makes a
                // request's spans slow together), not as independent
                // trials: as for traffic, the share must also be far
                // outside how much it usually varies between sliding
                // windows, once there is a history of it.
                if self.slow_share.len() >= s.warmup {
                    score = score.min(self.slow_share.robust_z_floored(observed, 1e-9));
                }
                (score, observed, p)
            }
            Metric::TrafficDrop | Metric::TrafficSurge => {
                let expected = self.share.median() * tenant as f64;
                let k = sum.calls as f64;
                // The share needs a history of its own (and there is none
                // when the caller has no tenant totals to give).
                if expected < s.min_traffic || self.share.len() < s.warmup {
                    return (0.0, k, expected);
                }
                let below = k < expected;
                if below != (metric == Metric::TrafficDrop) {
                    return (0.0, k, expected);
                }
                // Real traffic is burstier than Poisson: the shift must also
                // be far outside how much this service's share usually
                // varies (robust z in spreads of the share's history); the
                // score is the smaller of the two.
                let share = if tenant == 0 { 0.0 } else { k / tenant as f64 };
                let z = self.share.robust_z_floored(share, 1e-9).abs();
                let mut score = poisson_score(k, expected).min(z);
                // Where days of history say what the share usually is at
                // this time of day, a shift to it is the time of day (a
                // nightly batch), not news: the share must also be far
                // from that, by the same two tests.
                if let Some(usual) = self.seasonal_share.expected(now_ns) {
                    let usual_calls = usual * tenant as f64;
                    if (k < usual_calls) != (metric == Metric::TrafficDrop) {
                        score = 0.0;
                    } else {
                        let zs = self.share.robust_z_around(share, usual, 1e-9).abs();
                        score = score.min(poisson_score(k, usual_calls)).min(zs);
                    }
                }
                (score, k, expected)
            }
            _ => (0.0, 0.0, 0.0),
        }
    }

    /// Whether the shift is large enough to matter, beyond significant.
    fn effect(
        &self,
        s: &SlidingSettings,
        metric: Metric,
        sum: &Counts,
        observed: f64,
        expected: f64,
    ) -> bool {
        match metric {
            Metric::ErrorRatio => {
                sum.errors >= s.min_events && observed - expected >= s.min_error_delta
            }
            Metric::SlowRatio => sum.slow >= s.min_events && observed >= s.min_slow_share,
            Metric::TrafficDrop => observed <= expected * s.drop_ratio,
            Metric::TrafficSurge => observed >= expected * s.surge_ratio,
            _ => false,
        }
    }

    /// The change point: walking back from the newest window, the earliest
    /// of the consecutive windows that already show the shift on their own;
    /// windows without calls do not break the run, nor, when the longer
    /// look proved the shift, do windows within it too thin to show it (at
    /// the observed share, no slow call among their few calls is likely: a
    /// shift at a few calls a minute shows every other window).
    fn onset(
        &self,
        s: &SlidingSettings,
        metric: Metric,
        now_ns: i64,
        look_ns: i64,
        observed: f64,
    ) -> i64 {
        // Under the shift, a window of `n` calls shows none of it with
        // probability (1 - observed)^n; below this, its silence counts.
        const PLAUSIBLE: f64 = 0.05;
        let thin = |n: u64, start: i64| {
            look_ns > s.slide_ns
                && start > now_ns - look_ns
                && (1.0 - observed.clamp(0.0, 1.0)).powf(n as f64) > PLAUSIBLE
        };
        let mut onset = now_ns;
        let (pe, ps) = (self.errors.p(), self.slow.p());
        let share = self.share.median();
        for Entry {
            start_ns: start,
            counts: c,
            tenant,
            ..
        } in self.recent.iter().rev()
        {
            let shifted = match metric {
                Metric::ErrorRatio if c.calls > 0 => {
                    Some(c.errors > 0 && c.errors as f64 / c.calls as f64 > 3.0 * pe)
                }
                Metric::SlowRatio if c.measured > 0 && c.slow == 0 && thin(c.measured, *start) => {
                    None
                }
                Metric::SlowRatio if c.measured > 0 => {
                    Some(c.slow > 0 && c.slow as f64 / c.measured as f64 > 3.0 * ps)
                }
                Metric::TrafficDrop if *tenant > 0 => {
                    Some((c.calls as f64) < share * *tenant as f64 * s.drop_ratio.max(0.75))
                }
                Metric::TrafficSurge if *tenant > 0 => {
                    Some(c.calls as f64 > share * *tenant as f64 * 1.5)
                }
                _ => None,
            };
            match shifted {
                Some(true) => onset = *start,
                Some(false) => break,
                None => {}
            }
        }
        onset
    }
}

impl Default for ServiceDetector {
    fn default() -> Self {
        Self::new()
    }
}
