//! `causeway connectors check` and `connectors sync --once` through the
//! binary, against a local server in GitHub's REST wire format: what an
//! operator runs before turning a source on.

use std::net::SocketAddr;
use std::process::Command;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::harness::Scratch;

const GOOD: &str = "ghp_read0nly0token0for0tests";
const SHA: &str = "4f1c2b3a5d6e7f8091a2b3c4d5e6f708192a3b4c";

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {GOOD}"))
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

/// GitHub's endpoints the connector reads: the repository, one commit
/// with its files, and empty pull, deployment, release and issue lists.
async fn github() -> SocketAddr {
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}",
            get(|headers: HeaderMap, Path((o, r)): Path<(String, String)>| async move {
                if !authorized(&headers) {
                    return refused();
                }
                Json(json!({
                    "full_name": format!("{o}/{r}"),
                    "permissions": {"admin": false, "push": false, "pull": true}
                }))
                .into_response()
            }),
        )
        .route(
            "/repos/{owner}/{repo}/commits",
            get(|headers: HeaderMap| async move {
                if !authorized(&headers) {
                    return refused();
                }
                Json(json!([{
                    "sha": SHA,
                    "html_url": format!("https://github.com/acme/checkout/commit/{SHA}"),
                    "commit": {
                        "message": "Fix route lookup when a station is missing\n\nReturn 404 instead of 500.",
                        "author": {"name": "Ada", "date": "2026-11-30T09:00:00Z"},
                        "committer": {"name": "Ada", "date": "2026-11-30T09:00:00Z"}
                    },
                    "author": {"login": "ada"}
                }]))
                .into_response()
            }),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{sha}",
            get(|headers: HeaderMap| async move {
                if !authorized(&headers) {
                    return refused();
                }
                Json(json!({"sha": SHA, "files": [{"filename": "src/route/lookup.rs"}]}))
                    .into_response()
            }),
        )
        .fallback(|headers: HeaderMap| async move {
            if !authorized(&headers) {
                return refused();
            }
            Json(json!([])).into_response()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn run(args: &[&str], token: &str) -> (bool, String) {
    let out = Command::new(crate::harness::binary())
        .args(args)
        .env("CAUSEWAY_TEST_GITHUB_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run causeway");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_sync_once_read_a_source_and_never_print_its_token() {
    let addr = github().await;
    let dir = Scratch::new("connectors-cli");
    let config = dir.0.join("causeway.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  data_dir: {}\nconnectors:\n  sources:\n    - name: github\n      tenant: acme\n      type: github\n      token: {{env: CAUSEWAY_TEST_GITHUB_TOKEN}}\n      base_url: http://{addr}\n      repositories: [acme/checkout]\n",
            dir.0.join("data").display()
        ),
    )
    .expect("config");
    let cfg = config.to_str().expect("utf-8 path");

    // A token the source refuses: a failed check that says which read
    // scopes are needed, and never shows the token.
    let bad = "ghp_wrong0token0value0xyz";
    let (ok, text) = tokio::task::spawn_blocking({
        let cfg = cfg.to_owned();
        move || run(&["connectors", "check", "-c", &cfg], bad)
    })
    .await
    .expect("join");
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED") && text.contains("needs:"), "{text}");
    assert!(!text.contains(bad), "the token leaked: {text}");

    // The right token: readable, read-only.
    let (ok, text) = tokio::task::spawn_blocking({
        let cfg = cfg.to_owned();
        move || run(&["connectors", "check", "-c", &cfg], GOOD)
    })
    .await
    .expect("join");
    assert!(ok, "{text}");
    assert!(text.contains("acme/github (github): ok"), "{text}");
    assert!(text.contains("acme/checkout: readable"), "{text}");
    assert!(!text.contains(GOOD), "the token leaked: {text}");

    // One pass stores the commit; a second stores nothing new.
    let sync = |cfg: String| move || run(&["connectors", "sync", "--once", "-c", &cfg], GOOD);
    let (ok, text) = tokio::task::spawn_blocking(sync(cfg.to_owned()))
        .await
        .expect("join");
    assert!(ok, "{text}");
    assert!(text.contains("1 record(s), 1 new"), "{text}");
    let (ok, text) = tokio::task::spawn_blocking(sync(cfg.to_owned()))
        .await
        .expect("join");
    assert!(ok, "{text}");
    assert!(text.contains(", 0 new"), "{text}");
    assert!(!text.contains(GOOD), "the token leaked: {text}");
}
