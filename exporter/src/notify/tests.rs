//! Notifications against local HTTP servers standing in for Slack, Teams
//! and a webhook receiver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use bytes::Bytes;
use causeway_model::TenantId;
use causeway_model::rca::{CauseKind, Hypothesis, RcaReport};
use prometheus_client::registry::Registry;
use ring::hmac;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::testutil::{scratch_dir as tmp, serve};
use causeway_correlator::{ReportEvent, ReportSink};

#[derive(Clone, Default)]
struct Hook {
    /// Statuses to answer first, in order.
    script: Arc<Mutex<Vec<u16>>>,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    calls: Arc<AtomicUsize>,
}

async fn server(hook: Hook) -> String {
    async fn handle(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
        h.calls.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut s = h.script.lock().expect("lock");
            (!s.is_empty()).then(|| s.remove(0))
        };
        if let Some(code) = next {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, [("retry-after", "0")], "no").into_response();
        }
        h.got.lock().expect("lock").push((headers, body));
        // Slack answers "ok" as text.
        (StatusCode::OK, "ok").into_response()
    }
    let app = axum::Router::new()
        .route("/hook", post(handle))
        .with_state(hook);
    format!("http://{}/hook", serve(app).await)
}

fn report(service: &str, cause: CauseKind, confidence: f64) -> RcaReport {
    RcaReport {
        id: 42,
        tenant: "acme".into(),
        incident: 42,
        window_start_ns: 1,
        window_end_ns: 2,
        reference_spans: 10,
        reference_seconds: 10,
        summary: format!("{service} fails <since> the deploy & more, says ops@example.com"),
        narrative: String::new(),
        narrative_by: "template".into(),
        hypotheses: vec![Hypothesis {
            rank: 1,
            service: service.into(),
            operation: Some("POST /ship".into()),
            cause,
            confidence,
            score: 9.0,
            change: None,
            evidence: Vec::new(),
            precedents: Vec::new(),
        }],
        impacted_services: vec![service.into(), "frontend".into()],
        reports: Vec::new(),
        timeline: Vec::new(),
        next_steps: vec!["Roll back shipping 2.0.1".into()],
        feedback: Vec::new(),
        computed_ns: 3,
        incident_updated_ns: 2,
    }
}

