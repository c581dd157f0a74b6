//! Stop and start: series, graph, catalog and spans are all still there.
//! And `causeway replay` puts files into the same stores `serve` reads.

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig, span_count};
use prost::Message;
use serde_json::json;

use crate::harness::{Options, Scratch, Server, binary, grpc};

/// Everything the API says about the data, in a comparable form.
async fn everything(
    server: &Server,
) -> (serde_json::Value, serde_json::Value, serde_json::Value, i64) {
    let range = "from=0&to=4102444800000";
    let (s, red) = server.get(&format!("/api/v1/red?{range}"), None).await;
    assert_eq!(s, 200, "{red}");
    let (s, graph) = server.get(&format!("/api/v1/graph?{range}"), None).await;
    assert_eq!(s, 200, "{graph}");
    let (s, services) = server.get("/api/v1/services", None).await;
    assert_eq!(s, 200, "{services}");
    let (s, sql) = server
        .post_json(
            "/api/v1/query",
            None,
            &json!({"sql": "SELECT count(*) AS n FROM spans"}),
        )
        .await;
    assert_eq!(s, 200, "{sql}");
    let sql: serde_json::Value = serde_json::from_str(&sql).expect("json");
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
    (
        parse(&red),
        parse(&graph),
        parse(&services),
        sql["rows"][0]["n"].as_i64().expect("count"),
    )
}

