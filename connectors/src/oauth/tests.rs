use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use serde_json::json;

use super::*;
use crate::http::{Auth, ReadOnlyClient};
use crate::testserver::{Answer, Seen, TestServer, assert_read_only};

const CLIENT_SECRET: &str = "app-secret-7f3a";

/// Renewed tokens kept in memory: the persistence interface, so that a
/// "restart" (a new session) can be tested without the vault (the vault
/// itself is tested through the hub below).
#[derive(Default)]
struct Memory(Mutex<HashMap<(String, String), String>>);

#[async_trait::async_trait]
impl TokenStore for Memory {
    async fn load(&self, tenant: &TenantId, name: &str) -> Result<Option<Secret>> {
        let m = self.0.lock().expect("lock");
        Ok(m.get(&(tenant.to_string(), name.to_owned()))
            .map(|v| Secret::new(v.clone())))
    }

    async fn save(&self, tenant: &TenantId, name: &str, value: &Secret) -> Result<()> {
        self.0.lock().expect("lock").insert(
            (tenant.to_string(), name.to_owned()),
            value.expose().to_owned(),
        );
        Ok(())
    }
}

/// An authorization server with rotating refresh tokens (RFC 6749 §6, as
/// Atlassian, GitLab and GitHub Apps issue them: each refresh token works
/// once) and an API that accepts only the newest access token.
struct Issuer {
    refresh: Mutex<String>,
    access: Mutex<String>,
    issued: AtomicUsize,
    grants: AtomicUsize,
    expires_in: AtomicU64,
    /// Answer the next grant with 429 and `Retry-After: 1`.
    busy_once: std::sync::atomic::AtomicBool,
}

