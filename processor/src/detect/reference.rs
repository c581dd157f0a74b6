//! What is normal for one operation or edge: its duration distribution
//! learned from healthy windows (the slow threshold), and the sliding
//! slow-call detector of keyed series built on it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use hdrhistogram::Histogram;

use super::Event;
use super::service::{Counts, ServiceDetector, SlidingSettings};

/// The normal duration distribution of one operation, for its slow
/// threshold: healthy windows' histograms, in two halves so that old
/// behaviour is forgotten (the older half is dropped when the newer fills).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpReference {
    #[serde(with = "hist_hex")]
    current: Histogram<u64>,
    #[serde(with = "opt_hist_hex")]
    previous: Option<Histogram<u64>>,
    /// `slow_factor` × p99 of both halves, µs; `None` until enough spans.
    threshold_us: Option<u64>,
    /// Spans added since the threshold was computed.
    added: u64,
}

/// Spans per half of a reference.
const REFERENCE_HALF: u64 = 20_000;

impl OpReference {
    /// An empty reference.
    pub fn new() -> Self {
        Self {
            current: empty_hist(),
            previous: None,
            threshold_us: None,
            added: 0,
        }
    }

    /// The threshold in µs, once the reference holds enough spans.
    pub fn threshold_us(&self) -> Option<u64> {
        self.threshold_us
    }

    /// Spans of `window` above the threshold (0 before there is one).
    pub fn slow_in(&self, window: &Histogram<u64>) -> Option<u64> {
        let t = self.threshold_us?;
        Some(window.len().saturating_sub(window.count_between(0, t)))
    }

    /// Learns a healthy window.
    pub fn learn(&mut self, window: &Histogram<u64>, s: &SlidingSettings) {
        if window.is_empty() {
            return;
        }
        // Same construction on both sides: adding cannot fail.
        let _ = self.current.add(window);
        self.added += window.len();
        if self.current.len() >= REFERENCE_HALF {
            self.previous = Some(std::mem::replace(&mut self.current, empty_hist()));
        }
        let total = self.current.len() + self.previous.as_ref().map_or(0, Histogram::len);
        if total < s.min_reference {
            return;
        }
        // Recomputed when the reference grew by a tenth: cheap, and the
        // quantile of a large reference barely moves in between.
        if self.threshold_us.is_some() && self.added * 10 < total {
            return;
        }
        self.added = 0;
        let p99 = match &self.previous {
            Some(prev) => {
                let mut both = prev.clone();
                let _ = both.add(&self.current);
                both.value_at_quantile(0.99)
            }
            None => self.current.value_at_quantile(0.99),
        };
        self.threshold_us = Some(((p99.max(1) as f64) * s.slow_factor) as u64);
    }
}

impl Default for OpReference {
    fn default() -> Self {
        Self::new()
    }
}

fn empty_hist() -> Histogram<u64> {
    Histogram::new(2).unwrap_or_else(|_| unreachable!("sigfig 2 is valid"))
}

/// Slow calls of keyed series at any volume (graph edges, operations'
/// self times): per key, a sliding detector of the spans beyond the key's
/// normal values, and those normal values, learned from the windows that
/// left the sliding window without a slow build-up.
#[derive(Debug)]
pub(super) struct SlowWatch<K> {
    /// Sliding detector per key.
    pub(super) detectors: HashMap<K, ServiceDetector>,
    /// Normal values per key.
    pub(super) refs: HashMap<K, OpReference>,
    /// Window histograms per window start, until their windows settle.
    unsettled: BTreeMap<i64, HashMap<K, Histogram<u64>>>,
}

impl<K: Eq + Hash + Clone> SlowWatch<K> {
    /// Nothing learned.
    pub(super) fn new() -> Self {
        Self {
            detectors: HashMap::new(),
            refs: HashMap::new(),
            unsettled: BTreeMap::new(),
        }
    }

    /// Feeds `key`'s window at `start_ns` (`calls` spans, their values in
    /// `hist`); returns its detector's events (under `SlowRatio`).
    pub(super) fn observe(
        &mut self,
        s: &SlidingSettings,
        key: &K,
        start_ns: i64,
        calls: u64,
        hist: Histogram<u64>,
    ) -> Vec<Event> {
        let slow = self.refs.get(key).and_then(|r| r.slow_in(&hist));
        let counts = Counts {
            calls,
            errors: 0,
            measured: if slow.is_some() { calls } else { 0 },
            slow: slow.unwrap_or(0),
        };
        let detector = self.detectors.entry(key.clone()).or_default();
        // No tenant traffic: traffic shares are the RED side's.
        let events = detector.observe(s, start_ns, counts, 0);
        for (at, latency_ok) in detector.take_settled() {
            if !latency_ok {
                continue;
            }
            if let Some(h) = self.unsettled.get_mut(&at).and_then(|m| m.remove(key)) {
                self.refs.entry(key.clone()).or_default().learn(&h, s);
            }
        }
        self.unsettled
            .entry(start_ns)
            .or_default()
            .insert(key.clone(), hist);
        events
    }

    /// Drops the windows before `start_ns` that never settled.
    pub(super) fn forget_before(&mut self, start_ns: i64) {
        self.unsettled = self.unsettled.split_off(&start_ns);
    }
}

impl<K: Eq + Hash + Clone> Default for SlowWatch<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram as the hex of its V2 serialization.
mod hist_hex {
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
    use serde::de::Error as _;
    use serde::{Deserialize, Serialize};

    pub(super) fn to_hex(h: &Histogram<u64>) -> String {
        let mut buf = Vec::new();
        // Writing to a Vec fails only for a histogram too large to encode,
        // which the reference halves never are; an empty one restores as empty.
        let _ = V2Serializer::new().serialize(h, &mut buf);
        hex::encode(buf)
    }

    pub(super) fn from_hex(s: &str) -> Result<Histogram<u64>, String> {
        let bytes = hex::decode(s).map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Ok(super::empty_hist());
        }
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("{e:?}"))?;
        h.auto(true);
        Ok(h)
    }

    pub(super) fn serialize<S: serde::Serializer>(
        h: &Histogram<u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        to_hex(h).serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Histogram<u64>, D::Error> {
        from_hex(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// An optional histogram, as [`hist_hex`].
mod opt_hist_hex {
    use hdrhistogram::Histogram;
    use serde::de::Error as _;
    use serde::{Deserialize, Serialize};

    pub(super) fn serialize<S: serde::Serializer>(
        h: &Option<Histogram<u64>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        h.as_ref().map(super::hist_hex::to_hex).serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Histogram<u64>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::hist_hex::from_hex(&s).map_err(D::Error::custom))
            .transpose()
    }
}
