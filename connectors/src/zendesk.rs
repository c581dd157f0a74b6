//! Zendesk Support: tickets (incidents are tickets with `type: incident`)
//! from the incremental cursor export,
//! `GET /api/v2/incremental/tickets/cursor.json?start_time=` then
//! `?cursor=after_cursor` until `end_of_stream`.
//!
//! Auth: `Basic {email}/token:{api_token}` or an OAuth Bearer token with
//! the `read` scope. The incremental API allows 10 requests a minute, and
//! excludes what changed in the last minute (the sync's overlap re-reads it).

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::{Connector, Item, Page, time};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "zendesk";

/// Settings of one Zendesk connector.
#[derive(Debug, Clone)]
pub struct ZendeskSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// `https://SUBDOMAIN.zendesk.com`.
    pub base_url: String,
}

/// The Zendesk connector.
#[derive(Debug)]
pub struct Zendesk {
    settings: ZendeskSettings,
    client: ReadOnlyClient,
}

impl Zendesk {
    /// A connector; for API tokens, `Auth::Basic` with user `{email}/token`.
    pub fn new(settings: ZendeskSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client =
            ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?.pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }
}

#[async_trait::async_trait]
impl Connector for Zendesk {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        vec!["tickets".into()]
    }

    async fn page(
        &self,
        tenant: &TenantId,
        _stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let root = format!(
            "{}/api/v2/incremental/tickets/cursor.json",
            self.settings.base_url
        );
        let url = match next {
            Some(cursor) => format!(
                "{root}?cursor={}",
                url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
            ),
            None => {
                // A start time within the last minute is refused.
                let latest = time::now_ns() / 1_000_000_000 - 61;
                format!(
                    "{root}?start_time={}&per_page=1000",
                    (since_ns / 1_000_000_000).min(latest)
                )
            }
        };
        let resp = self.client.get(&url).await?;
        let body: Export = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        for t in body.tickets {
            let created = t
                .created_at
                .as_deref()
                .and_then(time::parse_ns)
                .ok_or_else(|| Error::Upstream {
                    system: SYSTEM,
                    url: root.clone(),
                    message: format!("ticket {}: created_at unreadable", t.id),
                })?;
            let updated = t
                .updated_at
                .as_deref()
                .and_then(time::parse_ns)
                .unwrap_or(created);
            items.push(Item {
                signal: Signal {
                    tenant: tenant.clone(),
                    kind: SignalKind::Ticket,
                    source: self.settings.name.clone(),
                    external_id: t.id.to_string(),
                    url: Some(format!("{}/agent/tickets/{}", self.settings.base_url, t.id)),
                    title: t.subject.unwrap_or_default(),
                    body: excerpt(t.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS),
                    author: t.requester_id.map(|r| r.to_string()),
                    created_ns: created,
                    updated_ns: updated,
                    repository: None,
                    changed_paths: Vec::new(),
                    services: Vec::new(),
                    // `incident`, `problem`, `question`, `task`.
                    status: match (t.status, t.r#type) {
                        (Some(s), Some(k)) => Some(format!("{s} {k}")),
                        (s, _) => s,
                    },
                    version: None,
                    commit: None,
                },
                hints: Hints {
                    labels: t.tags,
                    ..Hints::default()
                },
            });
        }
        let next = if body.end_of_stream {
            None
        } else {
            body.after_cursor
        };
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let me: Me = self
            .client
            .get(&format!("{}/api/v2/users/me.json", self.settings.base_url))
            .await?
            .json(SYSTEM)?;
        Ok(vec![format!(
            "signed in as {} ({})",
            me.user.name, me.user.role
        )])
    }
}

