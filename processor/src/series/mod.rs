//! Windowed series: per key, per event-time window, a call count, an error
//! count and an HdrHistogram of durations; shared by RED and the graph.
//!
//! ```text
//! span (event time t) ─> window floor(t / w) ─> open cell (full histogram)
//!                                                  │ watermark passes end + lateness
//!                                                  ▼
//!                     sealed cell (serialized histogram) ─> emitted once, rolled up to 1 m, 1 h
//! ```
//!
//! A span for an already-sealed window (a collector retrying after an outage)
//! still merges into that window and its roll-ups; lateness only decides when
//! a window is first handed on. Histograms merge across windows and
//! instances because they share one layout (2 significant figures, i.e.
//! values within 1%, in microseconds).

mod cell;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub use cell::{Cell, CellStats};

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

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;

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
}

/// Keys that have an overflow bucket.
pub trait SeriesKey: Clone + Eq + Hash + Ord + std::fmt::Debug {
    /// The key that absorbs data once `max_keys` is reached.
    fn overflow() -> Self;
    /// Whether this is the overflow key.
    fn is_overflow(&self) -> bool;
}

/// One observation: event time (ns), duration (µs), error.
pub type Observation = (i64, u64, bool);

#[derive(Debug, Default)]
struct Series {
    /// Cells by (resolution, window start).
    cells: BTreeMap<(Resolution, i64), Cell>,
}

/// All series of one tenant for one kind of key.
#[derive(Debug)]
pub struct SeriesSet<K> {
    settings: SeriesSettings,
    series: HashMap<K, Series>,
    /// Newest event time seen, ns.
    watermark_ns: i64,
    /// Windows not yet sealed, ordered by start: (start, key).
    open: BTreeMap<i64, Vec<K>>,
    /// Spans recorded under the overflow key.
    overflowed: u64,
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
        }
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
                for (res, len) in [(Resolution::Minute, MINUTE_NS), (Resolution::Hour, HOUR_NS)] {
                    let rs = start.div_euclid(len) * len;
                    series
                        .cells
                        .entry((res, rs))
                        .or_default()
                        .merge_counts(calls, errors, &snapshot);
                }
                out.push(Sealed {
                    key,
                    start_ns: start,
                    len_ns: w,
                    stats,
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

#[cfg(test)]
mod tests;
