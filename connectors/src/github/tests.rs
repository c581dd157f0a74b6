use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use causeway_model::SignalKind;
use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
use serde_json::json;

use super::*;
use crate::sync::{SyncSettings, sync_connector};
use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
use crate::{ServiceMapper, time};

const HOUR: i64 = 3_600_000_000_000;

fn ago(h: i64) -> String {
    time::rfc3339(time::now_ns() - h * HOUR)
}

fn json_answer(v: serde_json::Value, link: Option<String>) -> Answer {
    let mut headers = vec![
        ("content-type", "application/json; charset=utf-8".to_owned()),
        ("x-ratelimit-limit", "5000".to_owned()),
        ("x-ratelimit-remaining", "4990".to_owned()),
        (
            "x-ratelimit-reset",
            (time::now_ns() / 1_000_000_000 + 3600).to_string(),
        ),
        ("x-ratelimit-resource", "core".to_owned()),
    ];
    if let Some(l) = link {
        headers.push(("link", l));
    }
    (200, headers, v.to_string())
}

/// GitHub as it answers: exact field names, `Link` pagination with
/// `/repositories/{id}` next URLs, a rate limit on the first commits call.
fn github(limited: Arc<AtomicUsize>, garbage: bool) -> impl Fn(&Seen, &str) -> Answer {
    move |r: &Seen, base: &str| {
        if r.header("authorization") != Some("Bearer ghp_test") {
            return (
                401,
                vec![("content-type", "application/json".to_owned())],
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}).to_string(),
            );
        }
        let repo = "/repos/acme/checkout-service";
        let commit = |sha: &str, h: i64, msg: &str| {
            json!({
                "sha": sha,
                "node_id": "C_kwDO",
                "html_url": format!("https://github.com/acme/checkout-service/commit/{sha}"),
                "commit": {
                    "author": {"name": "Mona Octocat", "email": "mona@github.com", "date": ago(h)},
                    "committer": {"name": "GitHub", "email": "noreply@github.com", "date": ago(h)},
                    "message": msg,
                    "comment_count": 0
                },
                "author": {"login": "octocat", "id": 1},
                "parents": [{"sha": "7638417db6d59f3c431d3e1f261cc637155684cd"}]
            })
        };
        match r.path.as_str() {
            p if p == format!("{repo}/commits") => {
                if limited.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (
                        429,
                        vec![
                            ("retry-after", "1".to_owned()),
                            ("x-ratelimit-remaining", "0".to_owned()),
                        ],
                        json!({"message": "API rate limit exceeded"}).to_string(),
                    );
                }
                if garbage {
                    return (
                        200,
                        vec![("content-type", "application/json".to_owned())],
                        "[{\"sha\": \"abc\", \"comm".to_owned(),
                    );
                }
                assert!(r.q("since").is_some(), "commits are read since the cursor");
                json_answer(
                    json!([
                        commit(
                            "c2",
                            2,
                            "Raise checkout timeout\n\nThe payment call needs 3 s."
                        ),
                        commit("c1", 3, "Add retry to cart")
                    ]),
                    Some(format!(
                        "<{base}/repositories/42/commits?since={}&per_page=100&page=2>; rel=\"next\", <{base}/repositories/42/commits?page=2>; rel=\"last\"",
                        r.q("since").unwrap_or_default()
                    )),
                )
            }
            "/repositories/42/commits" => match r.q("page") {
                Some("2") => json_answer(
                    json!([commit("c0", 5, "Initial import")]),
                    Some(format!(
                        "<{base}/repositories/42/commits?page=3>; rel=\"next\""
                    )),
                ),
                _ => json_answer(json!([commit("cb", 6, "Bootstrap")]), None),
            },
            p if p.starts_with(&format!("{repo}/commits/")) => {
                let sha = p.rsplit('/').next().unwrap_or_default();
                json_answer(
                    json!({
                        "sha": sha,
                        "commit": {"message": "x", "committer": {"date": ago(1)}},
                        "stats": {"additions": 3, "deletions": 1, "total": 4},
                        "files": [{"filename": format!("src/{sha}.rs"), "status": "modified", "additions": 3, "deletions": 1, "changes": 4, "patch": "@@"}]
                    }),
                    None,
                )
            }
            p if p == format!("{repo}/pulls") => json_answer(
                json!([
                    {"number": 12, "title": "Checkout: retry payments", "body": "Retries on 503", "state": "closed",
                     "user": {"login": "hubot"}, "created_at": ago(30), "updated_at": ago(4), "closed_at": ago(4),
                     "merged_at": ago(4), "merge_commit_sha": "c2", "html_url": "https://github.com/acme/checkout-service/pull/12",
                     "head": {"ref": "retry", "sha": "c2"}, "base": {"ref": "main", "sha": "c1"}, "labels": [{"name": "payments"}]},
                    {"number": 11, "title": "Abandoned", "body": null, "state": "closed", "user": {"login": "hubot"},
                     "created_at": ago(40), "updated_at": ago(6), "closed_at": ago(6), "merged_at": null,
                     "merge_commit_sha": null, "html_url": "https://github.com/acme/checkout-service/pull/11", "labels": []},
                    {"number": 3, "title": "Old", "body": "", "state": "closed", "user": {"login": "hubot"},
                     "created_at": ago(900), "updated_at": ago(800), "merged_at": ago(800), "merge_commit_sha": "aa",
                     "html_url": "https://github.com/acme/checkout-service/pull/3", "labels": []}
                ]),
                // More pages exist, but the pass stops at the old record.
                Some(format!(
                    "<{base}/repositories/42/pulls?page=2>; rel=\"next\""
                )),
            ),
            p if p == format!("{repo}/deployments") => json_answer(
                json!([{
                    "url": format!("{base}{repo}/deployments/7"), "id": 7, "sha": "c2", "ref": "v2.3.1",
                    "task": "deploy", "environment": "production", "description": "checkout v2.3.1",
                    "creator": {"login": "deploy-bot"}, "created_at": ago(2), "updated_at": ago(2),
                    "statuses_url": format!("{base}{repo}/deployments/7/statuses")
                }]),
                None,
            ),
            p if p == format!("{repo}/deployments/7/statuses") => {
                assert_eq!(r.q("per_page"), Some("1"));
                json_answer(
                    json!([{"id": 1, "state": "success", "environment": "production", "created_at": ago(2)}]),
                    None,
                )
            }
            p if p == format!("{repo}/releases") => json_answer(
                json!([
                    {"id": 99, "tag_name": "v2.4.0", "name": "", "body": "draft", "draft": true, "prerelease": false,
                     "created_at": ago(1), "published_at": null, "author": {"login": "mona"}, "html_url": "x"},
                    {"id": 98, "tag_name": "v2.3.1", "target_commitish": "main", "name": "Checkout 2.3.1", "body": "Retries",
                     "draft": false, "prerelease": false, "created_at": ago(3), "published_at": ago(3),
                     "author": {"login": "mona"}, "html_url": "https://github.com/acme/checkout-service/releases/tag/v2.3.1"}
                ]),
                None,
            ),
            p if p == format!("{repo}/issues") => json_answer(
                json!([
                    {"number": 40, "title": "Checkout 500s after deploy", "body": "TimeoutException in PaymentClient",
                     "state": "open", "user": {"login": "sre"}, "labels": [{"name": "incident"}],
                     "created_at": ago(1), "updated_at": ago(1), "html_url": "https://github.com/acme/checkout-service/issues/40"},
                    {"number": 12, "title": "Checkout: retry payments", "body": "", "state": "closed", "user": {"login": "hubot"},
                     "labels": [], "created_at": ago(30), "updated_at": ago(4), "html_url": "x",
                     "pull_request": {"url": "x", "merged_at": ago(4)}}
                ]),
                None,
            ),
            p if p == repo => json_answer(
                json!({"id": 42, "full_name": "acme/checkout-service", "private": true,
                       "permissions": {"admin": false, "maintain": false, "push": false, "triage": false, "pull": true}}),
                None,
            ),
            _ => (404, vec![], json!({"message": "Not Found"}).to_string()),
        }
    }
}

