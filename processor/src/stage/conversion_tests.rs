use super::tests::queued;
use super::*;
use crate::query::{EdgeRow, QueryHandle, RedQuery, RedRow};
use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use prost::Message;

/// RED rows (self time included) and edges after `requests` went
/// through a stage converting `threads` requests at once.
async fn run(threads: usize, requests: &[Bytes], tag: &str) -> (Vec<RedRow>, Vec<EdgeRow>) {
    let dir =
        std::env::temp_dir().join(format!("causeway-stage-conv-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persist = Persistence::open(crate::config::StorageSettings::new(dir.clone())).expect("p");
    let config = SpansConfig {
        convert_threads: threads,
        ..SpansConfig::default()
    };
    let (tx, rx) = mpsc::channel(64);
    let (qtx, qrx) = mpsc::channel(4);
    let stage = ProcessorStage::new(rx, qrx, config, persist).expect("stage");
    let handle = QueryHandle::new(qtx);
    let task = tokio::spawn(stage.run());
    for r in requests {
        tx.send(queued("acme", r.clone(), 1)).await.expect("send");
    }
    let acme = TenantId::new("acme").expect("tenant");
    let all = RedQuery {
        from_ns: 0,
        to_ns: i64::MAX / 2,
        ..RedQuery::default()
    };
    let red = handle.red(acme.clone(), all).await.expect("red");
    let edges = handle.graph(acme, 0, i64::MAX / 2).await.expect("graph");
    drop(tx);
    task.await.expect("stage");
    let _ = std::fs::remove_dir_all(&dir);
    (red, edges)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_do_not_depend_on_how_many_conversions_run_at_once() {
    // Far enough apart that spans expire from the pairing store while
    // later requests arrive, and with the oldest requests last (a
    // collector retrying): self times and unpaired spans depend on the
    // order batches are aggregated in.
    let mut w = Workload::new(WorkloadConfig {
        spacing_ns: 500_000_000,
        ..WorkloadConfig::default()
    });
    let mut requests: Vec<Bytes> = (0..32)
        .map(|_| Bytes::from(w.batch(300).encode_to_vec()))
        .collect();
    requests.rotate_left(8);
    let one = run(1, &requests, "one").await;
    let four = run(4, &requests, "four").await;
    assert!(!one.0.is_empty() && !one.1.is_empty());
    assert!(one.0.iter().any(|r| r.self_total.is_some()));
    assert_eq!(one, four);
}