impl Issuer {
    fn new(first_refresh: &str, expires_in: u64) -> Arc<Self> {
        Arc::new(Self {
            refresh: Mutex::new(first_refresh.to_owned()),
            access: Mutex::new(String::new()),
            issued: AtomicUsize::new(0),
            grants: AtomicUsize::new(0),
            expires_in: AtomicU64::new(expires_in),
            busy_once: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn revoke_access(&self) {
        *self.access.lock().expect("lock") = "revoked".into();
    }

    fn answer(&self, r: &Seen) -> Answer {
        let ct = vec![("content-type", "application/json".to_owned())];
        if r.path == "/oauth/token" {
            assert_eq!(r.method, "POST");
            assert_eq!(
                r.header("content-type"),
                Some("application/x-www-form-urlencoded")
            );
            assert!(
                r.header("authorization").is_none(),
                "client auth is in the body"
            );
            self.grants.fetch_add(1, SeqCst);
            if self.busy_once.swap(false, SeqCst) {
                return (
                    429,
                    vec![("retry-after", "1".to_owned())],
                    "{\"error\":\"slow_down\"}".into(),
                );
            }
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            if form.get("client_id").map(String::as_str) != Some("causeway-app")
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return (401, ct, json!({"error": "invalid_client"}).to_string());
            }
            assert_eq!(
                form.get("grant_type").map(String::as_str),
                Some("refresh_token")
            );
            let mut current = self.refresh.lock().expect("lock");
            if form.get("refresh_token") != Some(&*current) {
                return (
                    400,
                    ct,
                    json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}).to_string(),
                );
            }
            let n = self.issued.fetch_add(1, SeqCst) + 1;
            let access = format!("at-{n}");
            *current = format!("rt-{}", n + 1);
            *self.access.lock().expect("lock") = access.clone();
            return (
                200,
                ct,
                json!({
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": self.expires_in.load(SeqCst),
                    "refresh_token": *current,
                    "scope": "read:jira-work offline_access"
                })
                .to_string(),
            );
        }
        let want = format!("Bearer {}", self.access.lock().expect("lock"));
        if r.header("authorization") != Some(want.as_str()) {
            return (401, ct, json!({"message": "Bad credentials"}).to_string());
        }
        (200, ct, json!({"items": [1, 2, 3]}).to_string())
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

fn session(
    base: &str,
    refresh: Option<&str>,
    store: Option<Arc<dyn TokenStore>>,
) -> Arc<OAuthSession> {
    Arc::new(
        OAuthSession::new(
            SessionSettings {
                system: "jira",
                connector: "jira-oauth".into(),
                tenant: tenant(),
                token_url: format!("{base}/oauth/token"),
                client_id: "causeway-app".into(),
                client_secret: Some(Secret::new(CLIENT_SECRET)),
                refresh_token: refresh.map(Secret::new),
                scope: None,
                client_auth: ClientAuth::Body,
                body: BodyFormat::Form,
            },
            store,
            policy(),
        )
        .expect("session"),
    )
}

fn client(session: &Arc<OAuthSession>) -> ReadOnlyClient {
    ReadOnlyClient::new(
        "jira",
        Some(Auth::OAuth(Arc::clone(session))),
        &[],
        policy(),
    )
    .expect("client")
}

async fn issuer_server(issuer: &Arc<Issuer>) -> TestServer {
    let i = Arc::clone(issuer);
    TestServer::start(move |r, _| i.answer(r)).await
}

/// Every request but the grants is a read; the grants went only to the
/// token endpoint.
fn assert_only_reads_and_grants(seen: &[Seen]) {
    let (grants, reads): (Vec<Seen>, Vec<Seen>) =
        seen.iter().cloned().partition(|s| s.path == "/oauth/token");
    assert_read_only(&reads);
    assert!(grants.iter().all(|g| g.method == "POST"));
}

#[tokio::test]
async fn rotating_refresh_tokens_renew_after_a_401_and_survive_a_restart() {
    let issuer = Issuer::new("rt-1", 3600);
    let server = issuer_server(&issuer).await;
    let store: Arc<dyn TokenStore> = Arc::new(Memory::default());
    let url = format!("{}/rest/api/3/search/jql", server.base);
    let s = session(&server.base, Some("rt-1"), Some(Arc::clone(&store)));
    let c = client(&s);

    c.get(&url).await.expect("first call fetches a token");
    c.get(&url).await.expect("second call reuses it");
    assert_eq!(issuer.grants.load(SeqCst), 1, "one grant for two calls");

    // Revoked before its expiry: the 401 renews it once, with the
    // rotated refresh token, and the call goes through.
    issuer.revoke_access();
    c.get(&url).await.expect("renewed after the 401");
    assert_eq!(issuer.grants.load(SeqCst), 2);

    // What is kept holds the rotated tokens, not the configured ones.
    let kept = store
        .load(&tenant(), "oauth:jira-oauth")
        .await
        .expect("load")
        .expect("stored");
    assert!(
        kept.expose().contains("\"rt-3\""),
        "rotated refresh token kept"
    );
    assert!(!kept.expose().contains("\"rt-1\""));

    // A restart: the configured refresh token (rt-1) was used up long
    // ago; the kept access token is still valid, so no grant is needed.
    let restarted = session(&server.base, Some("rt-1"), Some(Arc::clone(&store)));
    client(&restarted).get(&url).await.expect("kept token used");
    assert_eq!(issuer.grants.load(SeqCst), 2, "no grant after the restart");
    // And when it is revoked, the kept refresh token (rt-3) renews it.
    issuer.revoke_access();
    client(&restarted)
        .get(&url)
        .await
        .expect("kept refresh token used");
    assert_eq!(issuer.grants.load(SeqCst), 3);

    // Without a store, a restart would present the used-up token: the
    // refusal names the connector and the endpoint's words, no secret.
    let forgetful = session(&server.base, Some("rt-1"), None);
    let err = client(&forgetful).get(&url).await.expect_err("used up");
    let text = err.to_string();
    assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
    assert!(
        text.contains("jira-oauth") && text.contains("invalid_grant"),
        "{text}"
    );
    assert!(text.contains("Unknown or invalid refresh token."), "{text}");
    for secret in ["rt-1", "rt-4", CLIENT_SECRET, "at-3"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_only_reads_and_grants(&server.seen());
}

#[tokio::test]
async fn a_token_is_renewed_a_minute_before_it_expires() {
    // 30 s of validity is inside the margin: every call renews.
    let issuer = Issuer::new("rt-1", 30);
    let server = issuer_server(&issuer).await;
    let url = format!("{}/items", server.base);
    let c = client(&session(&server.base, Some("rt-1"), None));
    c.get(&url).await.expect("first");
    c.get(&url).await.expect("second");
    assert_eq!(issuer.grants.load(SeqCst), 2);

    // An hour of validity: one grant serves many calls.
    let issuer = Issuer::new("rt-1", 3600);
    let server = issuer_server(&issuer).await;
    let url = format!("{}/items", server.base);
    let c = client(&session(&server.base, Some("rt-1"), None));
    for _ in 0..5 {
        c.get(&url).await.expect("call");
    }
    assert_eq!(issuer.grants.load(SeqCst), 1);
}

#[tokio::test]
async fn a_busy_token_endpoint_is_waited_for() {
    let issuer = Issuer::new("rt-1", 3600);
    issuer.busy_once.store(true, SeqCst);
    let server = issuer_server(&issuer).await;
    let c = client(&session(&server.base, Some("rt-1"), None));
    c.get(&format!("{}/items", server.base))
        .await
        .expect("after Retry-After");
    assert_eq!(issuer.grants.load(SeqCst), 2, "the 429 and the grant");
}

#[tokio::test]
async fn a_token_the_api_keeps_refusing_ends_in_one_renewal_and_a_clear_error() {
    // The endpoint issues tokens the API does not take (a missing scope):
    // one renewal, then the 401 is the answer.
    let grants = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&grants);
    let server = TestServer::start(move |r, _| {
        let ct = vec![("content-type", "application/json".to_owned())];
        if r.path == "/oauth/token" {
            let n = g.fetch_add(1, SeqCst) + 1;
            return (
                200,
                ct,
                json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600}).to_string(),
            );
        }
        (401, ct, json!({"message": "scope missing"}).to_string())
    })
    .await;
    let err = client(&session(&server.base, Some("rt-1"), None))
        .get(&format!("{}/items", server.base))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("read:jira-work"), "{err}");
    assert_eq!(grants.load(SeqCst), 2, "the first token and one renewal");
}

