//! A crash loses nothing that was acknowledged: `kill -9` in the middle of
//! a load, with checkpoints every second so that the stores hold part of
//! the acknowledged requests and the write-ahead log the rest. After the
//! restart, spans, catalog and RED series each hold every acknowledged span
//! exactly once (requests in flight at the kill may also be there: they
//! were logged but their client never heard; OTLP clients retry them, so
//! at-least-once is the contract), and a clean restart after that replays
//! nothing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig, span_count};
use prost::Message;
use serde_json::json;

use crate::harness::{Options, Scratch, Server, grpc};

/// Concurrent clients; each has at most one request in flight.
const CLIENTS: u64 = 4;
const SPANS_PER_REQUEST: usize = 200;

/// (spans in the store by SQL, spans in the catalog, RED calls).
async fn counts(server: &Server) -> (u64, u64, u64) {
    let (s, sql) = server
        .post_json(
            "/api/v1/query",
            None,
            &json!({"sql": "SELECT count(*) AS n FROM spans"}),
        )
        .await;
    assert_eq!(s, 200, "{sql}");
    let sql: serde_json::Value = serde_json::from_str(&sql).expect("json");
    let stored = sql["rows"][0]["n"].as_u64().expect("count");
    let catalog = server.services(None).await.values().map(|(s, _)| s).sum();
    let (s, red) = server
        .get("/api/v1/red?from=0&to=4102444800000", None)
        .await;
    assert_eq!(s, 200, "{red}");
    let red: serde_json::Value = serde_json::from_str(&red).expect("json");
    let calls = red["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| s["calls"].as_u64().expect("calls"))
        .sum();
    (stored, catalog, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_to_a_kill_9_under_load() {
    let scratch = Scratch::new("crash");
    let mut server = Server::start_opts(Options {
        data_dir: Some(scratch.0.join("data")),
        storage: "checkpoint_interval: 1s\nwal:\n  fsync: interval\n".into(),
        ..Options::default()
    });
    let grpc_addr = server.grpc;
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let mut workload = Workload::new(WorkloadConfig {
                seed: 1000 + c,
                ..WorkloadConfig::default()
            });
            while !stop.load(Ordering::Relaxed) {
                let req = workload.batch(SPANS_PER_REQUEST);
                let spans = span_count(&req);
                // Counted only once the server said so.
                if grpc::export(grpc_addr, Bytes::from(req.encode_to_vec()), None, false)
                    .await
                    .is_ok()
                {
                    acked.fetch_add(spans, Ordering::SeqCst);
                }
            }
        }));
    }
    // Long enough for a few checkpoints (each saves a log mark) and for
    // requests after the last of them.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 0, "no request was acknowledged before the kill");
    // A request's spans are at most this many (the workload's batches are
    // about SPANS_PER_REQUEST spans).
    let in_flight = CLIENTS * 2 * SPANS_PER_REQUEST as u64;

    server.restart();
    let log = server.log();
    assert!(
        log.contains("replayed acknowledged requests"),
        "the restart replayed nothing from the write-ahead log:\n{log}"
    );
    let (stored, catalog, calls) = counts(&server).await;
    eprintln!(
        "crash: {acked} spans acknowledged before the kill, {stored} stored after the restart"
    );
    assert!(
        stored >= acked && stored <= acked + in_flight,
        "{acked} spans acknowledged, {stored} stored"
    );
    assert_eq!(
        catalog, stored,
        "the catalog counts spans twice or misses some"
    );
    assert_eq!(calls, stored, "RED series count spans twice or miss some");

    // A clean stop releases the log: the next start replays nothing.
    let status = server.terminate();
    assert!(status.success(), "{}", server.log());
    let before = server.log().len();
    server.restart();
    assert_eq!(counts(&server).await, (stored, catalog, calls));
    assert!(
        !server.log()[before..].contains("replayed acknowledged requests"),
        "a clean stop left records to replay"
    );
}
