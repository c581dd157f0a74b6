//! The receiver's end of the bounded queue to the processor.
//!
//! A request is acknowledged only once its batch is in the queue, so nothing
//! acknowledged can be lost; when the queue is full the request is refused
//! with a retryable status instead of growing memory. The queue is bounded
//! twice: in batches (the channel's capacity) and in bytes (a semaphore whose
//! permits are KiB of decoded payload, released when the processor drops the
//! batch). With several tenants, each may hold at most a share of the bytes,
//! so one tenant's flood throttles that tenant (HTTP 429) while the others
//! keep being served.
//!
//! With a write-ahead log ([`AcceptLog`]), each batch is appended to it and
//! put into the queue under one lock, so the log's order is the queue's
//! order: the processor's mark (the last batch its stores hold) then
//! covers exactly the records before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_model::{AcceptLog, AcceptLogError, Lease, QueuedBatch, TenantId, TraceBatch};
use tokio::sync::{Semaphore, mpsc};

use crate::config::QueueConfig;
use crate::error::ReceiveError;

/// Held while a batch is appended to the log and put into the queue.
type OrderLock = Arc<Mutex<()>>;

/// Hands batches to the processor under the queue's limits.
#[derive(Debug)]
pub struct Admission {
    tx: mpsc::Sender<QueuedBatch>,
    global: Arc<Semaphore>,
    global_kib: u32,
    /// Per-tenant budgets; `None` when one tenant may use the whole queue.
    tenant_kib: Option<u32>,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    wait: Duration,
    retry_after: Duration,
    /// The write-ahead log, and the lock that keeps its order the queue's.
    log: Option<(Arc<dyn AcceptLog>, OrderLock)>,
}

impl Admission {
    /// Wraps the sending half of the queue. `tenants` is how many tenants
    /// are configured: per-tenant shares apply only when there are several.
    pub fn new(tx: mpsc::Sender<QueuedBatch>, config: &QueueConfig, tenants: usize) -> Self {
        let global_kib = u32::try_from(config.memory_bytes() / 1024).unwrap_or(u32::MAX);
        let tenant_kib = (tenants > 1)
            .then(|| ((f64::from(global_kib) * config.max_tenant_share) as u32).max(1));
        Self {
            tx,
            global: Arc::new(Semaphore::new(global_kib as usize)),
            global_kib,
            tenant_kib,
            tenants: Mutex::new(HashMap::new()),
            wait: config.enqueue_timeout,
            retry_after: config.retry_after,
            log: None,
        }
    }

    /// Writes every batch to `log` before it is queued (and so before the
    /// request is acknowledged).
    pub fn with_log(mut self, log: Arc<dyn AcceptLog>) -> Self {
        self.log = Some((log, Arc::new(Mutex::new(()))));
        self
    }

