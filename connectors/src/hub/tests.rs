use super::*;
use crate::webhook::hmac_hex;
use http::HeaderValue;

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

fn hub(dir: &std::path::Path) -> SignalHub {
    std::fs::create_dir_all(dir).expect("dir");
    let secret = |name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("{name}-secret")).expect("write");
        p
    };
    let config: ConnectorsConfig = serde_json::from_value(serde_json::json!({
        "sources": [
            {"name": "gh", "tenant": "acme", "type": "github", "token": {"env": "UNSET_X"}, "repositories": ["acme/shop"], "webhook_secret": {"file": secret("gh")}},
            {"name": "gl", "tenant": "acme", "type": "gitlab", "token": {"env": "UNSET_X"}, "projects": ["acme/cart"], "webhook_secret": {"file": secret("gl")}},
            {"name": "jira", "tenant": "acme", "type": "jira", "site": "https://acme.atlassian.net", "token": {"env": "UNSET_X"}, "webhook_secret": {"file": secret("jira")}},
            {"name": "linear", "tenant": "acme", "type": "linear", "key": {"env": "UNSET_X"}, "webhook_secret": {"file": secret("linear")}},
            {"name": "slack", "tenant": "acme", "type": "slack", "token": {"env": "UNSET_X"}, "channels": ["C1"], "workspace_url": "https://acme.slack.com", "webhook_secret": {"file": secret("slack")}}
        ],
        "deploy_secrets": [{"tenant": "acme", "secret": {"file": secret("deploy")}}]
    }))
    .expect("config");
    SignalHub::with_store(DuckDbSignals::in_memory().expect("store"), config).expect("hub")
}

