//! A robust rolling baseline: median and MAD of the last N normal values.

use std::collections::VecDeque;

/// Spread floor relative to the median: a perfectly steady history must
/// not turn a 10% wobble into a many-sigma event.
const RELATIVE_FLOOR: f64 = 0.10;
/// Spread floor in the metric's unit (µs for latency): sub-0.2 ms jitter is
/// never an incident by itself.
const ABSOLUTE_FLOOR: f64 = 200.0;

/// The last `capacity` values of one metric with their median and median
/// absolute deviation, recomputed on each push (capacity is small).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    values: VecDeque<f64>,
    capacity: usize,
    median: f64,
    mad: f64,
}

impl Baseline {
    /// Remembers up to `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity),
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
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(v);
        let mut sorted: Vec<f64> = self.values.iter().copied().collect();
        self.median = median_of(&mut sorted);
        let mut dev: Vec<f64> = sorted.iter().map(|x| (x - self.median).abs()).collect();
        self.mad = median_of(&mut dev);
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
        let spread = (1.4826 * self.mad)
            .max(RELATIVE_FLOOR * self.median.abs())
            .max(absolute_floor);
        (x - self.median) / spread
    }
}

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
