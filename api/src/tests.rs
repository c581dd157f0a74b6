use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use causeway_model::{Lease, QueuedBatch, ServiceCount, TenantId, TraceBatch, Transport};
use causeway_processor::{ProcessorStage, QueryHandle, SqlConfig, SqlEngine};
use causeway_server::config::ApiKeyConfig;
use causeway_server::{Authenticator, Gate, Limits, LimitsConfig};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sha2::Digest;
use tokio::sync::{Semaphore, mpsc};
use tower::ServiceExt;

use super::{ApiState, Readiness, router};

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn key(tenant: &str, key: &str) -> ApiKeyConfig {
    ApiKeyConfig {
        tenant: TenantId::new(tenant).expect("tenant"),
        key_sha256: sha2::Sha256::digest(key.as_bytes()).into(),
    }
}

fn batch(tenant: &str, service: &str, spans: u64, errors: u64) -> QueuedBatch {
    let sem = Arc::new(Semaphore::new(1));
    QueuedBatch {
        batch: TraceBatch {
            tenant: TenantId::new(tenant).expect("tenant"),
            transport: Transport::Grpc,
            payload: Bytes::new(),
            spans,
            services: vec![ServiceCount {
                name: service.into(),
                spans,
                errors,
                first_ns: 1_700_000_000_000_000_000,
                last_ns: 1_700_000_001_500_000_000,
            }],
        },
        lease: Lease::new(sem.try_acquire_owned().expect("permit"), None),
        logged: None,
    }
}

/// A signal hub over a fresh store, with a GitHub webhook for acme whose
/// secret is in a file (never inline in the config).
fn hub(dir: &std::path::Path) -> causeway_connectors::SignalHub {
    std::fs::create_dir_all(dir).expect("dir");
    let secret = dir.join("github-webhook-secret");
    std::fs::write(&secret, "It's a Secret to Everybody\n").expect("secret");
    let config: causeway_connectors::config::ConnectorsConfig =
        serde_json::from_value(serde_json::json!({
            "sources": [{
                "name": "github", "tenant": "acme", "type": "github",
                "token": {"env": "CAUSEWAY_TEST_UNSET"}, "repositories": ["acme/checkout-service"],
                "webhook_secret": {"file": secret}
            }]
        }))
        .expect("config");
    causeway_connectors::SignalHub::open(&dir.join("signals.duckdb"), config).expect("hub")
}

pub(crate) struct Api {
    pub(crate) router: axum::Router,
    data: mpsc::Sender<QueuedBatch>,
    ready: Arc<Readiness>,
    rca: Arc<causeway_correlator::RcaService>,
    pub(crate) audit: Arc<super::audit::AuditLog>,
}

fn api() -> Api {
    api_with(&LimitsConfig::default())
}

