//! Pylon (`https://api.usepylon.com`, EU `https://api.eu.usepylon.com`):
//! support issues from `GET /issues?start_time=&end_time=&cursor=`.
//!
//! The window selects on creation time, must be at most 30 days, and an
//! issue has no `updated_at`: each pass re-reads a trailing window (at
//! least the last three days) so state changes of recent issues are seen,
//! and uses `latest_message_time` as the update time. Auth: a Bearer API
//! token (admin-created; Pylon has no read-only scope).

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt, html_text};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Connector, Item, Page, time};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "pylon";
const DAY_NS: i64 = 86_400_000_000_000;
/// The longest window Pylon accepts.
const MAX_WINDOW_NS: i64 = 30 * DAY_NS;
/// Issues created this recently are re-read every pass.
const TRAILING_NS: i64 = 3 * DAY_NS;

/// Settings of one Pylon connector.
#[derive(Debug, Clone)]
pub struct PylonSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root.
    pub base_url: String,
}

/// The Pylon connector.
#[derive(Debug)]
pub struct Pylon {
    settings: PylonSettings,
    client: ReadOnlyClient,
}

impl Pylon {
    /// A connector with an API token.
    pub fn new(settings: PylonSettings, token: Secret, policy: RetryPolicy) -> Result<Self> {
        let client = ReadOnlyClient::new(SYSTEM, Some(Auth::Bearer(token)), &[], policy)?
            .pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }
}

#[async_trait::async_trait]
impl Connector for Pylon {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        vec!["issues".into()]
    }

    async fn page(
        &self,
        tenant: &TenantId,
        _stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let now = time::now_ns();
        let start = since_ns
            .min(now - TRAILING_NS)
            .max(now - MAX_WINDOW_NS + 60_000_000_000);
        let mut url = format!(
            "{}/issues?start_time={}&end_time={}",
            self.settings.base_url,
            time::rfc3339(start),
            time::rfc3339(now)
        );
        if let Some(c) = next {
            url.push_str("&cursor=");
            url.push_str(&url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>());
        }
        let body: Issues = self.client.get(&url).await?.json(SYSTEM)?;
        let mut items = Vec::new();
        for i in body.data {
            let created = time::parse_ns(&i.created_at).ok_or_else(|| Error::Upstream {
                system: SYSTEM,
                url: format!("{}/issues", self.settings.base_url),
                message: format!("issue {}: created_at unreadable", i.number),
            })?;
            let updated = [
                i.latest_message_time.as_deref(),
                i.resolution_time.as_deref(),
            ]
            .into_iter()
            .flatten()
            .filter_map(time::parse_ns)
            .max()
            .unwrap_or(created);
            items.push(Item {
                signal: Signal {
                    url: i.link,
                    title: i.title.unwrap_or_default(),
                    body: excerpt(
                        &html_text(i.body_html.as_deref().unwrap_or("")),
                        BODY_EXCERPT_CHARS,
                    ),
                    author: i.requester.and_then(|r| r.email),
                    updated_ns: updated,
                    status: i.state,
                    ..Signal::new(
                        tenant,
                        SignalKind::Ticket,
                        &self.settings.name,
                        i.number.to_string(),
                        created,
                    )
                },
                hints: Hints {
                    labels: i.tags,
                    channel: i.slack.and_then(|s| s.channel_id),
                    ..Hints::default()
                },
            });
        }
        let next = if body.pagination.has_next_page {
            body.pagination.cursor.filter(|c| !c.is_empty())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let me: serde_json::Value = self
            .client
            .get(&format!("{}/me", self.settings.base_url))
            .await?
            .json(SYSTEM)?;
        Ok(vec![format!(
            "organization {}",
            me["data"]["name"].as_str().unwrap_or("?")
        )])
    }
}

#[derive(Deserialize)]
struct Requester {
    email: Option<String>,
}

#[derive(Deserialize)]
struct SlackRef {
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: Option<String>,
    body_html: Option<String>,
    state: Option<String>,
    link: Option<String>,
    created_at: String,
    latest_message_time: Option<String>,
    resolution_time: Option<String>,
    requester: Option<Requester>,
    #[serde(default)]
    tags: Vec<String>,
    slack: Option<SlackRef>,
}

