//! Anomaly detection over sealed windows: a robust baseline per series and
//! metric, learned online, and a detector that reports a shift with its
//! onset (the change point, not the moment it was noticed).
//!
//! Kernels here are pure: they take sealed window statistics and return
//! findings; the stage decides what to feed them and where findings go.
//!
//! ```text
//! Sealed window ─> SeriesDetector ─┬─ latency p50/p90/p99: robust z vs median/MAD of recent windows
//!                                  └─ error ratio: binomial z vs the baseline ratio
//! Sealed self-time window ─> SeriesDetector (latency metrics as self_time_p50/p90/p99)
//! ```
//!
//! Guards against paging on noise: a minimum number of calls per window, a
//! warm-up before anything is reported, a relative-change floor besides the
//! z-score (a 2 ms service that becomes 2.2 ms is not an incident however
//! steady it was), and anomalous windows are kept out of the baseline so a
//! long fault does not become the new normal.

mod baseline;
mod detector;
mod engine;
mod exemplars;
mod recurrence;
mod reference;
mod seasonal;
mod service;
mod signatures;
#[cfg(test)]
mod tests;

pub use baseline::Baseline;
pub use detector::*;
pub use engine::{IncidentSettings, TenantDetection, links_of};
pub use exemplars::{RecentSpans, Want};
pub use reference::OpReference;
pub use service::{Counts, ServiceDetector, SlidingSettings, binomial_upper_score, poisson_score};
