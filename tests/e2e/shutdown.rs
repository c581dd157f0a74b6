//! SIGTERM: stop accepting, drain what was acknowledged, exit 0. Every span
//! a client got a success for is processed before exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use prost::Message;

use crate::harness::{Server, grpc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_nothing_acknowledged() {
    let mut server = Server::start("");
    let mut workload = Workload::new(WorkloadConfig::default());
    let batches: Arc<Vec<(Bytes, u64)>> = Arc::new(
        (0..8)
            .map(|_| {
                let req = workload.batch(300);
                let n = causeway_benches::span_count(&req);
                (Bytes::from(req.encode_to_vec()), n)
            })
            .collect(),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (batches, acked, stop) = (Arc::clone(&batches), Arc::clone(&acked), Arc::clone(&stop));
        let (grpc_addr, http_addr) = (server.grpc, server.http);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let (body, n) = &batches[i % batches.len()];
                i += 1;
                let ok = if t % 2 == 0 {
                    grpc::export(grpc_addr, body.clone(), None, false)
                        .await
                        .is_ok()
                } else {
                    http.post(format!("http://{http_addr}/v1/traces"))
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                };
                if ok {
                    acked.fetch_add(*n, Ordering::SeqCst);
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("terminate");
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    let (status, server) = status;
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("processor drained its input and stopped"))
        .unwrap_or_else(|| panic!("no drain line in log:\n{log}"));
    let processed: u64 = line
        .split("spans=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("spans= in drain line");
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 0, "load reached the server");
    // A request whose response was lost on the wire may be processed
    // without being acknowledged; the reverse would be data loss.
    assert!(
        processed >= acked,
        "acknowledged {acked} spans but processed only {processed}"
    );
}
