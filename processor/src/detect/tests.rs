use super::*;

const W: i64 = 10_000_000_000;

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// A window of `calls` spans around `p50_ms` with `noise` relative jitter
/// and `errors` errors.
fn window(rng: &mut Rng, calls: u64, p50_ms: f64, noise: f64, errors: u64) -> CellStats {
    let p50 = p50_ms * 1000.0 * (1.0 + noise * rng.normal()).max(0.1);
    CellStats {
        calls,
        errors,
        p50_us: p50 as u64,
        p90_us: (p50 * 1.8) as u64,
        p99_us: (p50 * 3.0 * (1.0 + noise * rng.normal()).max(0.1)) as u64,
        max_us: (p50 * 5.0) as u64,
    }
}

fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.next() < p).count() as u64
}

#[test]
fn steady_noisy_traffic_raises_nothing() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(7);
    for i in 0..2000 {
        let errors = binomial(&mut rng, 80, 0.01);
        let events = d.observe(&s, i * W, window(&mut rng, 80, 5.0, 0.08, errors));
        assert!(events.is_empty(), "window {i}: {events:?}");
    }
}

#[test]
fn a_latency_shift_opens_with_its_onset_and_resolves_after_quiet() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(11);
    for i in 0..100 {
        assert!(
            d.observe(&s, i * W, window(&mut rng, 50, 5.0, 0.05, 0))
                .is_empty()
        );
    }
    // The fault starts mid-window 100: that window is partly slow (z between
    // hold and open), the next ones fully.
    let partial = CellStats {
        p50_us: 6_800,
        p90_us: 14_000,
        p99_us: 20_000,
        ..window(&mut rng, 50, 5.0, 0.0, 0)
    };
    let e = d.observe(&s, 100 * W, partial);
    assert!(
        e.iter()
            .all(|e| !matches!(e, Event::Opened(f) if f.metric == Metric::LatencyP50)),
        "{e:?}"
    );
    let e = d.observe(&s, 101 * W, window(&mut rng, 50, 20.0, 0.05, 0));
    let opened = e
        .iter()
        .find_map(|e| match e {
            Event::Opened(f) if f.metric == Metric::LatencyP50 => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("p50 shift not detected: {e:?}"));
    assert_eq!(opened.onset_ns, 100 * W, "onset is the change point");
    assert_eq!(opened.detected_ns, 101 * W);
    assert!((opened.expected - 5000.0).abs() < 500.0, "{opened:?}");
    assert!(opened.observed > 15_000.0);
    for i in 102..130 {
        let e = d.observe(&s, i * W, window(&mut rng, 50, 20.0, 0.05, 0));
        assert!(
            e.iter().all(|e| matches!(e, Event::Ongoing(_))),
            "a long fault stays one anomaly: {e:?}"
        );
    }
    // Recovery: quiet windows close it, and the baseline did not learn the
    // fault (the next shift is caught as fast).
    let mut resolved = None;
    for i in 130..140 {
        for e in d.observe(&s, i * W, window(&mut rng, 50, 5.0, 0.05, 0)) {
            if let Event::Resolved {
                metric: Metric::LatencyP50,
                since_ns,
            } = e
            {
                resolved = Some(since_ns);
            }
        }
    }
    assert_eq!(resolved, Some(130 * W));
    assert!(!d.is_open());
    let e = d.observe(&s, 140 * W, window(&mut rng, 50, 20.0, 0.05, 0));
    assert!(
        e.iter()
            .any(|e| matches!(e, Event::Opened(f) if f.metric == Metric::LatencyP50)),
        "{e:?}"
    );
}

#[test]
fn an_error_burst_opens_an_error_anomaly() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(3);
    for i in 0..60 {
        let errors = binomial(&mut rng, 100, 0.01);
        assert!(
            d.observe(&s, i * W, window(&mut rng, 100, 5.0, 0.05, errors))
                .is_empty()
        );
    }
    let e = d.observe(&s, 60 * W, window(&mut rng, 100, 5.0, 0.05, 25));
    let f = e
        .iter()
        .find_map(|e| match e {
            Event::Opened(f) if f.metric == Metric::ErrorRatio => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(f.onset_ns, 60 * W);
    assert!((f.observed - 0.25).abs() < 1e-9);
}

#[test]
fn thin_traffic_and_warmup_do_not_page() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(5);
    // Three calls a window, wildly varying latency and the odd error.
    for i in 0..500 {
        let ms = if i % 7 == 0 { 80.0 } else { 4.0 };
        let errors = u64::from(i % 50 == 0);
        let e = d.observe(&s, i * W, window(&mut rng, 3, ms, 0.3, errors));
        assert!(e.is_empty(), "window {i}: {e:?}");
    }
    // A busy series whose first windows differ wildly: nothing during warm-up.
    let mut d = SeriesDetector::new(&s);
    for i in 0..s.warmup as i64 {
        let ms = if i % 2 == 0 { 2.0 } else { 40.0 };
        assert!(
            d.observe(&s, i * W, window(&mut rng, 100, ms, 0.0, 0))
                .is_empty()
        );
    }
}

#[test]
fn the_baseline_is_median_and_mad_of_the_last_values() {
    let mut b = Baseline::new(5);
    for v in [1.0, 2.0, 3.0, 4.0, 100.0, 5.0] {
        b.push(v);
    }
    // Holds 2, 3, 4, 100, 5.
    assert_eq!(b.len(), 5);
    assert_eq!(b.median(), 4.0);
    assert_eq!(b.mad(), 1.0);
    b.push(f64::NAN);
    assert_eq!(b.len(), 5, "non-finite values are ignored");
}
