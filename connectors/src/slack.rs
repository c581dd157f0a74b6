//! Slack (Web API): messages of the configured channels, incrementally by
//! `ts` with `conversations.history?oldest=`.
//!
//! Slack answers most errors with HTTP 200 and `{"ok": false, "error"}`,
//! so `ok` is always checked; rate limits are 429 with `Retry-After`.
//! Bot token scopes: `channels:history`, `groups:history` (private
//! channels) and `channels:read`; the bot must be a member of each channel.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Connector, Item, Page, time};

mod config;
pub(crate) mod webhook;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "slack";

/// Settings of one Slack connector.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root (`https://slack.com/api`).
    pub base_url: String,
    /// Workspace URL for message links (`https://acme.slack.com`).
    pub workspace_url: String,
    /// Channel ids (`C0123…`).
    pub channels: Vec<String>,
}

/// The Slack connector.
#[derive(Debug)]
pub struct Slack {
    settings: SlackSettings,
    client: ReadOnlyClient,
}

impl Slack {
    /// A connector authenticating with a bot token (`xoxb-…`).
    pub fn new(settings: SlackSettings, token: Secret, policy: RetryPolicy) -> Result<Self> {
        Self::with_auth(settings, Auth::Bearer(token), policy)
    }

    /// A connector with any [`Auth`] (an OAuth session for rotating
    /// tokens, `xoxe.xoxb-`).
    pub fn with_auth(settings: SlackSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client =
            ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?.pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    /// Reads a Web API answer, turning `ok: false` into the right error.
    fn check_ok(&self, url: &str, ok: bool, error: Option<String>) -> Result<()> {
        if ok {
            return Ok(());
        }
        let error = error.unwrap_or_else(|| "unknown_error".into());
        let url = url.split('?').next().unwrap_or(url).to_owned();
        Err(match error.as_str() {
            "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked"
            | "token_expired" | "missing_scope" | "no_permission" => Error::Unauthorized {
                system: SYSTEM,
                status: 200,
                url,
                message: error,
            },
            "not_in_channel" | "channel_not_found" => Error::Config {
                connector: self.settings.name.clone(),
                message: format!("{error}: invite the bot to the channel or fix its id"),
            },
            _ => Error::Upstream {
                system: SYSTEM,
                url,
                message: error,
            },
        })
    }
}

/// `1714557845.123456` → `p1714557845123456`, the permalink form.
fn permalink_ts(ts: &str) -> String {
    format!("p{}", ts.replace('.', ""))
}

#[async_trait::async_trait]
impl Connector for Slack {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        self.settings
            .channels
            .iter()
            .map(|c| format!("messages:{c}"))
            .collect()
    }