#[derive(Deserialize)]
struct Pagination {
    cursor: Option<String>,
    has_next_page: bool,
}

#[derive(Deserialize)]
struct Issues {
    data: Vec<Issue>,
    pagination: Pagination,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn pylon(r: &Seen, _base: &str) -> Answer {
        let ct = ("content-type", "application/json".to_owned());
        if r.header("authorization") != Some("Bearer pylon-token") {
            return (
                401,
                vec![ct],
                json!({"errors": ["unauthorized"], "request_id": "x"}).to_string(),
            );
        }
        let start = r
            .q("start_time")
            .and_then(time::parse_ns)
            .expect("start_time");
        let end = r.q("end_time").and_then(time::parse_ns).expect("end_time");
        assert!(end - start <= MAX_WINDOW_NS, "window over 30 days");
        let issue = |n: u64, tags: &[&str]| {
            json!({
                "id": "d5b3c0b4", "number": n, "title": "Checkout failing for EU customers",
                "body_html": "<p>Since 09:40 UTC our users get a 500 at payment.</p>", "state": "waiting_on_you",
                "type": "Conversation", "source": "slack", "link": format!("https://app.usepylon.com/issues?issueNumber={n}"),
                "created_at": "2024-05-01T09:50:00Z", "latest_message_time": "2024-05-01T10:04:12Z",
                "first_response_time": "2024-05-01T09:55:30Z", "resolution_time": null,
                "account": {"id": "7a1c"}, "requester": {"id": "c0ff", "email": "ops@customer.com"},
                "tags": tags, "custom_fields": {"priority": {"value": "high"}},
                "slack": {"channel_id": "C0123ABCD", "message_ts": "1714557000.000100", "workspace_id": "T0123ABCD"}
            })
        };
        match (r.path.as_str(), r.q("cursor")) {
            ("/issues", None) => (200, vec![ct], json!({"data": [issue(1423, &["checkout"])],
                "pagination": {"cursor": "eyJpZCI6IjE0MjMifQ==", "has_next_page": true}, "request_id": "r1"}).to_string()),
            ("/issues", Some("eyJpZCI6IjE0MjMifQ==")) => (200, vec![ct], json!({"data": [issue(1424, &[])],
                "pagination": {"cursor": "eyJpZCI6IjE0MjQifQ==", "has_next_page": true}, "request_id": "r2"}).to_string()),
            ("/issues", Some("eyJpZCI6IjE0MjQifQ==")) => (200, vec![ct], json!({"data": [issue(1425, &[])],
                "pagination": {"cursor": "", "has_next_page": false}, "request_id": "r3"}).to_string()),
            _ => (404, vec![ct], json!({"errors": ["not found"]}).to_string()),
        }
    }

    #[tokio::test]
    async fn issues_are_read_in_a_bounded_window_by_cursor() {
        let server = TestServer::start(pylon).await;
        let p = Pylon::new(
            PylonSettings {
                name: "pylon".into(),
                base_url: server.base.clone(),
            },
            Secret::new("pylon-token"),
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["checkout".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        // A long-ago cursor still asks for at most 30 days.
        let settings = SyncSettings {
            lookback_ns: 90 * DAY_NS,
            ..SyncSettings::default()
        };
        let report = sync_connector(&p, &tenant, &store, &mapper, settings).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 3);
        let i = all.iter().find(|s| s.external_id == "1423").expect("issue");
        assert_eq!(i.body, "Since 09:40 UTC our users get a 500 at payment.");
        assert_eq!(i.services, ["checkout"]);
        assert_eq!(
            i.updated_ns,
            time::parse_ns("2024-05-01T10:04:12Z").expect("ts")
        );
        assert_read_only(&server.seen());
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Pylon::new(
                        PylonSettings {
                            name: "pylon".into(),
                            base_url: base.to_owned(),
                        },
                        Secret::new(token),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(
            pylon,
            make("pylon-token"),
            make("pylon-wrong"),
            "pylon-wrong",
        )
        .await;
    }
}
