use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct K(&'static str);

impl SeriesKey for K {
    fn overflow() -> Self {
        K("overflow")
    }
    fn is_overflow(&self) -> bool {
        self.0 == "overflow"
    }
    fn parts(&self) -> (&str, &str, i8, i8) {
        (self.0, "", 0, 0)
    }
    fn from_parts(a: &str, _: &str, _: i8, _: i8) -> Option<Self> {
        ["a", "b", "c", "d", "e", "overflow"]
            .into_iter()
            .find(|k| *k == a)
            .map(K)
    }
}

const S: i64 = 1_000_000_000;

fn settings() -> SeriesSettings {
    SeriesSettings {
        window_ns: 10 * S,
        lateness_ns: 5 * S,
        max_keys: 3,
        retention_ns: [3600 * S, 7 * 86400 * S, 90 * 86400 * S],
    }
}

/// Nearest-rank quantile of sorted values.
fn exact(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn within_1pct(got: u64, want: u64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * 0.01 + 1.0
}

#[test]
fn counts_are_exact_and_quantiles_within_one_percent_with_out_of_order_and_late_data() {
    let mut set = SeriesSet::new(settings());
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let base = 1_700_000_000 * S;
    let mut truth: Vec<u64> = Vec::new();
    let mut errors = 0;
    let mut sealed_calls = 0;
    for i in 0..20_000u64 {
        // Mostly in order over 200 s, with 10% up to 60 s late.
        let mut t = base + (i as i64) * S / 100;
        if next() % 10 == 0 {
            t -= (next() % 60) as i64 * S;
        }
        let d = 100 + next() % 50_000;
        let err = next() % 20 == 0;
        errors += u64::from(err);
        truth.push(d);
        set.record(&K("a"), t, d, err);
        if i % 1000 == 0 {
            sealed_calls += set.advance().iter().map(|s| s.stats.calls).sum::<u64>();
        }
    }
    truth.sort_unstable();
    let all = set.query(base - 3600 * S, base + 3600 * S, |_| true);
    assert_eq!(all.len(), 1);
    let st = all[0].1;
    assert_eq!(st.calls, 20_000);
    assert_eq!(st.errors, errors);
    for (q, got) in [(0.5, st.p50_us), (0.9, st.p90_us), (0.99, st.p99_us)] {
        let want = exact(&truth, q);
        assert!(within_1pct(got, want), "q{q}: {got} vs exact {want}");
    }
    assert!(within_1pct(st.max_us, *truth.last().unwrap_or(&0)));
    // Windows were handed on once each, late data included in their counts
    // only when it arrived before sealing.
    assert!(sealed_calls > 0 && sealed_calls <= 20_000);
}

#[test]
fn rollups_hold_exactly_what_the_base_windows_hold_including_late_data() {
    let mut set = SeriesSet::new(settings());
    let base = 1_700_000_000 * S - (1_700_000_000 * S).rem_euclid(HOUR_NS);
    for i in 0..600i64 {
        set.record(&K("a"), base + i * S, 1000 + i as u64, i % 7 == 0);
    }
    set.record(&K("a"), base + 3 * 3600 * S, 5, false); // moves the watermark far on
    let sealed = set.advance();
    assert!(sealed.iter().any(|s| s.start_ns == base));
    // Late spans for windows long sealed.
    set.record(&K("a"), base + 5 * S, 2000, true);
    set.record(&K("a"), base + 125 * S, 3000, false);
    let fine = set.query_points(base, base + 600 * S, 10 * S, |_| true);
    let fine_calls: u64 = fine[0].1.iter().map(|(_, c)| c.calls()).sum();
    let minutes = set.query_points(base, base + 600 * S, MINUTE_NS, |_| true);
    let minute_calls: u64 = minutes[0].1.iter().map(|(_, c)| c.calls()).sum();
    assert_eq!(fine_calls, 602);
    assert_eq!(minute_calls, 602);
    // Once the late windows are handed on they are in the roll-ups, still
    // counted once.
    set.advance();
    let again = set.query_points(base, base + 600 * S, 10 * S, |_| true);
    assert_eq!(again[0].1.iter().map(|(_, c)| c.calls()).sum::<u64>(), 602);
    let hour = set.series[&K("a")].cells[&(Resolution::Hour, base)].stats();
    assert_eq!(hour.calls, 602);
    assert_eq!(hour.errors, 600 / 7 + 1 + 1);
}

#[test]
fn each_window_is_handed_on_once_when_the_watermark_passes_it() {
    let mut set = SeriesSet::new(settings());
    let t0 = 1_000 * S;
    set.record(&K("a"), t0, 10, false);
    set.record(&K("b"), t0 + S, 10, false);
    assert!(set.advance().is_empty(), "window still open");
    set.record(&K("a"), t0 + 14 * S, 10, false);
    assert!(set.advance().is_empty(), "within lateness");
    set.record(&K("a"), t0 + 15 * S, 10, false);
    let sealed = set.advance();
    assert_eq!(sealed.len(), 2);
    assert!(
        sealed
            .iter()
            .all(|s| s.start_ns == t0 && s.len_ns == 10 * S)
    );
    assert!(set.advance().is_empty());
    // A late span merges into the sealed window but is not handed on again.
    set.record(&K("a"), t0 + 2 * S, 10, true);
    assert!(set.advance().is_empty());
    let q = set.query(t0, t0 + 10 * S, |k| *k == K("a"));
    assert_eq!((q[0].1.calls, q[0].1.errors), (2, 1));
}

/// The end of a bounded input (a replay): raising the watermark to the
/// seal horizon hands on every window still open, and nothing past them.
#[test]
fn the_seal_horizon_seals_every_open_window() {
    let mut set = SeriesSet::new(settings());
    assert_eq!(set.seal_horizon_ns(), i64::MIN, "nothing seen yet");
    let t0 = 1_000 * S;
    set.record(&K("a"), t0, 10, false);
    set.record(&K("b"), t0 + 12 * S, 10, false);
    set.record(&K("a"), t0 + 22 * S, 10, true);
    let first = set.advance();
    assert_eq!(first.len(), 1, "the first window passed by the data itself");
    set.raise_watermark(set.seal_horizon_ns());
    let rest = set.advance();
    let starts: Vec<i64> = rest.iter().map(|s| s.start_ns).collect();
    assert_eq!(starts, vec![t0 + 10 * S, t0 + 20 * S]);
    assert_eq!(rest[1].stats.errors, 1);
    // Nothing is left open; the horizon stays where it is.
    assert_eq!(set.seal_horizon_ns(), set.watermark_ns());
    assert!(set.advance().is_empty());
}

#[test]
fn keys_beyond_the_limit_go_to_overflow_and_are_counted() {
    let mut set = SeriesSet::new(settings());
    for name in ["a", "b", "c", "d", "e"] {
        let key = set.admit(K(name));
        set.record(&key, S, 10, false);
    }
    assert_eq!(set.len(), 4, "three keys plus overflow");
    assert_eq!(set.overflowed(), 2);
    let q = set.query(0, 100 * S, |_| true);
    assert_eq!(
        q.iter().map(|(_, s)| s.calls).sum::<u64>(),
        5,
        "nothing dropped"
    );
}

#[test]
fn retention_drops_old_cells_and_sealing_compacts() {
    let mut s = settings();
    s.retention_ns = [60 * S, 120 * S, 3600 * S];
    let mut set = SeriesSet::new(s);
    for i in 0..1000i64 {
        set.record(&K("a"), i * S, (i as u64 % 100) * 1000 + 1, false);
    }
    let before = set.heap_bytes();
    set.advance();
    let q = set.query_points(0, 1000 * S, 10 * S, |_| true);
    assert!(
        q[0].1.len() <= 8,
        "only the last minute of base windows: {}",
        q[0].1.len()
    );
    assert!(
        set.heap_bytes() < before,
        "{} >= {before}",
        set.heap_bytes()
    );
}

#[test]
fn sealing_round_trips_histograms_exactly() {
    let values = [
        103u64, 105, 107, 108, 116, 116, 117, 119, 120, 168, 175, 176, 188, 207, 254, 257, 1000,
        50_000,
    ];
    let mut cell = Cell::new();
    for v in values {
        cell.record(v, false, 1);
    }
    let open = cell.stats();
    cell.seal();
    assert_eq!(cell.stats(), open);
    let mut merged = Cell::new();
    merged.merge(&cell);
    assert_eq!(merged.stats(), open);
    // Recording into a sealed cell beyond its old maximum is exact too.
    cell.record(5_000_000, true, 1);
    let st = cell.stats();
    assert!(st.max_us >= 4_950_000 && st.max_us <= 5_050_000, "{st:?}");
    assert_eq!((st.calls, st.errors), (values.len() as u64 + 1, 1));
}

#[test]
fn memory_per_window_is_small_and_sealing_shrinks_it() {
    let mut fast = Cell::new();
    let mut slow = Cell::new();
    for i in 0..10_000u64 {
        fast.record(50 + i % 900, false, 1); // 50 µs .. 1 ms
        slow.record(1000 + (i * 997) % 5_000_000, false, 1); // 1 ms .. 5 s
    }
    let (f, s) = (fast.heap_bytes(), slow.heap_bytes());
    eprintln!("open cell: {f} bytes (sub-ms), {s} bytes (to 5 s)");
    assert!(f <= 4 * 1024, "{f}");
    assert!(s <= 20 * 1024, "{s}");
    fast.seal();
    slow.seal();
    eprintln!(
        "sealed cell: {} bytes (sub-ms), {} bytes (to 5 s)",
        fast.heap_bytes(),
        slow.heap_bytes()
    );
    assert!(fast.heap_bytes() < f && slow.heap_bytes() < s);
}

#[test]
fn dirty_cells_round_trip_through_storage() {
    let mut set = SeriesSet::new(settings());
    for i in 0..300i64 {
        set.record(&K("a"), i * S, 100 + i as u64, i % 10 == 0);
    }
    set.advance();
    let dirty = set.take_dirty();
    assert!(dirty.iter().any(|c| c.resolution == Resolution::Minute));
    assert!(set.take_dirty().is_empty(), "taken once");
    let mut restored = SeriesSet::new(settings());
    for c in dirty {
        restored.restore(c);
    }
    let q = |s: &SeriesSet<K>| s.query(0, 1000 * S, |_| true);
    assert_eq!(q(&restored), q(&set));
    // Open windows are handed on after a restart, once.
    restored.record(&K("a"), 400 * S, 5, false);
    let sealed = restored.advance();
    assert!(
        sealed.iter().all(|w| w.start_ns >= 280 * S),
        "{:?}",
        sealed.iter().map(|w| w.start_ns / S).collect::<Vec<_>>()
    );
    assert_eq!(q(&restored)[0].1.calls, 301);
}
