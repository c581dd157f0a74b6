//! A set of keyed series: per key, windows at the base resolution and
//! their roll-ups, sealed once the watermark passes them, pruned by age
//! and bounded in keys.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::cell::{Cell, CellStats};

/// Resolutions kept per key: the base window, then roll-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// The configured window (default 10 s).
    Base,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

pub(super) const MINUTE_NS: i64 = 60_000_000_000;
pub(super) const HOUR_NS: i64 = 3_600_000_000_000;

/// Settings of a [`SeriesSet`].
#[derive(Debug, Clone, Copy)]
pub struct SeriesSettings {
    /// Base window, ns.
    pub window_ns: i64,
    /// How far behind the newest event time a window stays open, ns.
    pub lateness_ns: i64,
    /// Distinct keys before new keys go to the overflow key.
    pub max_keys: usize,
    /// How long sealed cells are kept, per resolution, ns.
    pub retention_ns: [i64; 3],
}

/// A window handed on when it seals.
#[derive(Debug, Clone)]
pub struct Sealed<K> {
    /// The series.
    pub key: K,
    /// Window start, unix ns.
    pub start_ns: i64,
    /// Window length, ns.
    pub len_ns: i64,
    /// Counts and quantiles.
    pub stats: CellStats,
    /// The window's histogram (to merge series, e.g. across status codes).
    pub hist: hdrhistogram::Histogram<u64>,
}

/// Keys that have an overflow bucket.
pub trait SeriesKey: Clone + Eq + Hash + Ord + std::fmt::Debug {
    /// The key that absorbs data once `max_keys` is reached.
    fn overflow() -> Self;
    /// Whether this is the overflow key.
    fn is_overflow(&self) -> bool;
    /// The key as stored: two strings and two small integers.
    fn parts(&self) -> (&str, &str, i8, i8);
    /// The key from its stored parts (None if they make no valid key).
    fn from_parts(a: &str, b: &str, c: i8, d: i8) -> Option<Self>;
}

/// A cell that changed since the last [`SeriesSet::take_dirty`].
#[derive(Debug, Clone)]
pub struct DirtyCell<K> {
    /// The series.
    pub key: K,
    /// Which resolution.
    pub resolution: Resolution,
    /// Window start, ns.
    pub start_ns: i64,
    /// Calls.
    pub calls: u64,
    /// Errors.
    pub errors: u64,
    /// Serialized histogram.
    pub hist: Vec<u8>,
    /// Whether the window was handed on.
    pub handed_on: bool,
}

impl Resolution {
    /// Stored code.
    pub fn code(self) -> u8 {
        match self {
            Resolution::Base => 0,
            Resolution::Minute => 1,
            Resolution::Hour => 2,
        }
    }

    /// From a stored code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Resolution::Base),
            1 => Some(Resolution::Minute),
            2 => Some(Resolution::Hour),
            _ => None,
        }
    }
}

/// One observation: event time (ns), duration (µs), error.
pub type Observation = (i64, u64, bool);

#[derive(Debug, Default)]
pub(super) struct Series {
    /// Cells by (resolution, window start).
    pub(super) cells: BTreeMap<(Resolution, i64), Cell>,
    /// Everything recorded since the process started (Prometheus counters).
    pub(super) totals: Totals,
}

/// Upper bounds (µs) of the cumulative histogram buckets: the defaults of
/// the OpenTelemetry Collector's spanmetrics and servicegraph connectors
/// (2 ms … 15 s), so their Grafana dashboards work unchanged.
pub const TOTALS_BUCKETS_US: [u64; 16] = [
    2_000, 4_000, 6_000, 8_000, 10_000, 50_000, 100_000, 200_000, 400_000, 800_000, 1_000_000,
    1_400_000, 2_000_000, 5_000_000, 10_000_000, 15_000_000,
];

/// Cumulative counts of one series since the process started: what a
/// Prometheus counter and histogram expose. Fixed buckets keep this at a
/// couple of cache lines per series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Spans.
    pub calls: u64,
    /// Error spans.
    pub errors: u64,
    /// Sum of durations, µs.
    pub sum_us: u64,
    /// Spans per bucket of [`TOTALS_BUCKETS_US`] (not cumulative); the
    /// last one counts those above 15 s.
    pub buckets: [u64; 17],
}

