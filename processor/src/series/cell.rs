//! One window of one series.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Significant figures of every histogram: values within 1%.
const SIGFIG: u8 = 2;

/// Counts and quantiles of a cell (durations in microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CellStats {
    /// Spans.
    pub calls: u64,
    /// Spans with status ERROR.
    pub errors: u64,
    /// Median duration, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest duration, µs (within histogram precision).
    pub max_us: u64,
}

impl CellStats {
    /// Counts and the quantiles of a histogram (zeros when it is empty).
    pub fn of(calls: u64, errors: u64, h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                calls,
                errors,
                ..Self::default()
            };
        }
        Self {
            calls,
            errors,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// The histogram, full while the window is open and serialized (compact)
/// once sealed.
#[derive(Debug, Clone)]
enum Hist {
    Open(Box<Histogram<u64>>),
    Sealed(Vec<u8>),
}

/// Calls, errors and a duration histogram.
#[derive(Debug, Clone)]
pub struct Cell {
    calls: u64,
    errors: u64,
    hist: Hist,
    /// Set once the window was sealed and handed on; later data is late.
    handed_on: bool,
}

impl Default for Cell {
    fn default() -> Self {
        Self::new()
    }
}

fn empty_histogram() -> Histogram<u64> {
    // Auto-resizing from 1 µs; new() with valid sigfig cannot fail.
    Histogram::new(SIGFIG).unwrap_or_else(|_| unreachable!("sigfig 2 is valid"))
}

impl Cell {
    /// An empty, open cell.
    pub fn new() -> Self {
        Self {
            calls: 0,
            errors: 0,
            hist: Hist::Open(Box::new(empty_histogram())),
            handed_on: false,
        }
    }

    /// Whether the window was already handed on.
    pub fn handed_on(&self) -> bool {
        self.handed_on
    }

    /// Marks the window handed on and compacts it.
    pub fn hand_on(&mut self) {
        self.handed_on = true;
        self.seal();
    }

    /// Spans recorded.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Error spans recorded.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn open(&mut self) -> &mut Histogram<u64> {
        if let Hist::Sealed(bytes) = &self.hist {
            let h = decode(bytes);
            self.hist = Hist::Open(Box::new(h));
        }
        match &mut self.hist {
            Hist::Open(h) => h,
            Hist::Sealed(_) => unreachable!("opened above"),
        }
    }

    /// Records `n` spans of `duration_us`.
    pub fn record(&mut self, duration_us: u64, error: bool, n: u64) {
        self.calls += n;
        if error {
            self.errors += n;
        }
        // Auto-resizing: recording fails only past i64::MAX / 2 µs, which
        // no real duration reaches; clamp such values instead.
        let h = self.open();
        if h.record_n(duration_us, n).is_err() {
            h.saturating_record_n(duration_us, n);
        }
    }

    /// A copy of the histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        match &self.hist {
            Hist::Open(h) => (**h).clone(),
            Hist::Sealed(bytes) => decode(bytes),
        }
    }

    /// Adds counts and a histogram.
    pub fn merge_counts(&mut self, calls: u64, errors: u64, hist: &Histogram<u64>) {
        self.calls += calls;
        self.errors += errors;
        // Same layout and auto-resize: addition cannot fail.
        let h = self.open();
        h.auto(true);
        let _ = h.add(hist);
    }

    /// Adds another cell.
    pub fn merge(&mut self, other: &Cell) {
        let h = other.histogram();
        self.merge_counts(other.calls, other.errors, &h);
    }

    /// Compacts the histogram; reading and recording still work.
    pub fn seal(&mut self) {
        if let Hist::Open(h) = &self.hist {
            let mut buf = Vec::new();
            if V2Serializer::new().serialize(h.as_ref(), &mut buf).is_ok() {
                self.hist = Hist::Sealed(buf);
            }
        }
    }

    /// Counts and quantiles.
    pub fn stats(&self) -> CellStats {
        let h = match &self.hist {
            Hist::Open(h) => std::borrow::Cow::Borrowed(h.as_ref()),
            Hist::Sealed(b) => std::borrow::Cow::Owned(decode(b)),
        };
        CellStats::of(self.calls, self.errors, &h)
    }

    /// The histogram, V2-serialized, for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.hist {
            Hist::Sealed(b) => b.clone(),
            Hist::Open(h) => {
                let mut buf = Vec::new();
                // Serializing an in-memory histogram into a Vec cannot fail.
                let _ = V2Serializer::new().serialize(h.as_ref(), &mut buf);
                buf
            }
        }
    }

    /// A copy with the histogram in its compact form (for snapshots: an
    /// open histogram is kilobytes, its serialization hundreds of bytes).
    pub fn compact_clone(&self) -> Self {
        Self {
            calls: self.calls,
            errors: self.errors,
            hist: Hist::Sealed(self.to_bytes()),
            handed_on: self.handed_on,
        }
    }

    /// A cell from stored parts.
    pub fn from_parts(calls: u64, errors: u64, hist: &[u8], handed_on: bool) -> Self {
        Self {
            calls,
            errors,
            hist: Hist::Sealed(hist.to_vec()),
            handed_on,
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match &self.hist {
            Hist::Open(h) => h.distinct_values() * std::mem::size_of::<u64>(),
            Hist::Sealed(b) => b.capacity(),
        }
    }
}

/// Our own serialization, read back; corruption is impossible short of a
/// bug, in which case an empty histogram is safer than a panic.
fn decode(bytes: &[u8]) -> Histogram<u64> {
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .unwrap_or_else(|_| empty_histogram());
    // Deserialized histograms do not auto-resize; late data and merges need
    // them to, or values beyond the old maximum would be clamped.
    h.auto(true);
    h
}