    async fn page(
        &self,
        tenant: &TenantId,
        stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let channel = stream
            .strip_prefix("messages:")
            .ok_or_else(|| Error::Config {
                connector: self.settings.name.clone(),
                message: format!("unknown stream {stream}"),
            })?;
        let oldest = format!(
            "{}.{:06}",
            since_ns.div_euclid(1_000_000_000),
            since_ns.rem_euclid(1_000_000_000) / 1000
        );
        let mut url = format!(
            "{}/conversations.history?channel={channel}&oldest={oldest}&inclusive=false&limit=200",
            self.settings.base_url
        );
        if let Some(cursor) = next {
            url.push_str("&cursor=");
            url.push_str(
                &url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>(),
            );
        }
        let resp = self.client.get(&url).await?;
        let body: History = resp.json(SYSTEM)?;
        self.check_ok(&url, body.ok, body.error)?;
        let mut items = Vec::new();
        for m in body.messages {
            // Joins, topic changes and the like are not what people said.
            if m.subtype
                .as_deref()
                .is_some_and(|s| s != "bot_message" && s != "thread_broadcast")
            {
                continue;
            }
            let Some(at) = time::slack_ts_ns(&m.ts) else {
                return Err(Error::Upstream {
                    system: SYSTEM,
                    url: url.split('?').next().unwrap_or(&url).to_owned(),
                    message: format!("message ts {:?} unreadable", m.ts),
                });
            };
            let text = m.text.unwrap_or_default();
            items.push(Item {
                signal: Signal {
                    url: Some(format!(
                        "{}/archives/{channel}/{}",
                        self.settings.workspace_url,
                        permalink_ts(&m.ts)
                    )),
                    title: excerpt(text.lines().next().unwrap_or(""), 300),
                    body: excerpt(&text, BODY_EXCERPT_CHARS),
                    author: m.user.or(m.username),
                    ..Signal::new(
                        tenant,
                        SignalKind::Message,
                        &self.settings.name,
                        format!("{channel}:{}", m.ts),
                        at,
                    )
                },
                hints: Hints {
                    channel: Some(channel.to_owned()),
                    ..Hints::default()
                },
            });
        }
        let next = body
            .response_metadata
            .and_then(|m| m.next_cursor)
            .filter(|c| !c.is_empty());
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let url = format!("{}/auth.test", self.settings.base_url);
        let who: AuthTest = self.client.get(&url).await?.json(SYSTEM)?;
        self.check_ok(&url, who.ok, who.error)?;
        let mut out = vec![format!(
            "signed in as {} in {}",
            who.user.unwrap_or_default(),
            who.team.unwrap_or_default()
        )];
        for channel in &self.settings.channels {
            let url = format!(
                "{}/conversations.info?channel={channel}",
                self.settings.base_url
            );
            let info: Info = self.client.get(&url).await?.json(SYSTEM)?;
            self.check_ok(&url, info.ok, info.error)?;
            let c = info.channel.unwrap_or_default();
            out.push(format!(
                "#{}: {}",
                c.name.unwrap_or_else(|| channel.clone()),
                if c.is_member.unwrap_or(false) {
                    "readable"
                } else {
                    "the bot is not a member"
                }
            ));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Message {
    ts: String,
    text: Option<String>,
    user: Option<String>,
    username: Option<String>,
    subtype: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct History {
    ok: bool,
    error: Option<String>,
    #[serde(default)]
    messages: Vec<Message>,
    response_metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct AuthTest {
    ok: bool,
    error: Option<String>,
    user: Option<String>,
    team: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChannelInfo {
    name: Option<String>,
    is_member: Option<bool>,
}

#[derive(Deserialize)]
struct Info {
    ok: bool,
    error: Option<String>,
    channel: Option<ChannelInfo>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use crate::{MappingRule, ServiceMapper};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    /// Slack's Web API as the tests see it: `xoxb-test` is the good token.
    pub(crate) fn slack(r: &Seen, _base: &str) -> Answer {
        let ct = vec![("content-type", "application/json; charset=utf-8".to_owned())];
        if r.header("authorization") != Some("Bearer xoxb-test") {
            // Slack's way: HTTP 200, ok false.
            return (
                200,
                ct,
                json!({"ok": false, "error": "invalid_auth"}).to_string(),
            );
        }
        match (r.path.as_str(), r.q("channel")) {
            ("/conversations.history", Some("C0INCIDENT")) => {
                assert_eq!(r.q("inclusive"), Some("false"));
                assert!(r.q("oldest").is_some_and(|o| o.contains('.')));
                match r.q("cursor") {
                    None => (200, ct, json!({
                        "ok": true,
                        "messages": [
                            {"type": "message", "user": "U012AB3CDE", "text": "Rolled back checkout-svc v2.3.1, error rate recovering",
                             "ts": "1714557845.123456", "thread_ts": "1714557845.123456", "reply_count": 3},
                            {"type": "message", "subtype": "channel_join", "user": "U0BOT", "text": "<@U0BOT> has joined the channel", "ts": "1714557800.000100"}
                        ],
                        "has_more": true, "pin_count": 0,
                        "response_metadata": {"next_cursor": "bmV4dF90czoxNzE0NTU3MDAwMTIzNDU2"}
                    }).to_string()),
                    Some("bmV4dF90czoxNzE0NTU3MDAwMTIzNDU2") => (200, ct, json!({
                        "ok": true,
                        "messages": [{"type": "message", "user": "U099", "text": "checkout p99 is 4s\nlooking", "ts": "1714557000.123456"}],
                        "has_more": true, "response_metadata": {"next_cursor": "bmV4dF90czoxNzE0NTU2MDAw"}
                    }).to_string()),
                    Some("bmV4dF90czoxNzE0NTU2MDAw") => (200, ct, json!({
                        "ok": true,
                        "messages": [{"type": "message", "user": "U077", "text": "deploying checkout v2.3.1", "ts": "1714556000.000200"}],
                        "has_more": false, "response_metadata": {"next_cursor": ""}
                    }).to_string()),
                    Some(_) => (200, ct, json!({"ok": false, "error": "invalid_cursor"}).to_string()),
                }
            }
            ("/conversations.history", _) => (
                200,
                ct,
                json!({"ok": false, "error": "not_in_channel"}).to_string(),
            ),
            _ => (404, ct, "{}".into()),
        }
    }

    #[tokio::test]
    async fn channels_page_by_cursor_and_errors_in_200s_are_errors() {
        let server = TestServer::start(slack).await;
        let connector = |token: &str| {
            Slack::new(
                SlackSettings {
                    name: "slack".into(),
                    base_url: server.base.clone(),
                    workspace_url: "https://acme.slack.com".into(),
                    channels: vec!["C0INCIDENT".into(), "C0OTHER".into()],
                },
                Secret::new(token),
                RetryPolicy::default(),
            )
            .expect("connector")
        };
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(
            vec![MappingRule {
                channel: Some("C0INCIDENT".into()),
                services: vec!["checkout".into()],
                ..MappingRule::default()
            }],
            Vec::new(),
        );
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(
            &connector("xoxb-test"),
            &tenant,
            &store,
            &mapper,
            SyncSettings::default(),
        )
        .await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].1.contains("not_in_channel"), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 3, "joins are not messages: {all:?}");
        let m = &all[0];
        assert_eq!(m.external_id, "C0INCIDENT:1714557845.123456");
        assert_eq!(
            m.url.as_deref(),
            Some("https://acme.slack.com/archives/C0INCIDENT/p1714557845123456")
        );
        assert_eq!(m.services, ["checkout"]);
        assert_eq!(all[1].title, "checkout p99 is 4s");
        assert_read_only(&server.seen());

        let report = sync_connector(
            &connector("xoxb-wrong"),
            &tenant,
            &store,
            &mapper,
            SyncSettings::default(),
        )
        .await;
        assert!(
            report
                .failed
                .iter()
                .all(|(_, e)| e.contains("credentials refused") && e.contains("invalid_auth")),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Slack::new(
                        SlackSettings {
                            name: "slack".into(),
                            base_url: base.to_owned(),
                            workspace_url: "https://acme.slack.com".into(),
                            channels: vec!["C0INCIDENT".into()],
                        },
                        Secret::new(token),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(slack, make("xoxb-test"), make("xoxb-wrong"), "xoxb-wrong")
            .await;
    }
}