pub(crate) fn api_with(limits: &LimitsConfig) -> Api {
    let (data, data_rx) = mpsc::channel(16);
    let (qtx, qrx) = mpsc::channel(4);
    let dir = std::env::temp_dir().join(format!(
        "causeway-api-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let persist = causeway_processor::persist::Persistence::open(
        causeway_processor::config::StorageSettings::new(dir.clone()),
    )
    .expect("persistence");
    let stage = ProcessorStage::new(data_rx, qrx, Default::default(), persist).expect("stage");
    tokio::spawn(stage.run());
    let mut registry = Registry::default();
    let family = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("demo", "per-tenant demo counter", family.clone());
    family
        .get_or_create(&vec![("tenant".into(), "acme".into())])
        .inc();
    family
        .get_or_create(&vec![("tenant".into(), "globex".into())])
        .inc();
    family
        .get_or_create(&vec![("kind".into(), "process".into())])
        .inc();
    let ready = Arc::new(Readiness::default());
    let rca = Arc::new(causeway_correlator::RcaService::new(
        QueryHandle::new(qtx.clone()),
        Box::new(causeway_store::DuckDbReports::in_memory().expect("reports")),
        None,
        Default::default(),
    ));
    let audit = Arc::new(super::audit::AuditLog::new(
        Box::new(causeway_store::DuckDbAudit::in_memory().expect("audit")),
        std::time::Duration::from_secs(3600),
    ));
    tokio::spawn(Arc::clone(&audit).run(tokio_util::sync::CancellationToken::new()));
    let state = Arc::new(ApiState {
        gate: Gate::new(
            Arc::new(Authenticator::new(&[
                key("acme", "ka"),
                key("globex", "kg"),
            ])),
            Arc::new(Limits::new(limits)),
            Arc::clone(&audit) as Arc<dyn causeway_model::AuditSink>,
        ),
        audit: Some(Arc::clone(&audit)),
        processor: QueryHandle::new(qtx.clone()),
        sql: Arc::new(SqlEngine::start(QueryHandle::new(qtx), SqlConfig::default()).expect("sql")),
        registry: Arc::new(registry),
        ready: Arc::clone(&ready),
        signals: Some(Arc::new(hub(&dir))),
        rca: Some(Arc::clone(&rca)),
        sessions: Default::default(),
        purges: Vec::new(),
        secure_cookies: false,
        known: Arc::new(causeway_connectors::NoServices),
    });
    Api {
        router: router(state),
        data,
        ready,
        rca,
        audit,
    }
}

async fn get(api: &Api, path: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = api
        .router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn services_are_per_tenant_and_include_what_was_just_queued() {
    let api = api();
    api.data
        .send(batch("acme", "checkout", 10, 2))
        .await
        .expect("send");
    api.data
        .send(batch("globex", "billing", 5, 0))
        .await
        .expect("send");
    let (status, body) = get(&api, "/api/v1/services", Some("ka")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"services": [{
            "name": "checkout", "spans": 10, "errors": 2,
            "first_seen": "2023-11-14T22:13:20.000Z", "last_seen": "2023-11-14T22:13:21.500Z"
        }]})
    );
    let (_, body) = get(&api, "/api/v1/services", Some("kg")).await;
    assert!(
        body.contains("billing") && !body.contains("checkout"),
        "{body}"
    );
}