fn total_calls(red: &serde_json::Value) -> u64 {
    red["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| s["calls"].as_u64().expect("calls"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_graph_catalog_and_spans_survive_a_restart() {
    survives_a_restart(Options::default()).await;
}

/// The same with series, catalog and detection state in PostgreSQL (the
/// database every machine and CI have at 127.0.0.1:5432; a schema of its
/// own, dropped after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_graph_catalog_and_spans_survive_a_restart_on_postgres() {
    let url = std::env::var("CAUSEWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "e2e_restart_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let scratch = Scratch::new("restart-pg");
    let data = scratch.0.join("data");
    survives_a_restart(Options {
        storage: format!("backend: postgres\npostgres:\n  url: {url}\n  schema: {schema}\n"),
        data_dir: Some(data.clone()),
        ..Options::default()
    })
    .await;
    // Series, audit trail, reports and signals went to PostgreSQL.
    for file in [
        "causeway.duckdb",
        "audit.duckdb",
        "rca.duckdb",
        "signals.duckdb",
    ] {
        assert!(!data.join(file).exists(), "{file} was written");
    }
    assert!(
        data.join("spans").exists(),
        "spans stay in the data directory"
    );
    let _ = std::process::Command::new("psql")
        .args([
            &url,
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .status();
}

async fn survives_a_restart(options: Options) {
    let mut server = Server::start_opts(options);
    let mut workload = Workload::new(WorkloadConfig::default());
    let mut sent = 0u64;
    for _ in 0..6 {
        let req = workload.batch(400);
        sent += span_count(&req);
        grpc::export(server.grpc, Bytes::from(req.encode_to_vec()), None, false)
            .await
            .expect("export");
    }
    let before = everything(&server).await;
    assert_eq!(total_calls(&before.0), sent);
    assert_eq!(before.3, i64::try_from(sent).expect("fits"));
    assert!(
        !before.1["edges"].as_array().expect("edges").is_empty(),
        "{}",
        before.1
    );

    let status = server.terminate();
    assert!(status.success(), "{}", server.log());
    server.restart();
    let after = everything(&server).await;
    // Self times are final once a span leaves the pairing store: shutdown
    // finalizes those still waiting, so after the restart every series has
    // them, whatever the earlier answer had.
    let strip_self = |v: &serde_json::Value| {
        let mut v = v.clone();
        for s in v["series"].as_array_mut().expect("series") {
            if let Some(o) = s.as_object_mut() {
                o.retain(|k, _| !k.starts_with("self_"));
            }
        }
        v
    };
    assert!(
        after.0["series"]
            .as_array()
            .expect("series")
            .iter()
            .all(|s| s["self_p50_ms"].is_number()),
        "{}",
        after.0
    );
    assert_eq!(
        strip_self(&after.0),
        strip_self(&before.0),
        "RED series differ after restart"
    );
    assert_eq!(after.1, before.1, "graph differs after restart");
    assert_eq!(after.2, before.2, "catalog differs after restart");
    assert_eq!(after.3, before.3, "spans differ after restart");

    // New data adds to the restored state.
    let req = workload.batch(100);
    let more = span_count(&req);
    grpc::export(server.grpc, Bytes::from(req.encode_to_vec()), None, false)
        .await
        .expect("export");
    let (red, _, _, n) = everything(&server).await;
    assert_eq!(total_calls(&red), sent + more);
    assert_eq!(n, i64::try_from(sent + more).expect("fits"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_files_are_what_serve_then_shows() {
    let scratch = Scratch::new("replay");
    let data = scratch.0.join("data");
    let mut workload = Workload::new(WorkloadConfig::default());
    let mut sent = 0u64;
    // A protobuf file, a gzipped protobuf file, a JSON file and a JSON-lines
    // file (the Collector's file exporter format).
    let proto = scratch.0.join("a.pb");
    let req = workload.batch(300);
    sent += span_count(&req);
    std::fs::write(&proto, req.encode_to_vec()).expect("write");
    let gz = scratch.0.join("b.pb.gz");
    let req = workload.batch(300);
    sent += span_count(&req);
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&req.encode_to_vec()).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
    }
    let json_file = scratch.0.join("c.json");
    let req = workload.batch(300);
    sent += span_count(&req);
    std::fs::write(&json_file, serde_json::to_vec_pretty(&req).expect("json")).expect("write");
    let lines = scratch.0.join("d.jsonl");
    let mut text = String::new();
    for _ in 0..3 {
        let req = workload.batch(200);
        sent += span_count(&req);
        text.push_str(&serde_json::to_string(&req).expect("json"));
        text.push('\n');
    }
    std::fs::write(&lines, text).expect("write");

    let out = std::process::Command::new(binary())
        .args(["replay", "--data-dir"])
        .arg(&data)
        .args([&proto, &gz, &json_file, &lines])
        .output()
        .expect("run replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{sent} span(s)")), "{stderr}");

    let server = Server::start_opts(Options {
        data_dir: Some(data.clone()),
        ..Options::default()
    });
    let (red, graph, services, n) = everything(&server).await;
    assert_eq!(total_calls(&red), sent);
    assert_eq!(n, i64::try_from(sent).expect("fits"));
    assert!(!graph["edges"].as_array().expect("edges").is_empty());
    assert!(
        services["services"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    drop(server);

    // A bad file is reported with its name; the others still go in.
    let bad = scratch.0.join("bad.json");
    std::fs::write(&bad, "{\"resourceSpans\": 7}").expect("write");
    let out = std::process::Command::new(binary())
        .args(["replay", "--data-dir"])
        .arg(scratch.0.join("data2"))
        .args([&bad, &proto])
        .output()
        .expect("run replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(stderr.contains("1 request(s)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fault_becomes_an_incident_that_survives_into_serve() {
    let scratch = Scratch::new("simulate");
    let files = scratch.0.join("sim");
    let data = scratch.0.join("data");
    // Half an hour of the web shop, payment failing a third of its calls
    // from minute 20.
    let out = std::process::Command::new(binary())
        .args([
            "simulate",
            "--start",
            "2025-12-01T09:00:00Z",
            "--duration",
            "30m",
            "--rate",
            "5",
            "--fault",
            "errors:payment@20m+10m",
            "--out",
        ])
        .arg(&files)
        .output()
        .expect("run simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files.join("ground-truth.json")).expect("truth"))
            .expect("json");
    assert_eq!(truth["faults"][0]["service"], "payment");
    assert_eq!(truth["faults"][0]["start"], "2025-12-01T09:20:00Z");
    let mut pbs: Vec<_> = std::fs::read_dir(&files)
        .expect("files")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    pbs.sort();
    assert_eq!(pbs.len(), 30, "one file per simulated minute");

    let out = std::process::Command::new(binary())
        .args(["replay", "--data-dir"])
        .arg(&data)
        .args(&pbs)
        .output()
        .expect("run replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        // In the fault's first window: its first failed span.
        stderr.contains("onset 2025-12-01T09:20:0") && stderr.contains("payment"),
        "{stderr}"
    );

    // A server started on the same data knows the incident, its anomalies
    // and what it learned.
    let server = Server::start_opts(Options {
        data_dir: Some(data.clone()),
        ..Options::default()
    });
    let (s, body) = server.get("/api/v1/incidents", None).await;
    assert_eq!(s, 200, "{body}");
    let incidents: serde_json::Value = serde_json::from_str(&body).expect("json");
    let list = incidents["incidents"].as_array().expect("incidents");
    let incident = list
        .iter()
        .find(|i| {
            i["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "payment"))
        })
        .unwrap_or_else(|| panic!("{body}"));
    let onset = incident["onset"].as_str().unwrap_or_default();
    assert!(onset.starts_with("2025-12-01T09:20:0"), "{incident}");
    let id = incident["id"].as_str().expect("id");
    let (s, detail) = server.get(&format!("/api/v1/incidents/{id}"), None).await;
    assert_eq!(s, 200, "{detail}");
    assert!(detail.contains("error_ratio"), "{detail}");
}