/// Refusals in each system's own shape: RFC 6749 errors, GitHub's error
/// in a 200, Slack's `ok: false`, a body that is not JSON, an answer
/// without a token.
#[tokio::test]
async fn refusals_in_every_shape_are_clear_errors_without_secrets() {
    let cases: Vec<(u16, &str, &str)> = vec![
        (
            400,
            r#"{"error":"invalid_grant","error_description":"Refresh token expired"}"#,
            "invalid_grant: Refresh token expired",
        ),
        (401, r#"{"error":"invalid_client"}"#, "invalid_client"),
        (
            200,
            r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"https://docs.github.com"}"#,
            "bad_refresh_token",
        ),
        (
            200,
            r#"{"ok":false,"error":"invalid_refresh_token"}"#,
            "invalid_refresh_token",
        ),
        (200, "<html>Sign in</html>", "not a JSON token response"),
        (
            200,
            r#"{"token_type":"Bearer","expires_in":3600}"#,
            "no access_token",
        ),
        (403, r#"{"message":"forbidden"}"#, "status 403"),
        (503, "unavailable", "answered 503"),
    ];
    for (status, body, want) in cases {
        let body = body.to_owned();
        let server = TestServer::start(move |_, _| (status, vec![], body.clone())).await;
        let err = session(&server.base, Some("rt-secret-1"), None)
            .token()
            .await
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains(want), "{status}: {text}");
        assert!(
            text.starts_with("jira: OAuth token for jira-oauth refused at http://127.0.0.1:"),
            "{text}"
        );
        assert!(
            !text.contains("rt-secret-1") && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }
}

/// Client credentials (Entra for Azure DevOps, Salesforce, ServiceNow),
/// with HTTP Basic client authentication and a JSON body.
#[tokio::test]
async fn client_credentials_with_basic_auth_and_a_json_body() {
    let server = TestServer::start(|r, _| {
        let ct = vec![("content-type", "application/json".to_owned())];
        if r.path != "/token" {
            return (
                if r.header("authorization") == Some("Bearer cc-1") { 200 } else { 401 },
                ct,
                "{}".into(),
            );
        }
        assert_eq!(r.header("content-type"), Some("application/json"));
        // base64("causeway-app:app-secret-7f3a")
        assert_eq!(
            r.header("authorization"),
            Some("Basic Y2F1c2V3YXktYXBwOmFwcC1zZWNyZXQtN2YzYQ==")
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            body,
            json!({"grant_type": "client_credentials", "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default"}),
            "no client secret in the body"
        );
        // Entra's answer: expires_in as a number, no refresh token.
        (200, ct, json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "cc-1"}).to_string())
    })
    .await;
    let s = Arc::new(
        OAuthSession::new(
            SessionSettings {
                system: "azure_devops",
                connector: "ado".into(),
                tenant: tenant(),
                token_url: format!("{}/token", server.base),
                client_id: "causeway-app".into(),
                client_secret: Some(Secret::new(CLIENT_SECRET)),
                refresh_token: None,
                scope: Some("499b84ac-1321-427f-aa17-267ca6975798/.default".into()),
                client_auth: ClientAuth::Basic,
                body: BodyFormat::Json,
            },
            None,
            policy(),
        )
        .expect("session"),
    );
    client(&s)
        .get(&format!("{}/_apis/git/repositories", server.base))
        .await
        .expect("authorized");
}

