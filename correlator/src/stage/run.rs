//! The stage's loop: incident changes arrive from the processor on a
//! bounded channel; each is announced on the live event stream at once and
//! its analysis scheduled. Nothing polls.
//!
//! ```text
//! processor ─IncidentChange─> announce (SSE) ─> Schedule ─due─> analyse (one task at a time)
//! API feedback ─requested + wake──────────────────^
//! ```
//!
//! A new incident is analysed as soon as its change arrives; one that keeps
//! changing (it grows every window while the fault goes on) at most once
//! per `interval`, since each analysis reads minutes of spans.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use causeway_model::TenantId;
use causeway_processor::IncidentChange;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::service::{RcaError, RcaService};

type Key = (TenantId, u64);

/// When each incident is analysed next.
#[derive(Debug)]
pub(crate) struct Schedule {
    interval: Duration,
    /// Incidents waiting, and when they are due.
    due: HashMap<Key, Instant>,
    /// When an incident was last taken; entries older than `interval`
    /// constrain nothing and are forgotten.
    last: HashMap<Key, Instant>,
}

impl Schedule {
    /// An incident is analysed at most once per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            due: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// `key` changed at `now`: due at once, or `interval` after it was
    /// last taken. Already waiting: stays as it is.
    pub(crate) fn changed(&mut self, key: Key, now: Instant) {
        let at = self
            .last
            .get(&key)
            .map_or(now, |l| (*l + self.interval).max(now));
        self.due.entry(key).or_insert(at);
    }

    /// `key` must be looked at now (feedback), whenever it was last.
    pub(crate) fn now(&mut self, key: Key, now: Instant) {
        self.due.insert(key, now);
    }

    /// The earliest due time, if anything waits.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes what is due at `now`, grouped by tenant.
    pub(crate) fn take_due(&mut self, now: Instant) -> BTreeMap<TenantId, HashSet<u64>> {
        let mut out: BTreeMap<TenantId, HashSet<u64>> = BTreeMap::new();
        self.due.retain(|(tenant, id), at| {
            if *at > now {
                return true;
            }
            out.entry(tenant.clone()).or_default().insert(*id);
            false
        });
        let interval = self.interval;
        self.last
            .retain(|_, l| now.saturating_duration_since(*l) < interval);
        for (tenant, ids) in &out {
            for id in ids {
                self.last.insert((tenant.clone(), *id), now);
            }
        }
        out
    }
}

impl RcaService {
    /// Runs until `cancel`: first looks at every incident once (reports
    /// of an earlier run may be stale, and changes made while causeway was
    /// down were never sent), then follows `changes`.
    pub async fn run(
        self: Arc<Self>,
        mut changes: mpsc::Receiver<IncidentChange>,
        cancel: CancellationToken,
    ) {
        let mut schedule = Schedule::new(self.config.interval.max(Duration::from_secs(1)));
        let startup = Arc::clone(&self);
        let mut running: Option<JoinHandle<bool>> = Some(tokio::spawn(async move {
            match startup.analyse_all().await {
                Ok(n) if n > 0 => tracing::info!(reports = n, "RCA reports brought up to date"),
                Ok(_) => {}
                Err(RcaError::Stopped) => return false,
                Err(e) => tracing::error!(error = %e, "RCA of stored incidents failed"),
            }
            true
        }));
        let mut open = true;
        loop {
            let next = if running.is_none() {
                schedule.next()
            } else {
                None
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                c = changes.recv(), if open => match c {
                    Some(c) => {
                        self.publish(&c.tenant, "incident", c.id);
                        schedule.changed((c.tenant, c.id), Instant::now());
                    }
                    // The processor stopped: what is scheduled still runs.
                    None => open = false,
                },
                () = self.wake.notified() => {
                    let asked: Vec<Key> = match self.requested.lock() {
                        Ok(mut r) => r.drain().collect(),
                        Err(_) => Vec::new(),
                    };
                    let now = Instant::now();
                    for key in asked {
                        schedule.now(key, now);
                    }
                }
                done = async {
                    match running.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                }, if running.is_some() => {
                    running = None;
                    match done {
                        Ok(true) => {}
                        // The processor stopped: shutdown.
                        Ok(false) => break,
                        Err(e) => tracing::error!(error = %e, "an RCA task failed"),
                    }
                }
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let due = schedule.take_due(Instant::now());
                    let me = Arc::clone(&self);
                    running = Some(tokio::spawn(async move { me.analyse_due(due).await }));
                }
            }
        }
        if let Some(h) = running {
            // An analysis in flight is abandoned: its incident is looked
            // at again after the next start.
            h.abort();
        }
    }

    /// Analyses `due`; `false` when the processor stopped.
    async fn analyse_due(&self, due: BTreeMap<TenantId, HashSet<u64>>) -> bool {
        let mut n = 0;
        for (tenant, ids) in due {
            // One tenant's failure (a corrupt file) must not stop the others.
            match self.analyse_tenant(&tenant, Some(&ids)).await {
                Ok(k) => n += k,
                Err(RcaError::Stopped) => return false,
                Err(e) => tracing::error!(%tenant, error = %e, "RCA of the tenant failed"),
            }
        }
        if n > 0 {
            tracing::debug!(reports = n, "RCA reports updated");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, id: u64) -> Key {
        (TenantId::new(t).expect("tenant"), id)
    }

    #[tokio::test]
    async fn a_new_incident_is_due_at_once_and_a_changing_one_once_per_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(60));
        assert_eq!(s.next(), None);
        s.changed(key("a", 1), t0);
        assert_eq!(s.next(), Some(t0));
        let due = s.take_due(t0);
        assert_eq!(due.values().map(HashSet::len).sum::<usize>(), 1);
        // It changes again 10 s later: due 60 s after it was taken.
        s.changed(key("a", 1), t0 + Duration::from_secs(10));
        assert_eq!(s.next(), Some(t0 + Duration::from_secs(60)));
        // More changes before then do not move it.
        s.changed(key("a", 1), t0 + Duration::from_secs(20));
        assert_eq!(s.next(), Some(t0 + Duration::from_secs(60)));
        assert!(s.take_due(t0 + Duration::from_secs(30)).is_empty());
        // Another tenant's new incident is not held back by it.
        s.changed(key("b", 1), t0 + Duration::from_secs(30));
        let due = s.take_due(t0 + Duration::from_secs(30));
        assert_eq!(due.keys().map(TenantId::as_str).collect::<Vec<_>>(), ["b"]);
        // Feedback: now, whatever the interval says.
        s.now(key("a", 1), t0 + Duration::from_secs(31));
        assert_eq!(s.next(), Some(t0 + Duration::from_secs(31)));
    }

    #[tokio::test]
    async fn what_is_taken_long_ago_is_forgotten() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(60));
        s.changed(key("a", 1), t0);
        s.changed(key("a", 2), t0);
        s.take_due(t0);
        assert_eq!(s.last.len(), 2);
        s.take_due(t0 + Duration::from_secs(61));
        assert!(s.last.is_empty(), "bounded by recent analyses");
        // Forgotten: a change is due at once again.
        s.changed(key("a", 1), t0 + Duration::from_secs(62));
        assert_eq!(s.next(), Some(t0 + Duration::from_secs(62)));
    }
}