#[tokio::test]
async fn data_endpoints_need_a_key_health_does_not() {
    let api = api();
    for path in ["/api/v1/services", "/metrics"] {
        let (status, body) = get(&api, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body.contains("missing credentials"), "{body}");
        assert_eq!(
            get(&api, path, Some("wrong")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(get(&api, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(
        get(&api, "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    api.ready.set(true);
    assert_eq!(get(&api, "/readyz", None).await.0, StatusCode::OK);
    let (status, body) = get(&api, "/api/v1/nope", Some("ka")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("error"));
}

#[tokio::test]
async fn metrics_show_the_callers_tenant_and_process_series_only() {
    let api = api();
    let (status, body) = get(&api, "/metrics", Some("ka")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("demo_total{tenant=\"acme\"} 1"), "{body}");
    assert!(body.contains("demo_total{kind=\"process\"} 1"), "{body}");
    assert!(!body.contains("globex"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn a_stopped_processor_is_503_not_a_hang() {
    let (_data, data_rx) = mpsc::channel::<QueuedBatch>(1);
    let (qtx, qrx) = mpsc::channel(1);
    drop((data_rx, qrx));
    let state = Arc::new(ApiState {
        gate: Gate::open(Arc::new(Authenticator::new(&[]))),
        audit: None,
        processor: QueryHandle::new(qtx.clone()),
        sql: Arc::new(SqlEngine::start(QueryHandle::new(qtx), SqlConfig::default()).expect("sql")),
        registry: Arc::new(Registry::default()),
        ready: Arc::new(Readiness::default()),
        signals: None,
        rca: None,
        sessions: Default::default(),
        purges: Vec::new(),
        secure_cookies: false,
        known: Arc::new(causeway_connectors::NoServices),
    });
    let resp = router(state)
        .oneshot(
            Request::get("/api/v1/services")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn without_api_keys_the_dashboard_session_is_the_default_tenant_and_with_keys_it_is_not() {
    let state = |keys: &[ApiKeyConfig]| {
        let (qtx, _qrx) = mpsc::channel(1);
        Arc::new(ApiState {
            gate: Gate::open(Arc::new(Authenticator::new(keys))),
            audit: None,
            processor: QueryHandle::new(qtx.clone()),
            sql: Arc::new(
                SqlEngine::start(QueryHandle::new(qtx), SqlConfig::default()).expect("sql"),
            ),
            registry: Arc::new(Registry::default()),
            ready: Arc::new(Readiness::default()),
            signals: None,
            rca: None,
            sessions: Default::default(),
            purges: Vec::new(),
            secure_cookies: false,
            known: Arc::new(causeway_connectors::NoServices),
        })
    };
    let session = |state| async move {
        let resp = router(state)
            .oneshot(
                Request::get("/api/v1/session")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, body) = session(state(&[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["tenant"], "default");
    assert_eq!(v["keyless"], true);
    let (status, body) = session(state(&[key("acme", "ka")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn red_and_graph_answer_for_the_callers_tenant_with_steps() {
    use causeway_benches::{Workload, WorkloadConfig};
    use prost::Message;
    let api = api();
    let req = Workload::new(WorkloadConfig::default()).batch(400);
    let n: u64 = causeway_benches::span_count(&req);
    let mut b = batch("acme", "checkout", n, 0);
    b.batch.payload = Bytes::from(req.encode_to_vec());
    api.data.send(b).await.expect("send");
    let start_ms = WorkloadConfig::default().start_ns / 1_000_000;
    let range = format!("from={}&to={}", start_ms - 60_000, start_ms + 600_000);
    let (status, body) = get(&api, &format!("/api/v1/red?{range}"), Some("ka")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let series = v["series"].as_array().expect("series");
    let calls: u64 = series
        .iter()
        .map(|s| s["calls"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(calls, n);
    let s0 = &series[0];
    for f in [
        "service",
        "operation",
        "kind",
        "calls",
        "errors",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
    ] {
        assert!(!s0[f].is_null(), "{f} in {s0}");
    }
    assert!(s0.get("points").is_none());

    let (_, body) = get(
        &api,
        &format!("/api/v1/red?service=frontend&step=60s&{range}"),
        Some("ka"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let series = v["series"].as_array().expect("series");
    assert!(!series.is_empty() && series.iter().all(|s| s["service"] == "frontend"));
    let points = series[0]["points"].as_array().expect("points");
    let point_calls: u64 = points
        .iter()
        .map(|p| p["calls"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(point_calls, series[0]["calls"].as_u64().unwrap_or(0));
    assert!(points[0]["t"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (_, body) = get(&api, &format!("/api/v1/graph?{range}"), Some("ka")).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let edges = v["edges"].as_array().expect("edges");
    assert!(
        edges.iter().any(|e| e["client"] == "frontend"
            && e["server"] == "checkout"
            && e["connection_type"] == ""),
        "{edges:?}"
    );
    assert!(
        edges.iter().any(|e| e["connection_type"] == "database"),
        "{edges:?}"
    );

    // Another tenant sees nothing; bad parameters are 400.
    let (_, body) = get(&api, &format!("/api/v1/red?{range}"), Some("kg")).await;
    assert_eq!(body, r#"{"series":[]}"#);
    assert_eq!(
        get(&api, "/api/v1/red?from=yesterday", Some("ka")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&api, &format!("/api/v1/red?step=1ms&{range}"), Some("ka"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&api, "/api/v1/graph", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn post(
    api: &Api,
    path: &str,
    key: Option<&str>,
    accept: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = api
        .router
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, media, body.to_vec())
}

async fn send_workload(api: &Api, tenant: &str, spans: usize) -> u64 {
    use causeway_benches::{Workload, WorkloadConfig};
    use prost::Message;
    let req = Workload::new(WorkloadConfig::default()).batch(spans);
    let n: u64 = causeway_benches::span_count(&req);
    let mut b = batch(tenant, "frontend", n, 0);
    b.batch.payload = Bytes::from(req.encode_to_vec());
    api.data.send(b).await.expect("send");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_json_and_arrow_over_the_callers_tenant_only() {
    let api = api();
    let n = send_workload(&api, "acme", 300).await;
    let count = r#"{"sql": "SELECT count(*) AS n FROM spans"}"#;
    let (status, media, body) = post(&api, "/api/v1/query", Some("ka"), None, count).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(media.as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["rows"][0]["n"], n);
    assert_eq!(v["columns"][0]["name"], "n");
    // globex sees its own (empty) spans, not acme's.
    let (_, _, body) = post(&api, "/api/v1/query", Some("kg"), None, count).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["rows"][0]["n"], 0);
    // Arrow IPC when asked.
    let (status, media, body) = post(
        &api,
        "/api/v1/query",
        Some("ka"),
        Some("application/vnd.apache.arrow.stream"),
        r#"{"sql": "SELECT service, sum(calls) AS calls FROM red WHERE window_seconds = 10 GROUP BY service"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        media.as_deref(),
        Some("application/vnd.apache.arrow.stream")
    );
    assert!(
        body.starts_with(&[0xff, 0xff, 0xff, 0xff]),
        "IPC continuation marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_are_specific_and_authenticated() {
    let api = api();
    let (status, _, _) = post(&api, "/api/v1/query", None, None, r#"{"sql":"SELECT 1"}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (body, want) in [
        (r#"{"sql":"DROP TABLE spans"}"#, "DDL"),
        (r#"{"sql":"SELECT nope FROM spans"}"#, "nope"),
        (r#"{"query":"SELECT 1"}"#, "sql"),
        ("not json", "JSON"),
    ] {
        let (status, _, resp) = post(&api, "/api/v1/query", Some("ka"), None, body).await;
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(text.contains(want), "{body}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_span_and_service_graph_series_in_collector_names() {
    let api = api();
    let n = send_workload(&api, "acme", 300).await;
    let (status, body) = get(&api, "/metrics", Some("ka")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("# EOF\n"), "{body}");
    let calls: u64 = body
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("value")
        })
        .sum();
    assert_eq!(calls, n);
    for needle in [
        "# TYPE traces_span_metrics_duration_seconds histogram",
        "traces_span_metrics_duration_seconds_bucket{service_name=\"frontend\"",
        "span_kind=\"SPAN_KIND_SERVER\"",
        "le=\"+Inf\"",
        "traces_service_graph_request_total{client=\"frontend\",server=\"checkout\",connection_type=\"\"}",
        "traces_service_graph_request_failed_total{",
        "traces_service_graph_request_server_seconds_bucket{",
        "traces_service_graph_request_client_seconds_count{",
    ] {
        assert!(body.contains(needle), "{needle} missing in:\n{body}");
    }
    // Another tenant's scrape has none of acme's series.
    let (_, other) = get(&api, "/metrics", Some("kg")).await;
    assert!(!other.contains("service_name=\"frontend\""), "{other}");
}

async fn delete(api: &Api, path: &str, key: &str) -> StatusCode {
    api.router
        .clone()
        .oneshot(
            Request::delete(path)
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deletes_its_own_data_and_only_its_own() {
    let api = api();
    send_workload(&api, "acme", 300).await;
    let g = send_workload(&api, "globex", 200).await;
    let count = r#"{"sql": "SELECT count(*) AS n FROM spans"}"#;
    assert_eq!(
        delete(&api, "/api/v1/data", "ka").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        delete(&api, "/api/v1/data?confirm=globex", "ka").await,
        StatusCode::BAD_REQUEST,
        "a tenant cannot name another"
    );
    assert_eq!(
        delete(&api, "/api/v1/data?confirm=acme", "ka").await,
        StatusCode::NO_CONTENT
    );
    let (_, _, body) = post(&api, "/api/v1/query", Some("ka"), None, count).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["rows"][0]["n"], 0);
    let (_, body) = get(&api, "/api/v1/services", Some("ka")).await;
    assert!(body.contains("\"services\":[]"), "{body}");
    let (_, body) = get(&api, "/api/v1/red?from=0&to=4102444800000", Some("ka")).await;
    assert!(body.contains("\"series\":[]"), "{body}");
    let (_, _, body) = post(&api, "/api/v1/query", Some("kg"), None, count).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["rows"][0]["n"], g, "globex is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_and_incidents_are_authenticated_tenant_scoped_and_404_when_unknown() {
    let api = api();
    send_workload(&api, "acme", 300).await;
    let (status, body) = get(&api, "/api/v1/incidents", Some("ka")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body, r#"{"incidents":[],"next_cursor":null}"#,
        "healthy traffic has no incident"
    );
    let (status, body) = get(
        &api,
        "/api/v1/anomalies?from=0&to=4102444800000",
        Some("ka"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"anomalies":[],"next_cursor":null}"#);
    assert_eq!(
        get(&api, "/api/v1/incidents", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&api, "/api/v1/anomalies", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    for id in ["1", "not-a-number", "18446744073709551616"] {
        let (status, _) = get(&api, &format!("/api/v1/incidents/{id}"), Some("ka")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
    let (status, body) = get(&api, "/api/v1/anomalies?from=nope", Some("ka")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn post_with(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = api
        .router
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn webhooks_are_verified_and_signals_are_tenant_scoped() {
    use causeway_connectors::Secret;
    use causeway_connectors::webhook::hmac_hex;
    let api = api();
    let push = serde_json::json!({
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/checkout-service"},
        "commits": [{"id": "6dcb09b5", "message": "Raise checkout timeout", "timestamp": "2024-05-01T10:00:00Z",
                     "url": "https://github.com/acme/checkout-service/commit/6dcb09b5",
                     "author": {"name": "Mona", "username": "octocat"}, "added": [], "removed": [], "modified": ["src/pay.rs"]}]
    })
    .to_string();
    let good = format!(
        "sha256={}",
        hmac_hex(
            &Secret::new("It's a Secret to Everybody"),
            &[push.as_bytes()]
        )
    );
    let bad = format!(
        "sha256={}",
        hmac_hex(&Secret::new("guess"), &[push.as_bytes()])
    );
    let hook = "/api/v1/webhooks/acme/github";
    // A wrong signature, a missing one, an unknown source, another tenant's
    // path: nothing stored.
    let (status, body) = post_with(
        &api,
        hook,
        &[("x-github-event", "push"), ("x-hub-signature-256", &bad)],
        &push,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        !body.contains("Secret to Everybody"),
        "no secret in answers: {body}"
    );
    let (status, _) = post_with(&api, hook, &[("x-github-event", "push")], &push).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for other in [
        "/api/v1/webhooks/acme/gitlab",
        "/api/v1/webhooks/globex/github",
        "/api/v1/webhooks/bad%20tenant/github",
    ] {
        let (status, _) = post_with(
            &api,
            other,
            &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
            &push,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{other}");
    }
    let (_, body) = get(&api, "/api/v1/signals", Some("ka")).await;
    assert_eq!(body, r#"{"next_cursor":null,"signals":[]}"#);
    // The right signature stores the commit.
    let (status, body) = post_with(
        &api,
        hook,
        &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
        &push,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::ACCEPTED, r#"{"stored":1}"#)
    );
    let (status, body) = get(&api, "/api/v1/signals?kind=commit", Some("ka")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["signals"][0]["id"], "6dcb09b5");
    assert_eq!(v["signals"][0]["changed_paths"][0], "src/pay.rs");
    // Another tenant sees none of it; no key, no answer.
    let (_, body) = get(&api, "/api/v1/signals", Some("kg")).await;
    assert_eq!(body, r#"{"next_cursor":null,"signals":[]}"#);
    let (status, _) = get(&api, "/api/v1/signals", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&api, "/api/v1/signals?kind=commits", Some("ka")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A deploy event, authenticated by the tenant's API key.
    let deploy = r#"{"service":"checkout","version":"v2.3.1","commit":"6dcb09b5","time":"2024-05-01T10:05:00Z"}"#;
    let (status, _) = post_with(&api, "/api/v1/events/deploy", &[], deploy).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post_with(
        &api,
        "/api/v1/events/deploy",
        &[("authorization", "Bearer kg")],
        deploy,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = post_with(
        &api,
        "/api/v1/events/deploy",
        &[("authorization", "Bearer kg")],
        r#"{"service":"checkout"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, body) = get(&api, "/api/v1/signals?kind=deploy&service=checkout&from=2024-05-01T10:00:00Z&to=2024-05-01T10:10:00Z", Some("kg")).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["signals"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(v["signals"][0]["services"][0], "checkout");
    let (_, body) = get(&api, "/api/v1/signals?kind=deploy", Some("ka")).await;
    assert_eq!(
        body, r#"{"next_cursor":null,"signals":[]}"#,
        "acme has no deploys"
    );
}

fn sample_report(id: u64, tenant: &str) -> causeway_model::RcaReport {
    use causeway_model::rca::{CauseKind, Evidence, Hypothesis, RcaReport};
    RcaReport {
        id,
        tenant: tenant.into(),
        incident: id,
        window_start_ns: 1_700_000_000_000_000_000,
        window_end_ns: 1_700_000_180_000_000_000,
        reference_spans: 1000,
        reference_seconds: 1800,
        summary: "Most likely checkout, caused by a deploy.".into(),
        narrative: "The incident began ...".into(),
        narrative_by: "template".into(),
        hypotheses: vec![Hypothesis {
            rank: 1,
            service: "checkout".into(),
            operation: Some("PlaceOrder".into()),
            cause: CauseKind::CodeError,
            confidence: 0.9,
            score: 7.5,
            change: None,
            evidence: vec![Evidence::ErrorOrigin {
                service: "checkout".into(),
                operation: "PlaceOrder".into(),
                observed: 40.0,
                expected: 0.5,
                score: 7.5,
                trace_ids: vec!["0af7651916cd43dd8448eb211c80319c".into()],
            }],
            precedents: Vec::new(),
        }],
        impacted_services: vec!["checkout".into(), "frontend".into()],
        reports: Vec::new(),
        timeline: Vec::new(),
        next_steps: vec!["Open the example traces.".into()],
        feedback: Vec::new(),
        computed_ns: 1_700_000_200_000_000_000,
        incident_updated_ns: 0,
    }
}

#[tokio::test]
async fn rca_reports_are_tenant_scoped_render_as_markdown_and_take_feedback() {
    let api = api();
    let acme = TenantId::new("acme").expect("tenant");
    api.rca
        .put(&acme, sample_report(7, "acme"))
        .await
        .expect("put");
    let range = "from=2023-11-14T00:00:00Z&to=2023-11-16T00:00:00Z";

    // Unauthenticated: refused everywhere.
    for path in ["/api/v1/rca", "/api/v1/rca/7"] {
        assert_eq!(
            get(&api, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let (status, body) = get(&api, &format!("/api/v1/rca?{range}"), Some("ka")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["reports"][0]["id"], "7");
    assert_eq!(v["reports"][0]["hypotheses"][0]["service"], "checkout");
    assert_eq!(v["reports"][0]["hypotheses"][0]["cause"], "code_error");
    assert_eq!(v["reports"][0]["window_start"], "2023-11-14T22:13:20.000Z");
    // Another tenant sees nothing, and its id reads as unknown (404).
    let (_, body) = get(&api, &format!("/api/v1/rca?{range}"), Some("kg")).await;
    assert_eq!(body, r#"{"next_cursor":null,"reports":[]}"#);
    assert_eq!(
        get(&api, "/api/v1/rca/7", Some("kg")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&api, "/api/v1/rca/8", Some("ka")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&api, "/api/v1/rca/x", Some("ka")).await.0,
        StatusCode::NOT_FOUND
    );
    // A bad time is the caller's error.
    assert_eq!(
        get(&api, "/api/v1/rca?from=yesterday", Some("ka")).await.0,
        StatusCode::BAD_REQUEST
    );

    // Markdown on request.
    let req = Request::get("/api/v1/rca/7")
        .header("authorization", "Bearer ka")
        .header("accept", "text/markdown")
        .body(Body::empty())
        .expect("request");
    let resp = api.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/markdown"))
    );
    let md = resp.into_body().collect().await.expect("body").to_bytes();
    let md = String::from_utf8_lossy(&md);
    assert!(md.starts_with("# RCA for incident 7"), "{md}");
    assert!(
        md.contains("**checkout**") && md.contains("0af7651916cd43dd8448eb211c80319c"),
        "{md}"
    );

    // Feedback: kept on the report; bad rank refused; other tenants 404.
    let fb = r#"{"rank":1,"confirmed":true,"comment":"rolled back, fixed","by":"sre"}"#;
    let (status, _, body) = post(&api, "/api/v1/rca/7/feedback", Some("ka"), None, fb).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = post(
        &api,
        "/api/v1/rca/7/feedback",
        Some("ka"),
        None,
        r#"{"rank":9,"confirmed":false}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = post(&api, "/api/v1/rca/7/feedback", Some("kg"), None, fb).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = post(&api, "/api/v1/rca/7/feedback", Some("ka"), None, "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = get(&api, "/api/v1/rca/7", Some("ka")).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["feedback"][0]["service"], "checkout");
    assert_eq!(v["feedback"][0]["confirmed"], true);
    assert_eq!(v["feedback"][0]["comment"], "rolled back, fixed");
}

/// A request with optional cookie, CSRF token and key; status, headers, body.
async fn call(
    api: &Api,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let resp = api
        .router
        .clone()
        .oneshot(
            req.body(Body::from(body.unwrap_or("").to_owned()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_data_endpoint_refuses_unauthenticated_calls_with_a_json_error() {
    let api = api();
    let endpoints = [
        ("GET", "/api/v1/services"),
        ("GET", "/api/v1/red"),
        ("GET", "/api/v1/graph"),
        ("POST", "/api/v1/query"),
        ("GET", "/api/v1/anomalies"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/incidents/1"),
        ("GET", "/api/v1/rca"),
        ("GET", "/api/v1/rca/1"),
        ("POST", "/api/v1/rca/1/feedback"),
        ("DELETE", "/api/v1/data?confirm=acme"),
        ("GET", "/api/v1/signals"),
        ("POST", "/api/v1/events/deploy"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/traces/0af7651916cd43dd8448eb211c80319c"),
        ("GET", "/api/v1/session"),
        ("DELETE", "/api/v1/session"),
        ("GET", "/metrics"),
    ];
    for (method, path) in endpoints {
        let (status, headers, body) = call(&api, method, path, None, None, Some("{}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            headers["content-type"], "application/json",
            "{method} {path}"
        );
        assert!(body.contains("\"error\""), "{method} {path}: {body}");
        // A cookie that is not a session is no better.
        let (status, _, _) = call(
            &api,
            method,
            path,
            Some("causeway_session=forged"),
            Some("x"),
            Some("{}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} forged");
    }
    // Public: health, the dashboard, the API description.
    for path in [
        "/healthz",
        "/",
        "/ui/app.js",
        "/ui/app.css",
        "/api/v1/openapi.json",
    ] {
        let (status, _, _) = call(&api, "GET", path, None, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_session_cookie_signs_in_and_state_changes_need_the_csrf_token() {
    let api = api();
    let acme = TenantId::new("acme").expect("tenant");
    api.rca
        .put(&acme, sample_report(7, "acme"))
        .await
        .expect("put");
    let (status, _, _) = call(
        &api,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(r#"{"api_key":"wrong"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = call(&api, "POST", "/api/v1/session", None, None, Some("{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, headers, body) = call(
        &api,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(r#"{"api_key":"ka"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set = headers["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_owned();
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["tenant"], "acme");
    let csrf = v["csrf_token"].as_str().expect("token").to_owned();

    // Reads work with the cookie alone, and only for its tenant.
    let (status, _, body) = call(&api, "GET", "/api/v1/rca/7", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = call(&api, "GET", "/api/v1/session", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&csrf));

    // A state change without the token (a cross-site form) is refused.
    let feedback = r#"{"rank":1,"confirmed":true}"#;
    let path = "/api/v1/rca/7/feedback";
    let (status, _, _) = call(&api, "POST", path, Some(&cookie), None, Some(feedback)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &api,
        "POST",
        path,
        Some(&cookie),
        Some("0000"),
        Some(feedback),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = call(
        &api,
        "POST",
        path,
        Some(&cookie),
        Some(&csrf),
        Some(feedback),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Signing out ends the session.
    let (status, _, _) = call(&api, "DELETE", "/api/v1/session", Some(&cookie), None, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "sign-out is a state change too"
    );
    let (status, headers, _) = call(
        &api,
        "DELETE",
        "/api/v1/session",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers["set-cookie"]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let (status, _, _) = call(&api, "GET", "/api/v1/rca/7", Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lists_page_with_cursors_and_bad_parameters_get_json_errors() {
    let api = api();
    let acme = TenantId::new("acme").expect("tenant");
    for id in 1..=5 {
        let mut r = sample_report(id, "acme");
        r.window_start_ns += i64::try_from(id).expect("small") * 1_000_000_000;
        api.rca.put(&acme, r).await.expect("put");
    }
    let range = "from=2023-11-14T00:00:00Z&to=2023-11-16T00:00:00Z";
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        assert!(page < 5, "paging does not end");
        let path = format!("/api/v1/rca?{range}&limit=2&cursor={cursor}");
        let (status, body) = get(&api, &path, Some("ka")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        for r in v["reports"].as_array().expect("reports") {
            seen.push(r["id"].as_str().expect("id").to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["5", "4", "3", "2", "1"],
        "newest first, each once"
    );

    for path in [
        "/api/v1/rca?limit=0",
        "/api/v1/rca?limit=5000",
        "/api/v1/rca?cursor=nonsense",
        "/api/v1/incidents?limit=abc",
        "/api/v1/anomalies?from=-99999999999999",
        "/api/v1/red?step=0s",
        "/api/v1/signals?limit=-1",
    ] {
        let (status, body) = get(&api, path, Some("ka")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.starts_with("{\"error\""), "{path}: {body}");
    }
    let (status, body) = get(&api, "/api/v1/incidents/%FF", Some("ka")).await;
    assert!(status.is_client_error(), "{status}");
    assert!(body.starts_with("{\"error\""), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_is_served_to_its_tenant_only() {
    let api = api();
    send_workload(&api, "acme", 200).await;
    let (status, _, body) = post(
        &api,
        "/api/v1/query",
        Some("ka"),
        None,
        r#"{"sql": "SELECT encode(trace_id, 'hex') AS t, count(*) AS n FROM spans GROUP BY 1 ORDER BY 2 DESC LIMIT 1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let trace = v["rows"][0]["t"].as_str().expect("a trace").to_owned();
    let n = v["rows"][0]["n"].as_u64().expect("count");

    let (status, body) = get(&api, &format!("/api/v1/traces/{trace}"), Some("ka")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).expect("json");
    let spans = t["spans"].as_array().expect("spans");
    assert_eq!(spans.len() as u64, n);
    let roots = spans.iter().filter(|s| s["parent_span_id"] == "").count();
    assert_eq!(roots, 1, "one root: {body}");
    assert!(spans.iter().all(|s| s["start_unix_nano"].as_str().is_some()
        && s["duration_ms"].as_f64().is_some()
        && s["span_id"].as_str().is_some_and(|x| x.len() == 16)));

    let (status, _) = get(&api, &format!("/api/v1/traces/{trace}"), Some("kg")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's trace");
    let (status, _) = get(&api, "/api/v1/traces/zz", Some("ka")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
