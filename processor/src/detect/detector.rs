//! The per-series kernel: what is measured per window ([`Metric`]), what
//! a detector reports ([`Event`], [`Finding`]), and [`SeriesDetector`], a
//! robust baseline per metric that reports a shift with its onset.

use std::collections::VecDeque;

use super::baseline::Baseline;
use super::service;
use crate::series::CellStats;

/// What is measured per window.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Metric {
    /// Median duration.
    LatencyP50,
    /// 90th percentile duration.
    LatencyP90,
    /// 99th percentile duration.
    LatencyP99,
    /// Errors / calls.
    ErrorRatio,
    /// Share of calls slower than their operation's normal p99 (sliding).
    SlowRatio,
    /// Share of an operation's own spans whose self time is beyond its
    /// normal self-time p99 (sliding).
    SlowSelfTimeRatio,
    /// Calls well below the usual share of the tenant's traffic (sliding).
    TrafficDrop,
    /// Calls well above it (sliding).
    TrafficSurge,
    /// Median self time (duration minus time in children).
    SelfTimeP50,
    /// 90th percentile self time.
    SelfTimeP90,
    /// 99th percentile self time.
    SelfTimeP99,
}

impl Metric {
    /// The metrics of a window's quantiles and ratio, in a fixed order.
    pub const ALL: [Metric; 4] = [
        Metric::LatencyP50,
        Metric::LatencyP90,
        Metric::LatencyP99,
        Metric::ErrorRatio,
    ];

    /// The stable name (API, storage).
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP90 => "latency_p90",
            Metric::LatencyP99 => "latency_p99",
            Metric::ErrorRatio => "error_ratio",
            Metric::SlowRatio => "slow_ratio",
            Metric::SlowSelfTimeRatio => "slow_self_time_ratio",
            Metric::TrafficDrop => "traffic_drop",
            Metric::TrafficSurge => "traffic_surge",
            Metric::SelfTimeP50 => "self_time_p50",
            Metric::SelfTimeP90 => "self_time_p90",
            Metric::SelfTimeP99 => "self_time_p99",
        }
    }

    /// The self-time metric a latency metric becomes when a
    /// `SeriesDetector` watches self-time windows (none for error ratio:
    /// self time has no errors of its own).
    pub fn as_self_time(self) -> Option<Metric> {
        match self {
            Metric::LatencyP50 => Some(Metric::SelfTimeP50),
            Metric::LatencyP90 => Some(Metric::SelfTimeP90),
            Metric::LatencyP99 => Some(Metric::SelfTimeP99),
            _ => None,
        }
    }

    /// The latency metric behind a self-time metric (what its
    /// `SeriesDetector` calls it).
    pub fn of_self_time(self) -> Option<Metric> {
        match self {
            Metric::SelfTimeP50 => Some(Metric::LatencyP50),
            Metric::SelfTimeP90 => Some(Metric::LatencyP90),
            Metric::SelfTimeP99 => Some(Metric::LatencyP99),
            _ => None,
        }
    }

    fn value(self, s: &CellStats) -> f64 {
        match self {
            Metric::LatencyP50 => s.p50_us as f64,
            Metric::LatencyP90 => s.p90_us as f64,
            Metric::LatencyP99 => s.p99_us as f64,
            Metric::ErrorRatio => {
                if s.calls == 0 {
                    0.0
                } else {
                    s.errors as f64 / s.calls as f64
                }
            }
            // Sliding metrics are computed by `ServiceDetector`; self-time
            // windows are fed to a `SeriesDetector` as latency.
            Metric::SlowRatio
            | Metric::SlowSelfTimeRatio
            | Metric::TrafficDrop
            | Metric::TrafficSurge
            | Metric::SelfTimeP50
            | Metric::SelfTimeP90
            | Metric::SelfTimeP99 => 0.0,
        }
    }

    /// Index into `ALL` (the other metrics share the last slot, never
    /// used by `SeriesDetector`).
    fn index(self) -> usize {
        (self as usize).min(3)
    }
}

