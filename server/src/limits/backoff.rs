//! Exponential back-off of client addresses that fail authentication.
//!
//! A token bucket counts every request alike; guessing keys needs a limit
//! on *failures* that also stops the guesser's next attempt before its key
//! is checked (else a right guess still gets through while wrong ones get
//! 429). After `free` failures each further failure blocks the address for
//! `initial · 2^(n - free - 1)`, capped at `max`; a success or `window`
//! without failures forgets the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::config::BackoffConfig;

/// Addresses tracked at most: an attacker spraying from many addresses
/// cannot grow the table without bound. At the cap the entries whose
/// window passed go first, then the oldest.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Failed authentications per client address.
#[derive(Debug)]
pub struct FailureBackoff {
    config: BackoffConfig,
    entries: Mutex<HashMap<IpAddr, Entry>>,
    /// Entries in the table, read without the lock: every request asks
    /// [`FailureBackoff::blocked`] and every success calls
    /// [`FailureBackoff::succeeded`], and the table is nearly always empty.
    tracked: AtomicUsize,
}

impl FailureBackoff {
    /// An empty table.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            entries: Mutex::default(),
            tracked: AtomicUsize::new(0),
        }
    }

    /// How long `ip` is still blocked, if it is.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.blocked_at(ip, Instant::now())
    }

    /// Records a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now());
    }

    /// Forgets `ip`'s failures.
    pub fn succeeded(&self, ip: IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut entries = self.lock();
        entries.remove(&ip);
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }

    /// Drops entries whose window has passed.
    pub fn housekeep(&self) {
        let now = Instant::now();
        let window = self.config.window;
        let mut entries = self.lock();
        entries.retain(|_, e| !expired(e, now, window));
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn blocked_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let entries = self.lock();
        let until = entries.get(&ip)?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    pub(super) fn failed_at(&self, ip: IpAddr, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&ip) {
            let window = self.config.window;
            entries.retain(|_, e| !expired(e, now, window));
            if entries.len() >= MAX_TRACKED
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        let entry = entries.entry(ip).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if expired(entry, now, self.config.window) {
            *entry = Entry {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if let Some(over) = entry.failures.checked_sub(self.config.free)
            && over > 0
        {
            let block = block_for(over, self.config.initial, self.config.max);
            entry.blocked_until = now.checked_add(block);
        }
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }
}

/// Whether an entry's failures are old enough to forget. A block that
/// outlasts the window keeps the entry until it ends.
fn expired(e: &Entry, now: Instant, window: Duration) -> bool {
    let quiet = now.saturating_duration_since(e.last_failure) >= window;
    let unblocked = e.blocked_until.is_none_or(|u| u <= now);
    quiet && unblocked
}

/// The block after the `over`-th failure beyond the free ones:
/// `initial · 2^(over-1)`, at most `max`.
pub(super) fn block_for(over: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = over.saturating_sub(1).min(30);
    initial
        .checked_mul(1u32 << doublings)
        .map_or(max, |d| d.min(max))
}