    /// Queues a batch read back from the write-ahead log at start, waiting
    /// as long as it takes for room (the processor is draining the queue
    /// meanwhile): it is not appended again, and it keeps its position.
    pub async fn readmit(
        &self,
        batch: TraceBatch,
        logged: causeway_model::LogPosition,
    ) -> Result<(), ReceiveError> {
        let kib = u32::try_from(batch.payload.len().div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let closed = || ReceiveError::ShuttingDown {
            retry_after: self.retry_after,
        };
        let global = Arc::clone(&self.global)
            .acquire_many_owned(kib.min(self.global_kib))
            .await
            .map_err(|_| closed())?;
        let permit = self.tx.reserve().await.map_err(|_| closed())?;
        permit.send(QueuedBatch {
            batch,
            lease: Lease::new(global, None),
            logged: Some(logged),
        });
        Ok(())
    }

    /// Bytes currently held by queued (or in-process) batches.
    pub fn queued_bytes(&self) -> u64 {
        u64::from(self.global_kib - self.global.available_permits() as u32) * 1024
    }

    /// Batches waiting in the queue.
    pub fn queued_batches(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues `batch`, waiting up to `enqueue_timeout` for room.
    pub async fn admit(&self, batch: TraceBatch) -> Result<(), ReceiveError> {
        if self.tx.is_closed() {
            return Err(ReceiveError::ShuttingDown {
                retry_after: self.retry_after,
            });
        }
        let kib = u32::try_from(batch.payload.len().div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let tenant_permit = match self.tenant_kib {
            None => None,
            Some(limit) => {
                let sem = self.tenant_budget(&batch.tenant, limit);
                // No waiting here: the tenant is over its own share, which
                // only its own retries can fix.
                let permit = sem.try_acquire_many_owned(kib.min(limit)).map_err(|_| {
                    ReceiveError::TenantThrottled {
                        retry_after: self.retry_after,
                    }
                })?;
                Some(permit)
            }
        };
        let overloaded = || ReceiveError::Overloaded {
            retry_after: self.retry_after,
        };
        // Waiting for room is bounded; the log append after it is not part
        // of the wait: once appended, the batch must be queued (a timeout
        // there would refuse a request whose record replays later).
        let room =
            async {
                let global = Arc::clone(&self.global)
                    .acquire_many_owned(kib.min(self.global_kib))
                    .await
                    .map_err(|_| overloaded())?;
                let permit = self.tx.clone().reserve_owned().await.map_err(|_| {
                    ReceiveError::ShuttingDown {
                        retry_after: self.retry_after,
                    }
                })?;
                Ok::<_, ReceiveError>((global, permit))
            };
        let (global, permit) = match tokio::time::timeout(self.wait, room).await {
            Ok(result) => result?,
            Err(_) => return Err(overloaded()),
        };
        let lease = Lease::new(global, tenant_permit);
        let Some((log, order)) = &self.log else {
            permit.send(QueuedBatch {
                batch,
                lease,
                logged: None,
            });
            return Ok(());
        };
        let (log, order) = (Arc::clone(log), Arc::clone(order));
        let append = move || {
            let _order = order.lock().unwrap_or_else(|p| p.into_inner());
            let logged = log.append(&batch)?;
            permit.send(QueuedBatch {
                batch,
                lease,
                logged: Some(logged),
            });
            Ok::<(), AcceptLogError>(())
        };
        let appended = if self.log.as_ref().is_some_and(|(l, _)| l.waits_for_disk()) {
            // An fsync per request: off the async workers.
            tokio::task::spawn_blocking(append)
                .await
                .unwrap_or_else(|e| Err(AcceptLogError::Io(e.to_string())))
        } else {
            // A write into the page cache: cheaper than a thread hop.
            append()
        };
        appended.map_err(|e| {
            tracing::error!(error = %e, "refusing a request: the write-ahead log cannot take it");
            ReceiveError::LogUnavailable {
                reason: e.to_string(),
                retry_after: self.retry_after,
            }
        })
    }

    fn tenant_budget(&self, tenant: &TenantId, limit: u32) -> Arc<Semaphore> {
        let mut map = match self.tenants.lock() {
            Ok(m) => m,
            // The map holds only semaphores; a panic elsewhere cannot leave
            // it inconsistent, so keep using it.
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            map.entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit as usize))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use causeway_model::Transport;

    fn batch(tenant: &str, bytes: usize) -> TraceBatch {
        TraceBatch {
            tenant: TenantId::new(tenant).expect("tenant"),
            transport: Transport::Grpc,
            payload: Bytes::from(vec![0u8; bytes]),
            spans: 1,
            services: vec![],
        }
    }

    fn config(mib: u32, capacity: usize) -> QueueConfig {
        QueueConfig {
            capacity,
            memory_limit_mib: mib,
            enqueue_timeout: Duration::from_millis(20),
            ..QueueConfig::default()
        }
    }

    #[tokio::test]
    async fn refuses_when_memory_is_full_and_recovers_when_drained() {
        let (tx, mut rx) = mpsc::channel(100);
        let a = Admission::new(tx, &config(1, 100), 1);
        a.admit(batch("default", 700 * 1024))
            .await
            .expect("first fits");
        let err = a
            .admit(batch("default", 700 * 1024))
            .await
            .expect_err("full");
        assert!(matches!(err, ReceiveError::Overloaded { .. }), "{err:?}");
        assert_eq!(err.http_status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.queued_batches(), 1);
        drop(rx.recv().await);
        a.admit(batch("default", 700 * 1024))
            .await
            .expect("fits after drain");
    }

    #[tokio::test]
    async fn refuses_when_batch_capacity_is_full() {
        let (tx, _rx) = mpsc::channel(2);
        let a = Admission::new(tx, &config(16, 2), 1);
        a.admit(batch("default", 10)).await.expect("1");
        a.admit(batch("default", 10)).await.expect("2");
        assert!(a.admit(batch("default", 10)).await.is_err());
    }

    #[tokio::test]
    async fn a_flooding_tenant_does_not_starve_others() {
        let (tx, _rx) = mpsc::channel(100);
        let a = Admission::new(tx, &config(2, 100), 2);
        a.admit(batch("noisy", 1000 * 1024))
            .await
            .expect("within share");
        let err = a
            .admit(batch("noisy", 100 * 1024))
            .await
            .expect_err("over share");
        assert_eq!(err.http_status(), http::StatusCode::TOO_MANY_REQUESTS);
        a.admit(batch("quiet", 900 * 1024))
            .await
            .expect("other tenant served");
    }

    #[tokio::test]
    async fn closed_queue_means_shutting_down() {
        let (tx, rx) = mpsc::channel(2);
        drop(rx);
        let a = Admission::new(tx, &config(1, 2), 1);
        let err = a.admit(batch("default", 10)).await.expect_err("closed");
        assert!(matches!(err, ReceiveError::ShuttingDown { .. }));
    }
}