/// Detector settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectSettings {
    /// Windows a baseline remembers.
    pub history: usize,
    /// Windows seen before anything is reported.
    pub warmup: usize,
    /// Calls a window needs to judge its p50 (three times as many for the
    /// p90, ten times for the p99): quantiles of a handful of spans are
    /// noise.
    pub min_calls: u64,
    /// Robust z-score that opens an anomaly.
    pub z_open: f64,
    /// Robust z-score that still counts as anomalous (onset search and
    /// recovery).
    pub z_hold: f64,
    /// Latency must also be this many times the baseline median.
    pub min_latency_ratio: f64,
    /// Errors a window needs before an error anomaly opens.
    pub min_errors: u64,
    /// The error ratio must also exceed the baseline's by this much.
    pub min_error_ratio_delta: f64,
    /// Normal windows in a row that close an anomaly.
    pub quiet_windows: usize,
    /// Event time a tenant is observed before new error signatures count
    /// as new, ns.
    pub signature_learn_ns: i64,
    /// A new-signature anomaly closes this long after it appeared, ns.
    pub signature_quiet_ns: i64,
    /// A reported signature silent this long is reported again when it
    /// recurs, ns.
    pub signature_regress_ns: i64,
    /// Occurrences within `signature_confirm_ns` that make a signature news.
    pub signature_confirm: usize,
    /// See `signature_confirm`, ns.
    pub signature_confirm_ns: i64,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            history: 120,
            warmup: 30,
            min_calls: 30,
            z_open: 6.0,
            z_hold: 3.0,
            min_latency_ratio: 1.5,
            min_errors: 3,
            min_error_ratio_delta: 0.05,
            quiet_windows: 6,
            signature_learn_ns: 10 * 60_000_000_000,
            signature_quiet_ns: 60_000_000_000,
            signature_regress_ns: 10 * 60_000_000_000,
            signature_confirm: 3,
            signature_confirm_ns: 5 * 60_000_000_000,
        }
    }
}

/// A finding about one metric of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Which metric.
    pub metric: Metric,
    /// Start of the first window of the shift, unix ns.
    pub onset_ns: i64,
    /// Start of the window that confirmed it, unix ns.
    pub detected_ns: i64,
    /// The metric in that window (µs for latency, a ratio for errors); for
    /// the sliding detectors, over the sliding window (a ratio, or calls).
    pub observed: f64,
    /// What the baseline expects, same unit.
    pub expected: f64,
    /// How far: a robust z-score (spreads away), or for the sliding
    /// detectors `-log10` of the probability.
    pub score: f64,
}

/// A change of state of one metric of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The metric shifted.
    Opened(Finding),
    /// Still shifted; the newest window's figures.
    Ongoing(Finding),
    /// Back to normal since the given window start.
    Resolved {
        /// Which metric.
        metric: Metric,
        /// First normal window of the quiet run, unix ns.
        since_ns: i64,
    },
}

impl Event {
    /// The same event about another metric: `to` maps this event's
    /// metric, and an event it maps to nothing is dropped (how a detector
    /// run over self times, or over one aspect, reports under its own
    /// names).
    pub fn renamed(self, to: impl Fn(Metric) -> Option<Metric>) -> Option<Event> {
        match self {
            Event::Opened(f) => Some(Event::Opened(Finding {
                metric: to(f.metric)?,
                ..f
            })),
            Event::Ongoing(f) => Some(Event::Ongoing(Finding {
                metric: to(f.metric)?,
                ..f
            })),
            Event::Resolved { metric, since_ns } => Some(Event::Resolved {
                metric: to(metric)?,
                since_ns,
            }),
        }
    }
}

/// One recent window, kept for the onset search.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct Recent {
    pub(super) start_ns: i64,
    pub(super) stats: CellStats,
}

/// State of one metric.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct MetricState {
    pub(super) baseline: Baseline,
    /// Open anomaly: its onset, and normal windows seen in a row since.
    pub(super) open: Option<(i64, usize)>,
}

/// Detection state of one series (one RED key or one edge).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesDetector {
    pub(super) metrics: [MetricState; 4],
    pub(super) recent: VecDeque<Recent>,
    pub(super) seen: usize,
}

/// Windows kept for the onset search.
pub(super) const RECENT: usize = 30;

impl SeriesDetector {
    /// A fresh detector.
    pub fn new(settings: &DetectSettings) -> Self {
        let state = || MetricState {
            baseline: Baseline::new(settings.history),
            open: None,
        };
        Self {
            metrics: [state(), state(), state(), state()],
            recent: VecDeque::with_capacity(RECENT),
            seen: 0,
        }
    }

