//! The processor stage: one task that owns the per-tenant state.

use causeway_model::QueuedBatch;
use tokio::sync::mpsc;

use crate::catalog::Catalog;
use crate::query::Query;

/// Consumes the ingest queue and answers queries.
#[derive(Debug)]
pub struct ProcessorStage {
    input: mpsc::Receiver<QueuedBatch>,
    queries: mpsc::Receiver<Query>,
    catalog: Catalog,
    processed_batches: u64,
    processed_spans: u64,
}

impl ProcessorStage {
    /// A stage reading `input` and answering `queries`.
    pub fn new(input: mpsc::Receiver<QueuedBatch>, queries: mpsc::Receiver<Query>) -> Self {
        Self {
            input,
            queries,
            catalog: Catalog::default(),
            processed_batches: 0,
            processed_spans: 0,
        }
    }

    /// Runs until the input closes (every sender dropped, i.e. the receivers
    /// have stopped) and everything queued is processed.
    pub async fn run(mut self) {
        let mut queries_open = true;
        loop {
            tokio::select! {
                biased;
                q = self.queries.recv(), if queries_open => match q {
                    Some(q) => {
                        // Everything acknowledged before the question was
                        // asked is already in the input: take it first.
                        while let Ok(batch) = self.input.try_recv() {
                            self.process(batch);
                        }
                        self.answer(q);
                    }
                    None => queries_open = false,
                },
                b = self.input.recv() => match b {
                    Some(batch) => self.process(batch),
                    None => break,
                },
            }
        }
        tracing::info!(
            batches = self.processed_batches,
            spans = self.processed_spans,
            "processor drained its input and stopped"
        );
    }

    fn process(&mut self, queued: QueuedBatch) {
        let batch = &queued.batch;
        self.catalog.add(&batch.tenant, &batch.services);
        self.processed_batches += 1;
        self.processed_spans += batch.spans;
        // `queued` drops here, releasing its queue memory.
    }

    fn answer(&self, query: Query) {
        match query {
            Query::Services { tenant, reply } => {
                // The asker may have gone away (client hung up); nothing to do.
                let _ = reply.send(self.catalog.services(&tenant));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryHandle;
    use bytes::Bytes;
    use causeway_model::{Lease, ServiceCount, TenantId, TraceBatch, Transport};
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn queued(tenant: &str, service: &str, spans: u64) -> QueuedBatch {
        let sem = Arc::new(Semaphore::new(10));
        let permit = sem.try_acquire_many_owned(1).expect("permit");
        QueuedBatch {
            batch: TraceBatch {
                tenant: TenantId::new(tenant).expect("tenant"),
                transport: Transport::Grpc,
                payload: Bytes::new(),
                spans,
                services: vec![ServiceCount {
                    name: service.into(),
                    spans,
                    errors: 0,
                    first_ns: 1,
                    last_ns: 2,
                }],
            },
            lease: Lease::new(permit, None),
        }
    }

    #[tokio::test]
    async fn a_query_sees_everything_queued_before_it() {
        let (tx, rx) = mpsc::channel(16);
        let (qtx, qrx) = mpsc::channel(4);
        let stage = ProcessorStage::new(rx, qrx);
        let handle = QueryHandle::new(qtx);
        for _ in 0..10 {
            tx.send(queued("acme", "cart", 3)).await.expect("send");
        }
        let task = tokio::spawn(stage.run());
        let services = handle
            .services(TenantId::new("acme").expect("tenant"))
            .await
            .expect("answer");
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].spans, 30);
        drop(tx);
        task.await.expect("stage ends when input closes");
        assert!(handle.services(TenantId::default_tenant()).await.is_err());
    }
}
