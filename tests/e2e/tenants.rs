//! Tenant isolation: a key sees only its own tenant's services and metrics.

use crate::harness::{Server, grpc, key_hash, request_for, spans_in as count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_across_ingest_api_and_metrics() {
    let extra = format!(
        "auth:\n  api_keys:\n    - tenant: acme\n      key_sha256: {}\n    - tenant: globex\n      key_sha256: {}\n",
        key_hash("acme-secret"),
        key_hash("globex-secret")
    );
    let server = Server::start(&extra);
    let a = request_for("acme-checkout", 200);
    let g = request_for("globex-billing", 100);
    grpc::export(server.grpc, a.clone(), Some("acme-secret"), false)
        .await
        .expect("acme export");
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .header("x-api-key", "globex-secret")
        .body(g.clone())
        .send()
        .await
        .expect("globex export");
    assert_eq!(resp.status(), 200);

    let acme = server.services(Some("acme-secret")).await;
    let globex = server.services(Some("globex-secret")).await;
    assert_eq!(acme.keys().collect::<Vec<_>>(), vec!["acme-checkout"]);
    assert_eq!(acme["acme-checkout"].0, count(&a));
    assert_eq!(globex.keys().collect::<Vec<_>>(), vec!["globex-billing"]);
    assert_eq!(globex["globex-billing"].0, count(&g));

    // No key, a wrong key: 401, on the API as on ingest.
    assert_eq!(server.get("/api/v1/services", None).await.0, 401);
    assert_eq!(server.get("/api/v1/services", Some("nope")).await.0, 401);
    assert_eq!(server.get("/metrics", None).await.0, 401);
    let err = grpc::export(server.grpc, a.clone(), None, false)
        .await
        .expect_err("no key");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = grpc::export(server.grpc, a, Some("globex-secretX"), false)
        .await
        .expect_err("bad key");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Metrics: each tenant sees its own series only.
    let (status, metrics) = server.get("/metrics", Some("acme-secret")).await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .contains("causeway_receiver_accepted_spans_total{transport=\"grpc\",tenant=\"acme\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("globex"), "{metrics}");
    // The two refused exports belong to no tenant, and every scrape shows
    // them (an operator must see a client with a stale key).
    let unidentified = |m: &str| -> u64 {
        m.lines()
            .filter(|l| {
                l.starts_with(
                    "causeway_receiver_refused_unidentified_requests_total{transport=\"grpc\"",
                )
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(unidentified(&metrics), 2, "{metrics}");
    let (_, theirs) = server.get("/metrics", Some("globex-secret")).await;
    assert_eq!(unidentified(&theirs), 2, "{theirs}");
    // Health endpoints carry no data and need no key.
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/readyz", None).await.0, 200);
}