impl Totals {
    /// Adds `n` observations.
    pub fn record(&mut self, duration_us: u64, error: bool, n: u64) {
        self.calls += n;
        self.errors += u64::from(error) * n;
        self.sum_us = self.sum_us.saturating_add(duration_us.saturating_mul(n));
        let i = TOTALS_BUCKETS_US.partition_point(|&b| b < duration_us);
        self.buckets[i] += n;
    }
}

/// All series of one tenant for one kind of key.
#[derive(Debug)]
pub struct SeriesSet<K> {
    pub(super) settings: SeriesSettings,
    pub(super) series: HashMap<K, Series>,
    /// Newest event time seen, ns.
    pub(super) watermark_ns: i64,
    /// Windows not yet sealed, ordered by start: (start, key).
    pub(super) open: BTreeMap<i64, Vec<K>>,
    /// Spans recorded under the overflow key.
    pub(super) overflowed: u64,
    /// Cells changed since the last checkpoint.
    pub(super) dirty: std::collections::HashSet<(K, Resolution, i64), foldhash::fast::RandomState>,
}

impl<K: SeriesKey> SeriesSet<K> {
    /// An empty set.
    pub fn new(settings: SeriesSettings) -> Self {
        Self {
            settings,
            series: HashMap::new(),
            watermark_ns: i64::MIN,
            open: BTreeMap::new(),
            overflowed: 0,
            dirty: Default::default(),
        }
    }