#[test]
fn token_urls_must_be_https_except_to_this_machine() {
    assert_eq!(
        token_url_problem("https://auth.atlassian.com/oauth/token"),
        None
    );
    assert_eq!(token_url_problem("http://127.0.0.1:8080/token"), None);
    assert_eq!(token_url_problem("http://localhost/token"), None);
    assert_eq!(token_url_problem("http://[::1]/token"), None);
    let p = token_url_problem("http://auth.example.com/token?client_secret=x").expect("refused");
    assert!(
        p.contains("must be https") && !p.contains("client_secret"),
        "{p}"
    );
    assert!(token_url_problem("not a url").is_some());
    assert!(
        OAuthSession::new(
            SessionSettings {
                system: "jira",
                connector: "j".into(),
                tenant: tenant(),
                token_url: "http://auth.example.com/token".into(),
                client_id: "c".into(),
                client_secret: None,
                refresh_token: Some(Secret::new("r")),
                scope: None,
                client_auth: ClientAuth::Body,
                body: BodyFormat::Form,
            },
            None,
            policy(),
        )
        .is_err()
    );
}

#[test]
fn every_system_with_expiring_tokens_has_its_documented_endpoint() {
    let e = default_endpoint("jira", None);
    assert_eq!(
        e.token_url.as_deref(),
        Some("https://auth.atlassian.com/oauth/token")
    );
    assert_eq!(e.body, BodyFormat::Json);
    let e = default_endpoint("bitbucket", None);
    assert_eq!(e.client_auth, ClientAuth::Basic);
    let e = default_endpoint("servicenow", Some("https://acme.service-now.com/"));
    assert_eq!(
        e.token_url.as_deref(),
        Some("https://acme.service-now.com/oauth_token.do")
    );
    let e = default_endpoint("salesforce", Some("https://acme.my.salesforce.com"));
    assert_eq!(
        e.token_url.as_deref(),
        Some("https://acme.my.salesforce.com/services/oauth2/token")
    );
    assert_eq!(
        default_endpoint("zendesk", Some("https://acme.zendesk.com")).body,
        BodyFormat::Json
    );
    assert_eq!(default_endpoint("azure_devops", None).token_url, None);
    for system in ["github", "gitlab", "linear", "slack"] {
        let url = default_endpoint(system, None).token_url.expect("fixed");
        assert!(url.starts_with("https://"), "{system}: {url}");
    }
}