    /// Feeds the next sealed window (in start order) and returns what changed.
    pub fn observe(
        &mut self,
        settings: &DetectSettings,
        start_ns: i64,
        stats: CellStats,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let warm = self.seen >= settings.warmup;
        for metric in Metric::ALL {
            let Some(z) = self.score(settings, metric, &stats) else {
                continue;
            };
            let state = &mut self.metrics[metric.index()];
            let expected = state.baseline.median();
            let observed = metric.value(&stats);
            let shifted = warm && opens(settings, metric, &stats, z, expected);
            let finding = |onset_ns| Finding {
                metric,
                onset_ns,
                detected_ns: start_ns,
                observed,
                expected,
                score: z,
            };
            match state.open {
                None if shifted => {
                    let onset = onset(settings, metric, &state.baseline, &self.recent, start_ns);
                    state.open = Some((onset, 0));
                    events.push(Event::Opened(finding(onset)));
                }
                None => {
                    // Only normal windows teach the baseline, once it has
                    // learned enough to say what normal is.
                    if z < settings.z_open || state.baseline.len() < settings.warmup {
                        state.baseline.push(observed);
                    }
                }
                Some((onset, quiet)) => {
                    if z < settings.z_hold {
                        let quiet = quiet + 1;
                        if quiet >= settings.quiet_windows {
                            state.open = None;
                            // The quiet run began `quiet - 1` windows ago.
                            let since = if quiet == 1 {
                                start_ns
                            } else {
                                self.recent
                                    .iter()
                                    .rev()
                                    .nth(quiet - 2)
                                    .map_or(start_ns, |r| r.start_ns)
                            };
                            events.push(Event::Resolved {
                                metric,
                                since_ns: since,
                            });
                        } else {
                            state.open = Some((onset, quiet));
                        }
                    } else {
                        state.open = Some((onset, 0));
                        events.push(Event::Ongoing(finding(onset)));
                    }
                }
            }
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent { start_ns, stats });
        self.seen += 1;
        events
    }

    /// Forgets that `metric` is open (its anomaly was closed from outside:
    /// the series stopped being observed).
    pub fn close(&mut self, metric: Metric) {
        if Metric::ALL.contains(&metric) {
            self.metrics[metric.index()].open = None;
        }
    }

    /// Whether any metric is anomalous now.
    pub fn is_open(&self) -> bool {
        self.metrics.iter().any(|m| m.open.is_some())
    }

    /// The score of `stats` for `metric` against its baseline, or `None`
    /// when the window has too little volume to say anything.
    fn score(&self, settings: &DetectSettings, metric: Metric, stats: &CellStats) -> Option<f64> {
        score(
            settings,
            metric,
            &self.metrics[metric.index()].baseline,
            stats,
        )
    }
}

pub(super) fn score(
    settings: &DetectSettings,
    metric: Metric,
    baseline: &Baseline,
    stats: &CellStats,
) -> Option<f64> {
    match metric {
        Metric::ErrorRatio => {
            if stats.calls == 0 {
                return None;
            }
            // Binomial test against the baseline ratio, with a prior of
            // one error in a hundred calls so a spotless history does not
            // make a single error infinitely surprising. The z is the
            // signed root of the likelihood-ratio deviance: at the small
            // error ratios of healthy traffic the Wald z `(k - np) /
            // sqrt(np(1-p))` is far off (3 errors in 21 calls against 1%
            // is z 6.1 by Wald, a 1-in-800 event in fact; the deviance
            // says 3.3, which is what a normal tail of 1 in 800 is).
            let p0 = ((baseline.median() * 100.0) + 1.0) / 101.0;
            let p0 = p0.clamp(1e-4, 0.999);
            let n = stats.calls as f64;
            let q = stats.errors as f64 / n;
            let z = (2.0 * n * service::kl(q, p0)).max(0.0).sqrt();
            Some(if q < p0 { -z } else { z })
        }
        _ => {
            // A quantile needs calls beyond it: the p99 of 20 calls is
            // their maximum, which is noise.
            let needed = match metric {
                Metric::LatencyP90 => settings.min_calls * 3,
                Metric::LatencyP99 => settings.min_calls * 10,
                _ => settings.min_calls,
            };
            if stats.calls < needed {
                return None;
            }
            if baseline.is_empty() {
                return Some(0.0);
            }
            Some(baseline.robust_z(metric.value(stats)))
        }
    }
}

/// Whether a window with score `z` opens an anomaly.
pub(super) fn opens(
    settings: &DetectSettings,
    metric: Metric,
    stats: &CellStats,
    z: f64,
    expected: f64,
) -> bool {
    if z < settings.z_open {
        return false;
    }
    let observed = metric.value(stats);
    match metric {
        Metric::ErrorRatio => {
            stats.errors >= settings.min_errors
                && observed - expected >= settings.min_error_ratio_delta
        }
        _ => observed >= expected * settings.min_latency_ratio,
    }
}

/// The change point: walking back from the newest window, the earliest of
/// the consecutive windows that were already shifted (`z >= z_hold`).
pub(super) fn onset(
    settings: &DetectSettings,
    metric: Metric,
    baseline: &Baseline,
    recent: &VecDeque<Recent>,
    detected_ns: i64,
) -> i64 {
    let mut onset = detected_ns;
    for r in recent.iter().rev() {
        match score(settings, metric, baseline, &r.stats) {
            Some(z) if z >= settings.z_hold => onset = r.start_ns,
            // A thin window (too few calls to score) does not break the run.
            None => {}
            Some(_) => break,
        }
    }
    onset
}