/// Each source's valid request, the same replayed, and a forged one.
#[tokio::test]
async fn every_source_takes_valid_and_refuses_forged_and_replayed_deliveries() {
    let dir = std::env::temp_dir().join(format!("causeway-hub-{}", std::process::id()));
    let hub = hub(&dir);
    let acme = TenantId::new("acme").expect("tenant");
    let now_s = time::now_ns() / 1_000_000_000;
    let key = |n: &str| Secret::new(format!("{n}-secret"));
    let push = serde_json::json!({"repository": {"full_name": "acme/shop"},
        "commits": [{"id": "abc123", "message": "Fix", "timestamp": "2024-05-01T10:00:00Z", "modified": ["a.rs"]}]}).to_string();
    let mr = serde_json::json!({"object_kind": "push", "project": {"path_with_namespace": "acme/cart"},
        "commits": [{"id": "def456", "message": "Cache", "timestamp": "2024-05-01T10:00:00Z", "added": ["b.go"]}]}).to_string();
    let issue = serde_json::json!({"webhookEvent": "jira:issue_created", "issue": {"key": "OPS-1",
        "fields": {"summary": "Checkout down", "created": "2024-05-01T09:45:12.000+0000"}}})
    .to_string();
    let lin = serde_json::json!({"action": "create", "type": "Issue", "webhookTimestamp": now_s * 1000,
        "data": {"identifier": "CART-9", "title": "Slow cart", "createdAt": "2024-05-01T09:40:11.123Z"}}).to_string();
    let old_lin = serde_json::json!({"action": "create", "type": "Issue", "webhookTimestamp": (now_s - 3600) * 1000,
        "data": {"identifier": "CART-8", "title": "Old", "createdAt": "2024-05-01T09:40:11.123Z"}}).to_string();
    let msg = serde_json::json!({"type": "event_callback", "event_id": "Ev1", "event":
        {"type": "message", "channel": "C1", "user": "U1", "text": "checkout is down", "ts": "1714557845.123456"}}).to_string();
    let slack_sig = |ts: i64, body: &str| {
        format!(
            "v0={}",
            hmac_hex(
                &key("slack"),
                &[b"v0:", ts.to_string().as_bytes(), b":", body.as_bytes()]
            )
        )
    };
    let cases: Vec<(&str, String, HeaderMap, HeaderMap, HeaderMap)> = vec![
        (
            "gh",
            push.clone(),
            headers(&[
                ("x-github-event", "push".into()),
                ("x-github-delivery", "d-1".into()),
                (
                    "x-hub-signature-256",
                    format!("sha256={}", hmac_hex(&key("gh"), &[push.as_bytes()])),
                ),
            ]),
            headers(&[
                ("x-github-event", "push".into()),
                ("x-github-delivery", "d-2".into()),
                (
                    "x-hub-signature-256",
                    format!("sha256={}", hmac_hex(&key("gl"), &[push.as_bytes()])),
                ),
            ]),
            HeaderMap::new(),
        ),
        (
            "gl",
            mr.clone(),
            headers(&[
                ("x-gitlab-event", "Push Hook".into()),
                ("x-gitlab-event-uuid", "u-1".into()),
                ("x-gitlab-token", "gl-secret".into()),
            ]),
            headers(&[
                ("x-gitlab-event", "Push Hook".into()),
                ("x-gitlab-event-uuid", "u-2".into()),
                ("x-gitlab-token", "gh-secret".into()),
            ]),
            HeaderMap::new(),
        ),
        (
            "jira",
            issue.clone(),
            headers(&[
                ("x-atlassian-webhook-identifier", "j-1".into()),
                (
                    "x-hub-signature",
                    format!("sha256={}", hmac_hex(&key("jira"), &[issue.as_bytes()])),
                ),
            ]),
            headers(&[
                ("x-atlassian-webhook-identifier", "j-2".into()),
                (
                    "x-hub-signature",
                    format!("sha256={}", hmac_hex(&key("jira"), &[b"{}"])),
                ),
            ]),
            HeaderMap::new(),
        ),
        (
            "linear",
            lin.clone(),
            headers(&[
                ("linear-delivery", "l-1".into()),
                (
                    "linear-signature",
                    hmac_hex(&key("linear"), &[lin.as_bytes()]),
                ),
            ]),
            headers(&[
                ("linear-delivery", "l-2".into()),
                (
                    "linear-signature",
                    hmac_hex(&key("slack"), &[lin.as_bytes()]),
                ),
            ]),
            // A validly signed body whose signed timestamp is an hour old.
            headers(&[
                ("linear-delivery", "l-3".into()),
                (
                    "linear-signature",
                    hmac_hex(&key("linear"), &[old_lin.as_bytes()]),
                ),
            ]),
        ),
        (
            "slack",
            msg.clone(),
            headers(&[
                ("x-slack-request-timestamp", now_s.to_string()),
                ("x-slack-signature", slack_sig(now_s, &msg)),
            ]),
            headers(&[
                ("x-slack-request-timestamp", now_s.to_string()),
                ("x-slack-signature", slack_sig(now_s + 1, &msg)),
            ]),
            headers(&[
                ("x-slack-request-timestamp", (now_s - 600).to_string()),
                ("x-slack-signature", slack_sig(now_s - 600, &msg)),
            ]),
        ),
    ];
    for (name, body, good, forged, stale) in cases {
        let outcome = hub
            .webhook(&acme, name, &good, body.as_bytes(), &NoServices)
            .await;
        assert!(
            matches!(outcome, Ok(WebhookOutcome::Stored(1))),
            "{name}: {outcome:?}"
        );
        let forged = hub
            .webhook(&acme, name, &forged, body.as_bytes(), &NoServices)
            .await;
        assert!(
            matches!(forged, Err(HookError::Refused(WebhookError::Signature(_)))),
            "{name}: {forged:?}"
        );
        // The same delivery again (a captured request replayed).
        let again = hub
            .webhook(&acme, name, &good, body.as_bytes(), &NoServices)
            .await;
        let replay_refused = matches!(again, Err(HookError::Refused(WebhookError::Replay)));
        if name == "slack" {
            // Slack signs its timestamp: within the window a retry is
            // the same event and replaces itself.
            assert!(
                matches!(again, Ok(WebhookOutcome::Stored(1))),
                "{name}: {again:?}"
            );
        } else {
            assert!(replay_refused, "{name}: {again:?}");
        }
        if !stale.is_empty() {
            let stale_body = if name == "linear" {
                old_lin.clone()
            } else {
                body.clone()
            };
            let r = hub
                .webhook(&acme, name, &stale, stale_body.as_bytes(), &NoServices)
                .await;
            assert!(
                matches!(r, Err(HookError::Refused(WebhookError::Replay))),
                "{name}: {r:?}"
            );
        }
    }
    // Five sources, one record each; nothing from the refused requests.
    let all = hub
        .signals(&acme, &SignalQuery::default())
        .await
        .expect("signals");
    assert_eq!(all.len(), 5, "{all:#?}");
    // Another tenant's path to the same source name is unknown.
    let globex = TenantId::new("globex").expect("tenant");
    assert!(matches!(
        hub.webhook(&globex, "gh", &HeaderMap::new(), b"{}", &NoServices)
            .await,
        Err(HookError::Unknown)
    ));

    // Deploy events: signed (the tenant has a deploy secret), stale, forged.
    let deploy = r#"{"service":"checkout","version":"v2"}"#;
    let sig = |ts: i64, k: &str| {
        format!(
            "sha256={}",
            hmac_hex(
                &key(k),
                &[ts.to_string().as_bytes(), b".", deploy.as_bytes()]
            )
        )
    };
    let signed = headers(&[
        ("x-causeway-timestamp", now_s.to_string()),
        ("x-causeway-signature", sig(now_s, "deploy")),
    ]);
    assert!(
        hub.deploy_event(&acme, &signed, deploy.as_bytes(), &NoServices)
            .await
            .is_ok()
    );
    let forged = headers(&[
        ("x-causeway-timestamp", now_s.to_string()),
        ("x-causeway-signature", sig(now_s, "gh")),
    ]);
    assert!(matches!(
        hub.deploy_event(&acme, &forged, deploy.as_bytes(), &NoServices)
            .await,
        Err(HookError::Refused(WebhookError::Signature(_)))
    ));
    let stale = headers(&[
        ("x-causeway-timestamp", (now_s - 900).to_string()),
        ("x-causeway-signature", sig(now_s - 900, "deploy")),
    ]);
    assert!(matches!(
        hub.deploy_event(&acme, &stale, deploy.as_bytes(), &NoServices)
            .await,
        Err(HookError::Refused(WebhookError::Replay))
    ));
    // A tenant without a deploy secret relies on its API key alone.
    assert!(
        hub.deploy_event(&globex, &HeaderMap::new(), deploy.as_bytes(), &NoServices)
            .await
            .is_ok()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A source that panics on its first `n` syncs, then answers empty pages.
#[derive(Debug)]
struct Flaky {
    name: &'static str,
    panics_left: std::sync::atomic::AtomicU32,
    pages: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl Connector for Flaky {
    fn name(&self) -> &str {
        self.name
    }
    fn system(&self) -> &'static str {
        "test"
    }
    fn streams(&self) -> Vec<String> {
        vec!["s".into()]
    }
    async fn page(
        &self,
        _tenant: &TenantId,
        _stream: &str,
        _since_ns: i64,
        _next: Option<&str>,
    ) -> Result<crate::Page> {
        use std::sync::atomic::Ordering::SeqCst;
        let left = self.panics_left.load(SeqCst);
        if left > 0 {
            self.panics_left.store(left - 1, SeqCst);
            panic!("a payload nobody foresaw");
        }
        self.pages.fetch_add(1, SeqCst);
        Ok(crate::Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn check(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_failing_source_is_restarted_and_the_others_keep_syncing() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = std::env::temp_dir().join(format!("causeway-hub-sup-{}", std::process::id()));
    let hub = Arc::new(hub(&dir));
    let acme = TenantId::new("acme").expect("tenant");
    let flaky = Arc::new(Flaky {
        name: "flaky",
        panics_left: 2.into(),
        pages: 0.into(),
    });
    let steady = Arc::new(Flaky {
        name: "steady",
        panics_left: 0.into(),
        pages: 0.into(),
    });
    let cancel = Cancel::new();
    let known: Arc<dyn KnownServices> = Arc::new(crate::NoServices);
    let mut tasks = tokio::task::JoinSet::new();
    for c in [Arc::clone(&flaky), Arc::clone(&steady)] {
        tasks.spawn(super::supervise(
            Arc::clone(&hub),
            acme.clone(),
            c as Arc<dyn Connector>,
            Arc::clone(&known),
            cancel.clone(),
        ));
    }
    // The first sync runs at once; the flaky source fails twice and is
    // restarted after 1 s and 2 s, then syncs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while flaky.pages.load(SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(flaky.panics_left.load(SeqCst), 0, "both failures happened");
    assert!(
        flaky.pages.load(SeqCst) >= 1,
        "restarted after failing twice"
    );
    assert!(
        steady.pages.load(SeqCst) >= 1,
        "the other source synced meanwhile"
    );
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = std::fs::remove_dir_all(&dir);
}

/// Audit events as they are recorded.
#[derive(Debug, Default)]
struct Recorded(std::sync::Mutex<Vec<causeway_model::AuditEvent>>);

impl causeway_model::AuditSink for Recorded {
    fn record(&self, event: causeway_model::AuditEvent) {
        self.0.lock().expect("lock").push(event);
    }
}

#[tokio::test]
async fn syncs_seals_and_key_rotations_are_audited_without_secrets() {
    let dir = std::env::temp_dir().join(format!("causeway-hub-audit-{}", std::process::id()));
    let recorded = Arc::new(Recorded::default());
    let mut config = hub(&dir).config.clone();
    let key_file = dir.join("seal.key");
    std::fs::write(&key_file, "07".repeat(32)).expect("key");
    config.seal_key = Some(crate::SecretRef::File(key_file));
    let hub = SignalHub::with_store(DuckDbSignals::in_memory().expect("store"), config)
        .expect("hub")
        .with_audit(Arc::clone(&recorded) as Arc<dyn causeway_model::AuditSink>);
    let acme = TenantId::new("acme").expect("tenant");
    let steady = Flaky {
        name: "steady",
        panics_left: 0.into(),
        pages: 0.into(),
    };
    hub.sync_source(&acme, &steady, &crate::NoServices).await;
    hub.seal(&acme, "github.token", &Secret::new("ghp_supersecretvalue"))
        .await
        .expect("seal");
    let new_key = SealKey::parse(&"09".repeat(32)).expect("key");
    assert_eq!(hub.rotate(&new_key).await.expect("rotate"), 1);
    let events = recorded.0.lock().expect("lock").clone();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["connector.sync", "connector.seal", "connector.rotate"]
    );
    assert_eq!(events[0].tenant.as_ref(), Some(&acme));
    assert!(
        events[0].detail.contains("connector=steady"),
        "{}",
        events[0].detail
    );
    assert_eq!(events[1].detail, "name=github.token");
    assert_eq!(events[2].tenant, None, "a rotation is the operator's");
    assert!(
        events.iter().all(|e| !e.detail.contains("supersecret")),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
