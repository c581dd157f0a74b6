//! The one retry schedule every client that talks to another system uses
//! (connectors' HTTP and OAuth clients, forwarding, notifications):
//! exponential backoff with jitter.
//!
//! Jitter matters because failures are shared: when a downstream restarts,
//! every causeway instance and every tenant's sync failed at the same
//! moment, and without jitter they would all retry at the same moments
//! too. A server's own `Retry-After` wins over the schedule (it knows its
//! load); the cap still applies, so a hostile or broken header cannot park
//! a client for a day.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff: `initial × 2^(attempt−1)`, capped at `max`, times a
/// random factor in [0.5, 1.5) ("equal jitter": the mean stays the
/// schedule's, and no two clients keep the same phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A schedule from `initial` doubling up to `max` (`max` below
    /// `initial` is taken as `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }

    /// The schedule's wait before retry number `attempt` (1 is the first
    /// retry), jittered and capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        // 2^20 times any sane initial interval is past any sane cap.
        let doubled = self
            .initial
            .saturating_mul(1u32 << attempt.clamp(1, 21).saturating_sub(1));
        doubled.min(self.max).mul_f64(jitter()).min(self.max)
    }

    /// The wait before retry `attempt`: the server's `retry_after` when it
    /// gave one, else the schedule; never beyond the cap.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after
            .map_or_else(|| self.delay(attempt), |d| d.min(self.max))
            .min(self.max)
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// A factor in [0.5, 1.5). The standard library's per-process random
/// hasher keys are enough for spreading retries (this is not for secrets).
fn jitter() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9E37_79B9_7F4A_7C15);
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_the_jitter_band_and_stops_at_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 1..=4u32 {
            let mean = 100.0 * f64::from(1u32 << (attempt - 1));
            for _ in 0..50 {
                let ms = b.delay(attempt).as_secs_f64() * 1000.0;
                assert!(
                    ms >= 0.5 * mean - 1e-6 && ms < 1.5 * mean,
                    "{attempt}: {ms}"
                );
            }
        }
        for attempt in [6, 30, u32::MAX] {
            assert!(b.delay(attempt) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn jitter_spreads_clients_that_failed_together() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(3)).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn a_servers_retry_after_wins_but_not_past_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(
            b.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.wait(1, Some(Duration::from_secs(86_400))),
            Duration::from_secs(5)
        );
        assert!(b.wait(1, None) < Duration::from_millis(150));
    }
}