    /// The cells changed since the last call, serialized, and forgets them.
    pub fn take_dirty(&mut self) -> Vec<DirtyCell<K>> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for (key, res, start) in std::mem::take(&mut self.dirty) {
            let Some(cell) = self
                .series
                .get(&key)
                .and_then(|s| s.cells.get(&(res, start)))
            else {
                continue; // dropped by retention since
            };
            out.push(DirtyCell {
                hist: cell.to_bytes(),
                calls: cell.calls(),
                errors: cell.errors(),
                handed_on: cell.handed_on(),
                key,
                resolution: res,
                start_ns: start,
            });
        }
        out
    }

    /// Puts back a stored cell (at startup). Windows not handed on yet are
    /// open again and will be handed on once the watermark passes them.
    pub fn restore(&mut self, cell: DirtyCell<K>) {
        let restored = Cell::from_parts(cell.calls, cell.errors, &cell.hist, cell.handed_on);
        if cell.resolution == Resolution::Base {
            if !cell.handed_on {
                self.open
                    .entry(cell.start_ns)
                    .or_default()
                    .push(cell.key.clone());
            }
            self.watermark_ns = self.watermark_ns.max(cell.start_ns);
        }
        self.series
            .entry(cell.key)
            .or_default()
            .cells
            .insert((cell.resolution, cell.start_ns), restored);
    }

    /// Start of the oldest window each resolution keeps, given the
    /// watermark (for pruning stored cells).
    pub fn retention_horizon(&self) -> [i64; 3] {
        let wm = self.watermark_ns;
        let r = self.settings.retention_ns;
        [
            wm.saturating_sub(r[0]),
            wm.saturating_sub(r[1]),
            wm.saturating_sub(r[2]),
        ]
    }

    /// Every cell: (key, resolution, window start, cell).
    pub fn cells(&self) -> impl Iterator<Item = (&K, Resolution, i64, &Cell)> {
        self.series
            .iter()
            .flat_map(|(k, s)| s.cells.iter().map(move |(&(r, t), c)| (k, r, t, c)))
    }

    /// Cumulative counts of every series since the process started.
    pub fn totals(&self) -> impl Iterator<Item = (&K, &Totals)> {
        self.series.iter().map(|(k, s)| (k, &s.totals))
    }

    /// The keys.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.series.keys()
    }

    /// Newest event time seen, ns (`i64::MIN` before any).
    pub fn watermark_ns(&self) -> i64 {
        self.watermark_ns
    }

    /// Event time reached `t_ns` elsewhere (the tenant's other spans):
    /// windows before it are sealed as if this set had seen it.
    pub fn raise_watermark(&mut self, t_ns: i64) {
        self.watermark_ns = self.watermark_ns.max(t_ns);
    }

    /// The watermark at which every window open now is sealed (the
    /// current one when none is open).
    pub fn seal_horizon_ns(&self) -> i64 {
        self.open
            .keys()
            .next_back()
            .map_or(self.watermark_ns, |last| {
                last.saturating_add(self.settings.window_ns)
                    .saturating_add(self.settings.lateness_ns)
                    .max(self.watermark_ns)
            })
    }

    /// Base window length, ns.
    pub fn window_ns(&self) -> i64 {
        self.settings.window_ns
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no key was recorded.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Spans that went to the overflow key.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// The key data for `key` is recorded under (itself, or the overflow
    /// key once the limit is reached).
    pub fn admit(&mut self, key: K) -> K {
        if self.series.contains_key(&key) || self.series.len() < self.settings.max_keys {
            key
        } else {
            K::overflow()
        }
    }

    /// Records one observation at event time `t_ns`.
    pub fn record(&mut self, key: &K, t_ns: i64, duration_us: u64, error: bool) {
        self.record_n(key, t_ns, duration_us, error, 1);
    }

    /// Records `n` identical observations.
    pub fn record_n(&mut self, key: &K, t_ns: i64, duration_us: u64, error: bool, n: u64) {
        self.record_each(key, std::iter::once((t_ns, duration_us, error)), n);
    }

    /// Records observations of one key (one series lookup for all).
    pub fn record_many(&mut self, key: &K, observations: impl IntoIterator<Item = Observation>) {
        self.record_each(key, observations, 1);
    }

    fn record_each(
        &mut self,
        key: &K,
        observations: impl IntoIterator<Item = Observation>,
        n: u64,
    ) {
        let w = self.settings.window_ns;
        let overflow = key.is_overflow();
        let series = match self.series.get_mut(key) {
            Some(s) => s,
            None => self.series.entry(key.clone()).or_default(),
        };
        let mut newest = self.watermark_ns;
        for (t_ns, duration_us, error) in observations {
            if overflow {
                self.overflowed += n;
            }
            let start = t_ns.div_euclid(w) * w;
            let cell = series.cells.entry((Resolution::Base, start)).or_default();
            let fresh = cell.calls() == 0;
            cell.record(duration_us, error, n);
            series.totals.record(duration_us, error, n);
            self.dirty.insert((key.clone(), Resolution::Base, start));
            if cell.handed_on() {
                // Late data for a window already handed on: its earlier
                // content is in the roll-ups, so add this directly to them.
                cell.seal();
                for (res, len) in [(Resolution::Minute, MINUTE_NS), (Resolution::Hour, HOUR_NS)] {
                    let rs = t_ns.div_euclid(len) * len;
                    series
                        .cells
                        .entry((res, rs))
                        .or_default()
                        .record(duration_us, error, n);
                    self.dirty.insert((key.clone(), res, rs));
                }
            } else if fresh {
                self.open.entry(start).or_default().push(key.clone());
            }
            newest = newest.max(t_ns);
        }
        self.watermark_ns = newest;
    }

    fn is_sealed(&self, start: i64) -> bool {
        self.watermark_ns != i64::MIN
            && start + self.settings.window_ns + self.settings.lateness_ns <= self.watermark_ns
    }

    /// Seals every window the watermark has passed, rolls them up and
    /// returns them (each window once), then drops cells past retention.
    pub fn advance(&mut self) -> Vec<Sealed<K>> {
        let mut out = Vec::new();
        let w = self.settings.window_ns;
        let ready: Vec<i64> = self
            .open
            .range(..)
            .map(|(s, _)| *s)
            .take_while(|s| self.is_sealed(*s))
            .collect();
        for start in ready {
            let keys = self.open.remove(&start).unwrap_or_default();
            for key in keys {
                let Some(series) = self.series.get_mut(&key) else {
                    continue;
                };
                let Some(cell) = series.cells.get_mut(&(Resolution::Base, start)) else {
                    continue;
                };
                let stats = cell.stats();
                let snapshot = cell.histogram();
                let (calls, errors) = (cell.calls(), cell.errors());
                cell.hand_on();
                self.dirty.insert((key.clone(), Resolution::Base, start));
                for (res, len) in [(Resolution::Minute, MINUTE_NS), (Resolution::Hour, HOUR_NS)] {
                    let rs = start.div_euclid(len) * len;
                    series
                        .cells
                        .entry((res, rs))
                        .or_default()
                        .merge_counts(calls, errors, &snapshot);
                    self.dirty.insert((key.clone(), res, rs));
                }
                out.push(Sealed {
                    key,
                    start_ns: start,
                    len_ns: w,
                    stats,
                    hist: snapshot,
                });
            }
        }
        // Seal roll-ups the watermark has passed (their histograms stay
        // exact; sealing only compacts them).
        let wm = self.watermark_ns;
        let lateness = self.settings.lateness_ns;
        let retention = self.settings.retention_ns;
        for series in self.series.values_mut() {
            series.cells.retain(|(res, start), cell| {
                let (len, keep) = match res {
                    Resolution::Base => (w, retention[0]),
                    Resolution::Minute => (MINUTE_NS, retention[1]),
                    Resolution::Hour => (HOUR_NS, retention[2]),
                };
                if *res != Resolution::Base && start + len + lateness <= wm {
                    cell.seal();
                }
                start + len > wm.saturating_sub(keep)
            });
        }
        self.series.retain(|_, s| !s.cells.is_empty());
        out
    }

    /// Merged stats per key over `[from, to)`.
    pub fn query(
        &self,
        from_ns: i64,
        to_ns: i64,
        filter: impl Fn(&K) -> bool,
    ) -> Vec<(K, CellStats)> {
        self.query_points(from_ns, to_ns, to_ns.saturating_sub(from_ns).max(1), filter)
            .into_iter()
            .filter_map(|(k, pts)| {
                let mut total = Cell::new();
                for (_, c) in &pts {
                    total.merge(c);
                }
                (!pts.is_empty()).then(|| (k, total.stats()))
            })
            .collect()
    }

    /// Per key, points of `step_ns` over `[from, to)`, each merging the
    /// windows that start within it.
    ///
    /// Base windows serve the part of the range their retention still
    /// holds; older parts come from minute, then hour roll-ups. Tier
    /// boundaries are aligned to the coarser unit, so no span is counted
    /// twice.
    pub fn query_points(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
        filter: impl Fn(&K) -> bool,
    ) -> Vec<(K, Vec<(i64, Cell)>)> {
        let wm = if self.watermark_ns == i64::MIN {
            to_ns
        } else {
            self.watermark_ns
        };
        let [base_ret, minute_ret, _] = self.settings.retention_ns;
        let ceil = |t: i64, unit: i64| {
            t.div_euclid(unit) * unit + if t.rem_euclid(unit) == 0 { 0 } else { unit }
        };
        let base_from = from_ns.max(ceil(wm.saturating_sub(base_ret), MINUTE_NS));
        let minute_from = ceil(wm.saturating_sub(minute_ret), HOUR_NS)
            .max(from_ns)
            .min(base_from);
        let tiers = [
            (Resolution::Base, base_from, to_ns),
            (Resolution::Minute, minute_from, base_from.min(to_ns)),
            (Resolution::Hour, from_ns, minute_from.min(to_ns)),
        ];
        let step = step_ns.max(1);
        let mut out = Vec::new();
        for (key, series) in &self.series {
            if !filter(key) {
                continue;
            }
            let mut points: BTreeMap<i64, Cell> = BTreeMap::new();
            for (res, lo, hi) in tiers {
                if lo >= hi {
                    continue;
                }
                for ((_, start), cell) in series.cells.range((res, lo)..(res, hi)) {
                    let bucket = from_ns + (start - from_ns).div_euclid(step) * step;
                    points.entry(bucket).or_default().merge(cell);
                }
                if res != Resolution::Base {
                    // Base windows not yet handed on are in no roll-up.
                    for ((_, start), cell) in series
                        .cells
                        .range((Resolution::Base, lo)..(Resolution::Base, hi))
                    {
                        if !cell.handed_on() {
                            let bucket = from_ns + (start - from_ns).div_euclid(step) * step;
                            points.entry(bucket).or_default().merge(cell);
                        }
                    }
                }
            }
            if !points.is_empty() {
                out.push((key.clone(), points.into_iter().collect()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Bytes held by cells, approximately (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.series
            .values()
            .flat_map(|s| s.cells.values())
            .map(Cell::heap_bytes)
            .sum()
    }
}