/// Slack token rotation through the whole path: the config's `oauth`
/// block, the hub, the real Slack connector and a sync, with the renewed
/// tokens sealed in the signal store and used again after a restart.
#[tokio::test]
async fn slack_token_rotation_through_the_hub_is_sealed_and_survives_a_restart() {
    use crate::{NoServices, SignalHub};
    use causeway_store::{DuckDbSignals, SignalQuery};

    let grants = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&grants);
    let server = TestServer::start(move |r, base| {
        if r.path == "/oauth.v2.access" {
            g.fetch_add(1, SeqCst);
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let ct = vec![("content-type", "application/json; charset=utf-8".to_owned())];
            if form.get("refresh_token").map(String::as_str) != Some("xoxe-1-first")
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return (
                    200,
                    ct,
                    json!({"ok": false, "error": "invalid_refresh_token"}).to_string(),
                );
            }
            return (
                200,
                ct,
                json!({
                    "ok": true, "app_id": "A0KRD7HC3", "token_type": "bot",
                    "access_token": "xoxb-test", "refresh_token": "xoxe-1-second",
                    "expires_in": 43200, "scope": "channels:history,channels:read",
                    "bot_user_id": "U0BOT", "team": {"id": "T9TK3CUKW", "name": "Acme"},
                    "enterprise": null, "is_enterprise_install": false
                })
                .to_string(),
            );
        }
        crate::slack::tests::slack(r, base)
    })
    .await;
    let dir = std::env::temp_dir().join(format!("causeway-oauth-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).expect("write");
        p
    };
    let config: crate::config::ConnectorsConfig = serde_json::from_value(json!({
        "seal_key": {"file": file("seal.key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")},
        "sources": [{
            "name": "slack", "tenant": "acme", "type": "slack", "base_url": server.base,
            "channels": ["C0INCIDENT"], "workspace_url": "https://acme.slack.com",
            "oauth": {
                "token_url": format!("{}/oauth.v2.access", server.base),
                "client_id": "1234.5678",
                "client_secret": {"file": file("client", CLIENT_SECRET)},
                "refresh_token": {"file": file("refresh", "xoxe-1-first")}
            }
        }]
    }))
    .expect("config");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let db = dir.join("signals.duckdb");
    let _ = std::fs::remove_file(&db);
    for run in 0..2 {
        let hub = SignalHub::with_store(DuckDbSignals::open(&db).expect("store"), config.clone())
            .expect("hub");
        let (connectors, failed) = hub.connectors(policy());
        assert!(failed.is_empty(), "{failed:?}");
        let reports = hub.sync_once(&connectors, &NoServices).await;
        assert!(reports[0].1.failed.is_empty(), "run {run}: {reports:?}");
        let signals = hub
            .signals(&tenant(), &SignalQuery::default())
            .await
            .expect("signals");
        assert!(!signals.is_empty());
    }
    // One grant: the restarted hub used the sealed tokens, not the used-up
    // configured refresh token.
    assert_eq!(grants.load(SeqCst), 1);
    drop(server);
    let raw = std::fs::read(&db).expect("db file");
    for plain in [&b"xoxe-1-second"[..], b"xoxb-test"] {
        assert!(
            !raw.windows(plain.len()).any(|w| w == plain),
            "a token is stored in the clear"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oauth_blocks_are_checked() {
    let parse = |yaml: &str| -> crate::config::ConnectorsConfig {
        serde_yaml_ng::from_str(yaml).expect("parse")
    };
    let cfg = parse(
        r#"
sources:
  - { name: a, tenant: acme, type: jira, site: "https://x.atlassian.net", token: { env: T }, oauth: { client_id: c, refresh_token: { env: R } } }
  - { name: b, tenant: acme, type: pylon, token: { env: T }, oauth: { client_id: c } }
  - { name: c, tenant: acme, type: gitlab, projects: [x] }
  - { name: d, tenant: acme, type: gitlab, projects: [x], oauth: { client_id: c, token_url: "http://gitlab.example.com/oauth/token" } }
"#,
    );
    let p = cfg.problems();
    let has = |field: &str, words: &str| p.iter().any(|(f, m)| f == field && m.contains(words));
    assert!(has("connectors.sources[0].oauth", "not both"), "{p:?}");
    assert!(
        has("connectors.sources[1].oauth", "pylon has no OAuth"),
        "{p:?}"
    );
    assert!(has("connectors.sources[2].token", "required"), "{p:?}");
    assert!(
        has("connectors.sources[3].oauth.token_url", "https"),
        "{p:?}"
    );
    assert!(has("connectors.sources[3].oauth", "seal_key"), "{p:?}");
    let unknown: std::result::Result<crate::config::ConnectorsConfig, _> = serde_yaml_ng::from_str(
        "sources:\n  - { name: x, tenant: a, type: gitlab, projects: [], oauth: { client_id: c, password: p } }\n",
    );
    assert!(unknown.is_err());
}