fn connector(base: &str, token: &str) -> GitHub {
    GitHub::new(
        GitHubSettings {
            name: "github".into(),
            base_url: base.to_owned(),
            repositories: vec!["acme/checkout-service".into()],
            branch: None,
            max_commit_details: 100,
        },
        Secret::new(token),
        RetryPolicy {
            backoff: std::time::Duration::from_millis(10),
            ..RetryPolicy::default()
        },
    )
    .expect("connector")
}

#[tokio::test]
async fn syncs_every_stream_incrementally_with_pagination_and_rate_limits() {
    let server = TestServer::start(github(Arc::new(AtomicUsize::new(0)), false)).await;
    let gh = connector(&server.base, "ghp_test");
    let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
    let mapper = ServiceMapper::new(Vec::new(), ["checkout".to_owned(), "cart".to_owned()]);
    let tenant = TenantId::new("acme").expect("tenant");
    let report = sync_connector(&gh, &tenant, &store, &mapper, SyncSettings::default()).await;
    assert!(report.failed.is_empty(), "{report:?}");
    let all = store
        .lock()
        .await
        .signals(&tenant, &SignalQuery::default())
        .expect("signals");
    let count = |k: SignalKind| all.iter().filter(|s| s.kind == k).count();
    assert_eq!(count(SignalKind::Commit), 4, "three pages of commits");
    assert_eq!(
        count(SignalKind::PullRequest),
        1,
        "merged only, old ones not read"
    );
    assert_eq!(count(SignalKind::Deploy), 1);
    assert_eq!(count(SignalKind::Release), 1, "drafts are not releases");
    assert_eq!(count(SignalKind::Ticket), 1, "pull requests are not issues");
    assert_eq!(report.new, 8);
    let c2 = all.iter().find(|s| s.external_id == "c2").expect("c2");
    assert_eq!(c2.title, "Raise checkout timeout");
    assert_eq!(c2.body, "The payment call needs 3 s.");
    assert_eq!(c2.changed_paths, ["src/c2.rs"]);
    assert_eq!(c2.services, ["checkout"], "repository name matched");
    assert_eq!(c2.author.as_deref(), Some("octocat"));
    let deploy = all
        .iter()
        .find(|s| s.kind == SignalKind::Deploy)
        .expect("deploy");
    assert_eq!(deploy.status.as_deref(), Some("success"));
    assert_eq!(deploy.version.as_deref(), Some("v2.3.1"));
    assert_eq!(deploy.commit.as_deref(), Some("c2"));
    let seen = server.seen();
    assert_read_only(&seen);
    for s in &seen {
        assert_eq!(s.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(s.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            s.header("user-agent")
                .is_some_and(|u| u.starts_with("causeway/"))
        );
    }
    assert_eq!(
        seen.iter().filter(|s| s.path.ends_with("/pulls")).count(),
        1,
        "the pull pass stopped at the old record"
    );

    // Again: the cursor moved to the newest update; nothing new, and the
    // commit query starts from it (minus the overlap).
    let before = seen.len();
    let report = sync_connector(&gh, &tenant, &store, &mapper, SyncSettings::default()).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.new, 0);
    let again = server.seen();
    let commits = again[before..]
        .iter()
        .find(|s| s.path.ends_with("/commits"))
        .expect("commits again");
    let since = time::parse_ns(commits.q("since").expect("since")).expect("ts");
    assert!(since > time::now_ns() - 3 * HOUR, "incremental: {since}");
    assert_eq!(
        gh.check().await.expect("check"),
        ["acme/checkout-service: readable"]
    );
}

