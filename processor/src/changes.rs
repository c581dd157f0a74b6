//! What the processor tells the correlator: incidents that opened, grew or
//! resolved, in the order detection changed them.
//!
//! ```text
//! seal windows ─> detection ─take_changes─> outbox ─try_send─> bounded channel ─> correlator
//! ```
//!
//! The processor never waits for the correlator (an RCA takes seconds; the
//! processor must keep draining ingest). A full channel leaves the changes
//! in the outbox, which keeps only the latest version of each incident, so
//! it is bounded by the incidents kept and nothing is lost: the next flush
//! sends them.

use std::collections::VecDeque;

use causeway_model::{Incident, IncidentState, TenantId};
use tokio::sync::mpsc;

/// One incident as detection left it after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentChange {
    /// Whose incident.
    pub tenant: TenantId,
    /// Its id (unique per tenant).
    pub id: u64,
    /// Event time of its latest change, unix ns: the version of the
    /// incident an RCA report is current for.
    pub updated_ns: i64,
    /// Whether it is still going on.
    pub state: IncidentState,
}

impl IncidentChange {
    /// The change of `incident` of `tenant`.
    pub fn of(tenant: &TenantId, incident: &Incident) -> Self {
        Self {
            tenant: tenant.clone(),
            id: incident.id,
            updated_ns: incident.updated_ns,
            state: incident.state,
        }
    }
}

/// Changes waiting for room in the channel, oldest first.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: Option<mpsc::Sender<IncidentChange>>,
    waiting: VecDeque<IncidentChange>,
}

impl Outbox {
    /// Sends to `tx`; `None` discards every change (no correlator).
    pub(crate) fn new(tx: Option<mpsc::Sender<IncidentChange>>) -> Self {
        Self {
            tx,
            waiting: VecDeque::new(),
        }
    }

    /// Queues `changes` of `tenant`: a newer version replaces a waiting
    /// one of the same incident.
    pub(crate) fn push(&mut self, tenant: &TenantId, changes: Vec<Incident>) {
        if self.tx.is_none() {
            return;
        }
        for i in changes {
            let change = IncidentChange::of(tenant, &i);
            match self
                .waiting
                .iter_mut()
                .find(|w| w.id == change.id && w.tenant == change.tenant)
            {
                Some(w) => *w = change,
                None => self.waiting.push_back(change),
            }
        }
    }

    /// Sends what the channel has room for; returns how many.
    pub(crate) fn flush(&mut self) -> usize {
        let Some(tx) = &self.tx else {
            return 0;
        };
        let mut sent = 0;
        while let Some(change) = self.waiting.pop_front() {
            match tx.try_send(change) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(change)) => {
                    self.waiting.push_front(change);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The correlator stopped (shutdown): nobody to tell.
                    self.tx = None;
                    self.waiting.clear();
                    break;
                }
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_model::Severity;

    fn incident(id: u64, updated_ns: i64) -> Incident {
        Incident {
            id,
            state: IncidentState::Open,
            onset_ns: 0,
            updated_ns,
            last_onset_ns: None,
            resolved_ns: None,
            severity: Severity::Minor,
            services: Default::default(),
            anomalies: vec![],
        }
    }

    #[test]
    fn a_full_channel_keeps_the_latest_version_and_sends_it_later() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(Some(tx));
        let t = TenantId::new("a").expect("tenant");
        outbox.push(&t, vec![incident(1, 10), incident(2, 10)]);
        assert_eq!(outbox.flush(), 1);
        // Incident 2 waits; a newer version of it replaces the waiting one.
        outbox.push(&t, vec![incident(2, 20)]);
        assert_eq!(outbox.waiting.len(), 1);
        assert_eq!(rx.try_recv().expect("first").id, 1);
        assert_eq!(outbox.flush(), 1);
        let second = rx.try_recv().expect("second");
        assert_eq!((second.id, second.updated_ns), (2, 20));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_closed_channel_drops_changes_instead_of_growing() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut outbox = Outbox::new(Some(tx));
        let t = TenantId::new("a").expect("tenant");
        outbox.push(&t, vec![incident(1, 10)]);
        assert_eq!(outbox.flush(), 0);
        outbox.push(&t, vec![incident(2, 10)]);
        assert!(outbox.waiting.is_empty());
    }
}
