//! The gate on the API: rate limits per client address and tenant, the
//! failed-sign-in block, SQL slots, and the audit trail they leave.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use causeway_server::{ClientAddr, LimitsConfig, limits::Rate};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::tests::{Api, api_with};

async fn send(
    api: &Api,
    from: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let mut req = req
        .body(Body::from(body.unwrap_or("").to_owned()))
        .expect("request");
    let addr: SocketAddr = format!("{from}:40000").parse().expect("addr");
    req.extensions_mut().insert(ClientAddr(addr));
    let resp = api.router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The audit entries of `key`'s tenant, after the writer caught up.
async fn audit_of(api: &Api, from: &str, key: &str) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let (status, _, body) = send(api, from, "GET", "/api/v1/audit", Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        if !entries.is_empty() {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn a_burst_of_bad_keys_from_one_address_is_blocked_while_others_keep_working() {
    let mut limits = LimitsConfig::default();
    limits.auth_failures.free = 5;
    let api = api_with(&limits);
    let attacker = "203.0.113.9";
    let mut statuses = Vec::new();
    for i in 0..20 {
        let guess = format!("guess-{i}");
        let (status, headers, _) = send(
            &api,
            attacker,
            "GET",
            "/api/v1/services",
            Some(&guess),
            None,
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after: u64 = headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!(after >= 1, "Retry-After {after}");
        }
        statuses.push(status);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[6..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Even the right key from the blocked address waits: a guessing loop
    // must not learn that a guess was right.
    let (status, _, _) = send(&api, attacker, "GET", "/api/v1/services", Some("ka"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // So does the sign-in form.
    let (status, _, _) = send(
        &api,
        attacker,
        "POST",
        "/api/v1/session",
        None,
        Some(r#"{"api_key":"ka"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another address, with either tenant's key, is served.
    for key in ["ka", "kg"] {
        let (status, _, body) = send(
            &api,
            "198.51.100.7",
            "GET",
            "/api/v1/services",
            Some(key),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn failed_sign_ins_are_blocked_and_audited_without_the_key() {
    let mut limits = LimitsConfig::default();
    limits.auth_failures.free = 2;
    let api = api_with(&limits);
    let from = "192.0.2.44";
    let secret_guess = "guess-0123456789-SECRET";
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let body = format!(r#"{{"api_key":"{secret_guess}"}}"#);
        let (status, _, _) = send(&api, from, "POST", "/api/v1/session", None, Some(&body)).await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Failures name no tenant: they are in the operator's part of the
    // trail, with the address and the key's fingerprint, never the key.
    let mut system = Vec::new();
    for _ in 0..100 {
        system = api.audit.page(None, None, 10).expect("system trail");
        if system.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(system.len(), 3, "{system:?}");
    for e in &system {
        assert_eq!(e.event.action, "auth.api");
        assert_eq!(e.event.outcome, causeway_model::AuditOutcome::Failure);
        assert_eq!(e.event.actor.client, Some(from.parse().expect("ip")));
        let fp = e
            .event
            .actor
            .key_fingerprint
            .as_deref()
            .expect("fingerprint");
        assert!(causeway_server::key_digest_hex(secret_guess).starts_with(fp));
        let all = format!("{e:?}");
        assert!(!all.contains(secret_guess), "{all}");
    }

    // A successful sign-in from elsewhere is in the tenant's own trail.
    let (status, _, _) = send(
        &api,
        "192.0.2.45",
        "POST",
        "/api/v1/session",
        None,
        Some(r#"{"api_key":"ka"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let entries = audit_of(&api, "192.0.2.45", "ka").await;
    assert_eq!(entries[0]["action"], "session.create", "{entries:?}");
    assert_eq!(entries[0]["outcome"], "success");
    assert_eq!(entries[0]["actor"]["client"], "192.0.2.45");
    // globex sees none of acme's entries.
    let (_, _, body) = send(&api, "192.0.2.45", "GET", "/api/v1/audit", Some("kg"), None).await;
    assert!(!body.contains("session.create"), "{body}");
}

#[tokio::test]
async fn the_api_limits_each_address_and_each_tenant() {
    let mut limits = LimitsConfig::default();
    limits.api.per_client = Rate::new(1, 3);
    limits.api.per_tenant = Rate::new(1, 5);
    let api = api_with(&limits);
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (s, _, _) = send(
            &api,
            "10.1.0.1",
            "GET",
            "/api/v1/services",
            Some("ka"),
            None,
        )
        .await;
        codes.push(s);
    }
    assert_eq!(codes[..3], [StatusCode::OK; 3]);
    assert_eq!(codes[3], StatusCode::TOO_MANY_REQUESTS);
    // A second address of the same tenant has its own address budget but
    // shares the tenant's: 3 spent, 2 left.
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (s, _, _) = send(
            &api,
            "10.1.0.2",
            "GET",
            "/api/v1/services",
            Some("ka"),
            None,
        )
        .await;
        codes.push(s);
    }
    assert_eq!(
        codes,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another tenant is untouched.
    let (s, _, body) = send(
        &api,
        "10.1.0.3",
        "GET",
        "/api/v1/services",
        Some("kg"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn sql_statements_are_audited_with_their_text_redacted() {
    let api = api_with(&LimitsConfig::default());
    let sql = r#"{"sql":"SELECT count(*) AS n FROM spans WHERE 'ops@example.com' <> ''"}"#;
    let (status, _, body) = send(
        &api,
        "10.2.0.1",
        "POST",
        "/api/v1/query",
        Some("ka"),
        Some(sql),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = audit_of(&api, "10.2.0.1", "ka").await;
    let e = &entries[0];
    assert_eq!(e["action"], "sql.query");
    let detail = e["detail"].as_str().expect("detail");
    assert!(detail.contains("rows=1"), "{detail}");
    assert!(detail.contains("SELECT count(*)"), "{detail}");
    assert!(
        detail.contains("<email>") && !detail.contains("ops@example.com"),
        "{detail}"
    );
    assert_eq!(e["actor"]["via"], "api_key");
    let fp = e["actor"]["key_fingerprint"].as_str().expect("fingerprint");
    assert!(causeway_server::key_digest_hex("ka").starts_with(fp));
}