#[derive(Deserialize)]
struct Ticket {
    id: u64,
    subject: Option<String>,
    description: Option<String>,
    status: Option<String>,
    r#type: Option<String>,
    requester_id: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct Export {
    #[serde(default)]
    tickets: Vec<Ticket>,
    after_cursor: Option<String>,
    end_of_stream: bool,
}

#[derive(Deserialize)]
struct User {
    name: String,
    role: String,
}

#[derive(Deserialize)]
struct Me {
    user: User,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use crate::{MappingRule, ServiceMapper};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn zendesk(r: &Seen, base: &str) -> Answer {
        let ct = ("content-type", "application/json; charset=utf-8".to_owned());
        // Basic base64("ops@acme.com/token:zd-token").
        if r.header("authorization") != Some("Basic b3BzQGFjbWUuY29tL3Rva2VuOnpkLXRva2Vu") {
            return (
                401,
                vec![ct],
                json!({"error": "Couldn't authenticate you"}).to_string(),
            );
        }
        let ticket = |id: u64, subject: &str, tags: &[&str]| {
            json!({
                "id": id, "url": format!("{base}/api/v2/tickets/{id}.json"), "subject": subject,
                "description": "Since 09:40 UTC customers see an error at payment", "status": "open",
                "priority": "urgent", "type": "incident", "requester_id": 20978392, "assignee_id": 235323,
                "organization_id": 509974, "tags": tags, "via": {"channel": "web"},
                "created_at": "2024-05-01T09:44:02Z", "updated_at": "2024-05-01T10:03:51Z", "generated_timestamp": 1714557831
            })
        };
        match (r.path.as_str(), r.q("start_time"), r.q("cursor")) {
            ("/api/v2/incremental/tickets/cursor.json", Some(_), None) => (200, vec![ct, ("x-rate-limit", "10".into()), ("x-rate-limit-remaining", "9".into())], json!({
                "tickets": [ticket(35436, "Checkout page returns 500", &["checkout", "outage"])],
                "after_url": format!("{base}/api/v2/incremental/tickets/cursor.json?cursor=MTU4MDc1Mzc5OC4wfHw0MzJ8"),
                "after_cursor": "MTU4MDc1Mzc5OC4wfHw0MzJ8", "before_url": null, "before_cursor": null, "end_of_stream": false
            }).to_string()),
            ("/api/v2/incremental/tickets/cursor.json", None, Some("MTU4MDc1Mzc5OC4wfHw0MzJ8")) => (200, vec![ct], json!({
                "tickets": [ticket(35437, "Payment fails", &["payments"])],
                "after_url": format!("{base}/api/v2/incremental/tickets/cursor.json?cursor=MTU4MDc1Mzc5OC4wfHw0MzN8"),
                "after_cursor": "MTU4MDc1Mzc5OC4wfHw0MzN8", "before_url": null, "before_cursor": null, "end_of_stream": false
            }).to_string()),
            ("/api/v2/incremental/tickets/cursor.json", None, Some("MTU4MDc1Mzc5OC4wfHw0MzN8")) => (200, vec![ct], json!({
                "tickets": [ticket(35438, "Refund missing", &[])],
                "after_url": format!("{base}/api/v2/incremental/tickets/cursor.json?cursor=MTU4MDc1Mzc5OC4wfHw0MzR8"),
                "after_cursor": "MTU4MDc1Mzc5OC4wfHw0MzR8", "before_url": null, "before_cursor": null, "end_of_stream": true
            }).to_string()),
            ("/api/v2/users/me.json", _, _) => (200, vec![ct], json!({"user": {"id": 1, "name": "causeway", "role": "agent"}}).to_string()),
            _ => (404, vec![ct], json!({"error": "InvalidEndpoint"}).to_string()),
        }
    }

    #[tokio::test]
    async fn incremental_export_follows_the_cursor_to_the_end_of_stream() {
        let server = TestServer::start(zendesk).await;
        let zd = Zendesk::new(
            ZendeskSettings {
                name: "zendesk".into(),
                base_url: server.base.clone(),
            },
            Auth::Basic {
                user: "ops@acme.com/token".into(),
                password: Secret::new("zd-token"),
            },
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(
            vec![MappingRule {
                label: Some("payments".into()),
                services: vec!["payments-api".into()],
                ..MappingRule::default()
            }],
            ["checkout".to_owned()],
        );
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&zd, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 3);
        let t = all
            .iter()
            .find(|s| s.external_id == "35436")
            .expect("ticket");
        assert_eq!(
            t.url.as_deref(),
            Some(format!("{}/agent/tickets/35436", server.base).as_str())
        );
        assert_eq!(t.services, ["checkout"]);
        assert_eq!(t.status.as_deref(), Some("open incident"));
        assert_eq!(
            all.iter()
                .find(|s| s.external_id == "35437")
                .expect("t")
                .services,
            ["payments-api"]
        );
        assert_read_only(&server.seen());
        assert!(zd.check().await.expect("check")[0].contains("causeway"));
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Zendesk::new(
                        ZendeskSettings {
                            name: "zendesk".into(),
                            base_url: base.to_owned(),
                        },
                        Auth::Basic {
                            user: "ops@acme.com/token".into(),
                            password: Secret::new(token),
                        },
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(zendesk, make("zd-token"), make("zd-wrong"), "zd-wrong")
            .await;
    }
}
