use super::*;
use crate::query::QueryHandle;
use crate::query::RedQuery;
use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::{Lease, ServiceCount, TraceBatch, Transport};
use prost::Message;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A queued batch of `spans` spans of `tenant` (for the processor's tests).
pub(crate) fn queued(tenant: &str, payload: Bytes, spans: u64) -> QueuedBatch {
    let sem = Arc::new(Semaphore::new(10));
    let permit = sem.try_acquire_many_owned(1).expect("permit");
    QueuedBatch {
        batch: TraceBatch {
            tenant: TenantId::new(tenant).expect("tenant"),
            transport: Transport::Grpc,
            payload,
            spans,
            services: vec![ServiceCount {
                name: "svc".into(),
                spans,
                errors: 0,
                first_ns: 1,
                last_ns: 2,
            }],
        },
        lease: Lease::new(permit, None),
        logged: None,
    }
}

fn test_persistence(tag: &str) -> Persistence {
    let dir = std::env::temp_dir().join(format!("causeway-stage-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Persistence::open(crate::config::StorageSettings::new(dir)).expect("persistence")
}

#[tokio::test]
async fn queries_see_everything_queued_before_them_per_tenant() {
    let (tx, rx) = mpsc::channel(16);
    let (qtx, qrx) = mpsc::channel(4);
    let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), test_persistence("stage"))
        .expect("stage");
    let handle = QueryHandle::new(qtx);
    let req = Workload::new(WorkloadConfig::default()).batch(500);
    let n: u64 = causeway_benches::span_count(&req);
    let payload = Bytes::from(req.encode_to_vec());
    for _ in 0..3 {
        tx.send(queued("acme", payload.clone(), n))
            .await
            .expect("send");
    }
    let task = tokio::spawn(stage.run());
    let acme = TenantId::new("acme").expect("tenant");
    let services = handle.services(acme.clone()).await.expect("answer");
    assert_eq!(services[0].spans, 3 * n);
    let all = RedQuery {
        from_ns: 0,
        to_ns: i64::MAX / 2,
        ..RedQuery::default()
    };
    let red = handle.red(acme.clone(), all.clone()).await.expect("red");
    assert_eq!(red.iter().map(|r| r.total.calls).sum::<u64>(), 3 * n);
    let frontend = handle
        .red(
            acme.clone(),
            RedQuery {
                service: Some("frontend".into()),
                ..all.clone()
            },
        )
        .await
        .expect("red");
    assert!(!frontend.is_empty() && frontend.iter().all(|r| r.service == "frontend"));
    let edges = handle.graph(acme, 0, i64::MAX / 2).await.expect("graph");
    assert!(
        edges
            .iter()
            .any(|e| e.client == "frontend" && e.server == "checkout"),
        "{edges:?}"
    );
    let other = handle
        .red(TenantId::new("globex").expect("tenant"), all)
        .await
        .expect("red");
    assert!(other.is_empty(), "tenants are apart");
    drop(tx);
    task.await.expect("stage ends when input closes");
}

#[tokio::test]
async fn cut_values_are_counted_on_the_metrics() {
    let (tx, rx) = mpsc::channel(16);
    let (qtx, qrx) = mpsc::channel(4);
    let metrics = crate::ProcessorMetrics::default();
    let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), test_persistence("cut"))
        .expect("stage")
        .with_metrics(metrics.clone());
    let handle = QueryHandle::new(qtx);
    let mut req = Workload::new(WorkloadConfig::default()).batch(10);
    let mut long = 0;
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                span.name = "x".repeat(crate::kernels::otlp_to_arrow::MAX_VALUE_BYTES + 1);
                long += 1;
            }
        }
    }
    let n = causeway_benches::span_count(&req);
    tx.send(queued("acme", Bytes::from(req.encode_to_vec()), n))
        .await
        .expect("send");
    let task = tokio::spawn(stage.run());
    // A query answers after everything queued before it was processed.
    handle
        .services(TenantId::new("acme").expect("tenant"))
        .await
        .expect("answer");
    assert_eq!(metrics.truncated_values.get(), long);
    assert_eq!(metrics.failed_batches.get(), 0);
    drop((tx, handle));
    task.await.expect("stage ends");
}
