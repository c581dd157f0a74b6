use super::tests::queued;
use super::*;
use crate::query::{QueryHandle, RedQuery, RedRow};
use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use prost::Message;

#[tokio::test]
async fn self_times_are_queryable_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("causeway-stage-self-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || Persistence::open(crate::config::StorageSettings::new(dir.clone())).expect("p");
    let acme = TenantId::new("acme").expect("tenant");
    let all = RedQuery {
        from_ns: 0,
        to_ns: i64::MAX / 2,
        ..RedQuery::default()
    };
    let before = {
        let (tx, rx) = mpsc::channel(16);
        let (qtx, qrx) = mpsc::channel(4);
        let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), open()).expect("stage");
        let handle = QueryHandle::new(qtx);
        let mut w = Workload::new(WorkloadConfig::default());
        for _ in 0..4 {
            let req = w.batch(500);
            let n = causeway_benches::span_count(&req);
            tx.send(queued("acme", Bytes::from(req.encode_to_vec()), n))
                .await
                .expect("send");
        }
        let task = tokio::spawn(stage.run());
        let red = handle.red(acme.clone(), all.clone()).await.expect("red");
        drop(tx);
        task.await.expect("stage");
        red
    };
    assert!(!before.is_empty());
    let (_tx, rx) = mpsc::channel(16);
    let (qtx, qrx) = mpsc::channel(4);
    let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), open()).expect("stage");
    let handle = QueryHandle::new(qtx);
    tokio::spawn(stage.run());
    let after = handle.red(acme, all).await.expect("red");
    let selfs = |rows: &[RedRow]| -> Vec<(String, String, Option<u64>)> {
        rows.iter()
            .map(|r| {
                (
                    r.service.clone(),
                    r.operation.clone(),
                    r.self_total.map(|s| s.calls),
                )
            })
            .collect()
    };
    // Shutdown finalized every span's self time: all of them are back.
    assert!(
        selfs(&after).iter().all(|(_, _, n)| n.is_some()),
        "{:?}",
        selfs(&after)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