fn destination(name: &str, kind: &str, env_url: &str, secret_env: Option<&str>) -> NotifyConfig {
    let mut v = serde_json::json!({
        "name": name,
        "type": kind,
        "url": {"env": env_url},
        "initial_interval": "20ms",
        "max_interval": "50ms",
        "max_attempts": 3,
    });
    if let Some(s) = secret_env {
        v["secret"] = serde_json::json!({"env": s});
    }
    serde_json::from_value(v).expect("config")
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event(r: RcaReport, previous: Option<RcaReport>) -> ReportEvent {
    ReportEvent {
        tenant: TenantId::new("acme").expect("tenant"),
        report: r,
        previous,
    }
}

#[tokio::test]
async fn slack_teams_and_signed_webhook_get_their_formats_after_retries() {
    let (slack, teams, hook) = (Hook::default(), Hook::default(), Hook::default());
    slack.script.lock().expect("lock").extend([500, 429]);
    // Secrets from files: environment variables are process-wide.
    let dir = tmp("formats");
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, v: &str| {
        let p = dir.join(name);
        std::fs::write(&p, v).expect("write");
        p
    };
    let slack_url = write("slack", &server(slack.clone()).await);
    let teams_url = write("teams", &server(teams.clone()).await);
    let hook_url = write("hook", &server(hook.clone()).await);
    let secret = write("secret", "s3cret");
    let file_dest =
        |name: &str, kind: &str, url: &std::path::Path, secret: Option<&std::path::Path>| {
            let mut v = serde_json::json!({
                "name": name, "type": kind, "url": {"file": url},
                "initial_interval": "20ms", "max_interval": "50ms", "max_attempts": 3,
            });
            if let Some(s) = secret {
                v["secret"] = serde_json::json!({"file": s});
            }
            serde_json::from_value::<NotifyConfig>(v).expect("config")
        };
    let configs = vec![
        file_dest("chat", "slack", &slack_url, None),
        file_dest("ms", "teams", &teams_url, None),
        file_dest("generic", "webhook", &hook_url, Some(&secret)),
    ];
    let mut registry = Registry::default();
    let n = Arc::new(
        Notifier::new(
            &configs,
            Some("https://causeway.example.com/".into()),
            &dir,
            NotifyMetrics::register(&mut registry),
        )
        .expect("notifier"),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&n).run(stop.clone()));
    n.report(&event(report("shipping", CauseKind::Deploy, 0.8), None));
    wait_for("all three", || {
        slack.got.lock().expect("lock").len() == 1
            && teams.got.lock().expect("lock").len() == 1
            && hook.got.lock().expect("lock").len() == 1
    })
    .await;
    assert_eq!(slack.calls.load(Ordering::SeqCst), 3, "500 and 429 retried");

    // No e-mail address leaves in any format.
    for got in [&slack, &teams, &hook] {
        let (_, body) = got.got.lock().expect("lock")[0].clone();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("ops@example.com"), "{text}");
        assert!(
            text.contains("&lt;email&gt;") || text.contains("<email>"),
            "{text}"
        );
    }
    let (_, body) = slack.got.lock().expect("lock")[0].clone();
    let v: Value = serde_json::from_slice(&body).expect("slack json");
    assert!(v["text"].as_str().is_some_and(|t| t.contains("shipping")));
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("&lt;since&gt;") && t.contains("&amp;"))
    );
    let button = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("a link button");
    assert_eq!(
        button["elements"][0]["url"],
        "https://causeway.example.com/#/incidents/42"
    );

    let (_, body) = teams.got.lock().expect("lock")[0].clone();
    let v: Value = serde_json::from_slice(&body).expect("teams json");
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(v["attachments"][0]["content"]["type"], "AdaptiveCard");

    let (headers, body) = hook.got.lock().expect("lock")[0].clone();
    let ts: u64 = headers["x-causeway-timestamp"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
    assert_eq!(
        headers["x-causeway-signature"].to_str().expect("ascii"),
        sign(&key, ts, &body)
    );
    assert_eq!(headers["x-causeway-event"], "rca.created");
    let v: Value = serde_json::from_slice(&body).expect("hook json");
    assert_eq!(v["report"]["hypotheses"][0]["service"], "shipping");

    // The same conclusion again is not news; a new culprit is.
    let first = report("shipping", CauseKind::Deploy, 0.8);
    n.report(&event(first.clone(), Some(first.clone())));
    n.report(&event(
        report("payment", CauseKind::CodeError, 0.7),
        Some(first),
    ));
    wait_for("the update", || hook.got.lock().expect("lock").len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.got.lock().expect("lock").len(), 2);
    assert_eq!(
        hook.got.lock().expect("lock")[1].0["x-causeway-event"],
        "rca.updated"
    );

    stop.cancel();
    task.await.expect("stopped");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("causeway_notifications_sent_total{notifier=\"chat\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("causeway_notifications_retries_total{notifier=\"chat\"} 2"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn undeliverable_messages_go_to_a_bounded_dead_letter_store() {
    let hook = Hook::default();
    // 404: final. Then three 503s: attempts exhausted.
    hook.script
        .lock()
        .expect("lock")
        .extend([404, 503, 503, 503]);
    let dir = tmp("dead");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = dir.join("url");
    std::fs::write(&url, server(hook.clone()).await).expect("write");
    let cfg: NotifyConfig = serde_json::from_value(serde_json::json!({
        "name": "chat", "type": "slack", "url": {"file": url},
        "initial_interval": "10ms", "max_interval": "20ms", "max_attempts": 3,
    }))
    .expect("config");
    let n =
        Arc::new(Notifier::new(&[cfg], None, &dir, NotifyMetrics::default()).expect("notifier"));
    let stop = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&n).run(stop.clone()));
    n.report(&event(report("a", CauseKind::Deploy, 0.5), None));
    let mut second = report("b", CauseKind::Deploy, 0.5);
    second.id = 43;
    n.report(&event(second, None));
    wait_for("two dead letters", || n.dead_letters().list().len() == 2).await;
    assert_eq!(
        hook.calls.load(Ordering::SeqCst),
        4,
        "404 once, 503 three times"
    );
    let dead = n.dead_letters().list();
    assert!(dead[0]["error"].as_str().is_some_and(|e| e.contains("404")));
    assert!(
        dead[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("3 attempts"))
    );
    // The URL is a secret: never in what is kept.
    let stored =
        std::fs::read_to_string(dir.join("notifications/dead_letters.jsonl")).expect("file");
    assert!(!stored.contains("127.0.0.1"));
    stop.cancel();
    task.await.expect("stopped");

    // Bounded, and survives a restart.
    let d = DeadLetters::open(&dir.join("notifications/dead_letters.jsonl"), 3);
    for i in 0..5 {
        d.push(serde_json::json!({"n": i}));
    }
    let kept = DeadLetters::open(&dir.join("notifications/dead_letters.jsonl"), 3).list();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[2]["n"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn webhook_needs_a_secret_and_low_confidence_or_other_tenants_are_not_sent() {
    let mut problems = Vec::new();
    destination("w", "webhook", "NOPE_URL", None).validate("n", &mut problems);
    assert!(
        problems.iter().any(|p| p.path == "n.secret"),
        "{problems:?}"
    );

    let dir = tmp("filter");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = dir.join("url");
    std::fs::write(&url, "http://127.0.0.1:9/hook").expect("write");
    let cfg: NotifyConfig = serde_json::from_value(serde_json::json!({
        "name": "chat", "type": "slack", "url": {"file": url},
        "min_confidence": 0.9, "tenants": ["acme"],
    }))
    .expect("config");
    let n = Notifier::new(&[cfg], None, &dir, NotifyMetrics::default()).expect("notifier");
    n.report(&event(report("a", CauseKind::Deploy, 0.5), None));
    let mut other = event(report("a", CauseKind::Deploy, 0.95), None);
    other.tenant = TenantId::new("globex").expect("tenant");
    n.report(&other);
    assert_eq!(n.tx.capacity(), PENDING, "nothing queued");
    n.report(&event(report("a", CauseKind::Deploy, 0.95), None));
    assert_eq!(n.tx.capacity(), PENDING - 1);
    let _ = std::fs::remove_dir_all(&dir);
}
