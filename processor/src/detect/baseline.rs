//! A robust rolling baseline: median and MAD of the last N normal values.

use std::collections::VecDeque;

/// Spread floor relative to the median: a perfectly steady history must
/// not turn a 10% wobble into a many-sigma event.
const RELATIVE_FLOOR: f64 = 0.10;
/// Spread floor in the metric's unit (µs for latency): sub-0.2 ms jitter is
/// never an incident by itself.
const ABSOLUTE_FLOOR: f64 = 200.0;

/// The last `capacity` values of one metric with their median and median
/// absolute deviation, kept up to date on each push: the values are also
/// held sorted (one binary-search insert and remove per push), so the
/// median is read off and the MAD is a merge walk from it, without sorting
/// or allocating.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    values: VecDeque<f64>,
    /// `values`, sorted; rebuilt from them when out of step (after
    /// deserializing).
    #[serde(skip)]
    sorted: Vec<f64>,
    capacity: usize,
    median: f64,
    mad: f64,
}

impl Baseline {
    /// Remembers up to `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            capacity: capacity.max(1),
            median: 0.0,
            mad: 0.0,
        }
    }

    /// Adds a value, forgetting the oldest beyond capacity.
    pub fn push(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.sorted.len() != self.values.len() {
            self.sorted = self.values.iter().copied().collect();
            self.sorted.sort_unstable_by(f64::total_cmp);
        }
        if self.values.len() == self.capacity
            && let Some(old) = self.values.pop_front()
        {
            let at = self.sorted.partition_point(|x| *x < old);
            if self.sorted.get(at) == Some(&old) {
                self.sorted.remove(at);
            }
        }
        self.values.push_back(v);
        let at = self.sorted.partition_point(|x| *x < v);
        self.sorted.insert(at, v);
        self.median = median_of_sorted(&self.sorted);
        self.mad = mad_of_sorted(&self.sorted, self.median);
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was learned yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The median (0 when empty).
    pub fn median(&self) -> f64 {
        self.median
    }

    /// The median absolute deviation.
    pub fn mad(&self) -> f64 {
        self.mad
    }

    /// How many (floored) robust standard deviations `x` is above the
    /// median; negative below.
    pub fn robust_z(&self, x: f64) -> f64 {
        self.robust_z_floored(x, ABSOLUTE_FLOOR)
    }

    /// [`Self::robust_z`] with another absolute spread floor (for values
    /// that are not microseconds).
    pub fn robust_z_floored(&self, x: f64, absolute_floor: f64) -> f64 {
        self.robust_z_around(x, self.median, absolute_floor)
    }

    /// [`Self::robust_z_floored`] around another `center` (a time-of-day
    /// value) with this history's spread, floored relative to the center.
    pub fn robust_z_around(&self, x: f64, center: f64, absolute_floor: f64) -> f64 {
        let spread = (1.4826 * self.mad)
            .max(RELATIVE_FLOOR * center.abs())
            .max(absolute_floor);
        (x - center) / spread
    }
}

fn median_of_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median of `|x - m|` over sorted values: the deviations left of `m` and
/// right of it are two ascending runs; walking their merge to the middle
/// gives the median without sorting.
fn mad_of_sorted(v: &[f64], m: f64) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let split = v.partition_point(|x| *x < m);
    let (mut left, mut right) = (split, split);
    let (lo, hi) = ((n - 1) / 2, n / 2);
    let (mut at_lo, mut at_hi) = (0.0, 0.0);
    for k in 0..=hi {
        let l = (left > 0).then(|| m - v[left - 1]);
        let r = (right < n).then(|| v[right] - m);
        let d = match (l, r) {
            (Some(l), Some(r)) if l <= r => {
                left -= 1;
                l
            }
            (Some(l), None) => {
                left -= 1;
                l
            }
            (_, Some(r)) => {
                right += 1;
                r
            }
            (None, None) => 0.0,
        };
        if k == lo {
            at_lo = d;
        }
        if k == hi {
            at_hi = d;
        }
    }
    (at_lo + at_hi) / 2.0
}

#[cfg(test)]
fn median_of(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The incremental median and MAD equal a sort from scratch, through
    /// evictions, ties and both parities.
    #[test]
    fn incremental_median_and_mad_match_sorting() {
        let mut b = Baseline::new(7);
        let mut x: u64 = 12345;
        for i in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 50) as f64 + if i % 11 == 0 { 1000.0 } else { 0.0 };
            b.push(v);
            let mut all: Vec<f64> = b.values.iter().copied().collect();
            let m = median_of(&mut all);
            let mut dev: Vec<f64> = all.iter().map(|y| (y - m).abs()).collect();
            assert_eq!(b.median(), m, "push {i}");
            assert_eq!(b.mad(), median_of(&mut dev), "push {i}");
        }
    }
}
