use super::tests::queued;
use super::*;
use crate::query::QueryHandle;
use bytes::Bytes;
use causeway_benches::{Fault, SimConfig, Simulator};
use causeway_model::{Anomaly, Incident};
use prost::Message;

/// What detection found after `requests` went through a stage; with
/// `ask_each`, a detection query follows every request (as an API
/// client polling incidents during a live feed would).
async fn detect(requests: &[Bytes], ask_each: bool, tag: &str) -> (Vec<Incident>, Vec<Anomaly>) {
    let dir =
        std::env::temp_dir().join(format!("causeway-stage-seal-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persist = Persistence::open(crate::config::StorageSettings::new(dir.clone())).expect("p");
    let (tx, rx) = mpsc::channel(256);
    let (qtx, qrx) = mpsc::channel(4);
    let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), persist).expect("stage");
    let handle = QueryHandle::new(qtx);
    let task = tokio::spawn(stage.run());
    let acme = TenantId::new("acme").expect("tenant");
    for r in requests {
        tx.send(queued("acme", r.clone(), 1)).await.expect("send");
        if ask_each {
            handle.incidents(acme.clone()).await.expect("incidents");
        }
    }
    let incidents = handle.incidents(acme.clone()).await.expect("incidents");
    let anomalies = handle
        .anomalies(acme, 0, i64::MAX / 2)
        .await
        .expect("anomalies");
    drop(tx);
    task.await.expect("stage");
    let _ = std::fs::remove_dir_all(&dir);
    (incidents, anomalies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_does_not_depend_on_how_fast_the_data_came_in() {
    // Forty minutes of a simulated shop with an error burst and a new
    // exception in two services after thirty: several anomalies, some
    // from sealed windows and some (new signatures) from batches as
    // they arrive, whose interleaving decides how incidents group.
    let start = SimConfig::default().start_ns;
    let faults = ["errors:payment@30m+5m", "new-exception:shipping@31m+4m"]
        .iter()
        .map(|f| Fault::parse(f, start).expect("fault"))
        .collect();
    let mut sim = Simulator::new(SimConfig {
        duration: std::time::Duration::from_secs(40 * 60),
        rate: 4.0,
        step: std::time::Duration::from_secs(10),
        faults,
        ..SimConfig::default()
    });
    let mut requests = Vec::new();
    while let Some((_, req)) = sim.next_step() {
        requests.push(Bytes::from(req.encode_to_vec()));
    }
    let at_once = detect(&requests, false, "at-once").await;
    let polled = detect(&requests, true, "polled").await;
    assert!(
        at_once.0.iter().any(|i| i.services.contains("payment")),
        "{:?}",
        at_once.0
    );
    assert_eq!(at_once, polled);
}