#[tokio::test]
async fn bad_credentials_and_garbage_keep_the_cursor() {
    let server = TestServer::start(github(Arc::new(AtomicUsize::new(1)), false)).await;
    let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
    let mapper = ServiceMapper::default();
    let tenant = TenantId::new("acme").expect("tenant");
    let bad = connector(&server.base, "ghp_wrong");
    let report = sync_connector(&bad, &tenant, &store, &mapper, SyncSettings::default()).await;
    assert_eq!(report.failed.len(), 5, "{report:?}");
    assert!(
        report.failed[0].1.contains("credentials refused (401)")
            && report.failed[0].1.contains("Bad credentials"),
        "{report:?}"
    );
    assert!(
        !report.failed.iter().any(|(_, e)| e.contains("ghp_wrong")),
        "no token in errors"
    );
    let err = bad.check().await.expect_err("check");
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(
        store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q")
            .is_empty()
    );

    let garbage = TestServer::start(github(Arc::new(AtomicUsize::new(1)), true)).await;
    let gh = connector(&garbage.base, "ghp_test");
    let report = sync_connector(&gh, &tenant, &store, &mapper, SyncSettings::default()).await;
    let (stream, e) = &report.failed[0];
    assert_eq!(stream, "commits:acme/checkout-service");
    assert!(e.contains("unexpected answer") && e.contains("EOF"), "{e}");
    assert_eq!(
        store
            .lock()
            .await
            .cursor(&tenant, "github", stream)
            .expect("cursor"),
        None,
        "no cursor after a garbage page"
    );
    // The other streams went on.
    assert_eq!(report.failed.len(), 1, "{report:?}");
}

#[tokio::test]
async fn conforms() {
    let make = |token: &'static str| {
        move |base: &str| -> Box<dyn Connector> { Box::new(connector(base, token)) }
    };
    crate::testserver::conformance(
        github(Arc::new(AtomicUsize::new(1)), false),
        make("ghp_test"),
        make("ghp_wrong"),
        "ghp_wrong",
    )
    .await;
}

/// Everything a sync logs, at every level and from every crate (reqwest
/// and hyper included), through a rate limit, a refused credential and a
/// garbage page: no credential in any line.
#[test]
fn no_credential_reaches_a_log_line() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let tenant = TenantId::new("acme").expect("tenant");
            let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
            let mapper = ServiceMapper::default();
            // A 429 on the first call, then good answers.
            let server = TestServer::start(github(Arc::new(AtomicUsize::new(0)), false)).await;
            sync_connector(
                &connector(&server.base, "ghp_test"),
                &tenant,
                &store,
                &mapper,
                SyncSettings::default(),
            )
            .await;
            sync_connector(
                &connector(&server.base, "ghp_wrong"),
                &tenant,
                &store,
                &mapper,
                SyncSettings::default(),
            )
            .await;
            let garbage = TestServer::start(github(Arc::new(AtomicUsize::new(1)), true)).await;
            sync_connector(
                &connector(&garbage.base, "ghp_test"),
                &tenant,
                &store,
                &mapper,
                SyncSettings::default(),
            )
            .await;
        });
    });
    let logs = String::from_utf8_lossy(&buf.0.lock().expect("lock")).into_owned();
    // The capture works: the rate limit, the refusal and the garbage are there.
    assert!(logs.contains("rate limited"), "{logs}");
    assert!(logs.contains("credentials refused"), "{logs}");
    assert!(logs.contains("unexpected answer"), "{logs}");
    for secret in ["ghp_test", "ghp_wrong"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
