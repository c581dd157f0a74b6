//! Linear (GraphQL at `https://api.linear.app/graphql`): issues updated
//! since the cursor, Relay-paginated (`first`/`after`, `pageInfo`).
//!
//! The only POST of this connector, and it is a query: the HTTP layer
//! refuses a mutation. Auth: a personal API key goes raw in
//! `Authorization` (no `Bearer`); OAuth tokens use `Bearer`, scope `read`.
//! A throttled call is a GraphQL error with `extensions.code: RATELIMITED`
//! (seen with HTTP 400 as well as 429), so the body is checked too.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Connector, Item, Page, time};

mod config;
pub(crate) mod webhook;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "linear";

const ISSUES: &str = "query Issues($after: String, $since: DateTimeOrDuration!) {
  issues(first: 100, after: $after, orderBy: updatedAt, includeArchived: true,
         filter: { updatedAt: { gte: $since } }) {
    nodes { id identifier title description priority priorityLabel url createdAt updatedAt
            completedAt canceledAt state { name type } team { key } creator { name email }
            labels { nodes { name } } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Settings of one Linear connector.
#[derive(Debug, Clone)]
pub struct LinearSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// GraphQL endpoint (`https://api.linear.app/graphql`).
    pub url: String,
    /// The credential is an OAuth token (`Bearer`), not a personal key.
    pub oauth: bool,
}

/// The Linear connector.
#[derive(Debug)]
pub struct Linear {
    settings: LinearSettings,
    client: ReadOnlyClient,
}

impl Linear {
    /// A connector with a personal key or an OAuth token.
    pub fn new(settings: LinearSettings, key: Secret, policy: RetryPolicy) -> Result<Self> {
        let auth = if settings.oauth {
            Auth::Bearer(key)
        } else {
            Auth::Header {
                name: AUTHORIZATION,
                value: key,
            }
        };
        Self::with_auth(settings, auth, policy)
    }

    /// A connector with any [`Auth`] (an OAuth session that renews itself).
    pub fn with_auth(settings: LinearSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client =
            ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?.pinned_to(&settings.url)?;
        Ok(Self { settings, client })
    }

    async fn run<T: serde::de::DeserializeOwned>(&self, body: serde_json::Value) -> Result<T> {
        let resp = match self.client.query(&self.settings.url, &body).await {
            // Linear reports throttling in a 400's body.
            Err(Error::Upstream { message, url, .. }) if message.contains("RATELIMITED") => {
                return Err(Error::RateLimited {
                    system: SYSTEM,
                    url,
                    retry_after_s: 60,
                });
            }
            Err(Error::Upstream { message, url, .. })
                if message.contains("AUTHENTICATION_ERROR") =>
            {
                return Err(Error::Unauthorized {
                    system: SYSTEM,
                    status: 400,
                    url,
                    message,
                });
            }
            r => r?,
        };
        let answer: GraphQl<T> = resp.json(SYSTEM)?;
        if let Some(e) = answer.errors.first() {
            let code = e
                .extensions
                .as_ref()
                .and_then(|x| x.code.clone())
                .unwrap_or_default();
            return Err(match code.as_str() {
                "RATELIMITED" => Error::RateLimited {
                    system: SYSTEM,
                    url: self.settings.url.clone(),
                    retry_after_s: 60,
                },
                "AUTHENTICATION_ERROR" | "FORBIDDEN" => Error::Unauthorized {
                    system: SYSTEM,
                    status: resp.status,
                    url: self.settings.url.clone(),
                    message: e.message.clone(),
                },
                _ => Error::Upstream {
                    system: SYSTEM,
                    url: self.settings.url.clone(),
                    message: format!("{code} {}", e.message),
                },
            });
        }
        answer.data.ok_or_else(|| Error::Upstream {
            system: SYSTEM,
            url: self.settings.url.clone(),
            message: "no data and no errors".into(),
        })
    }
}

#[async_trait::async_trait]
impl Connector for Linear {
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
        let data: IssuesData = self
            .run(json!({
                "query": ISSUES,
                "variables": {"after": next, "since": time::rfc3339(since_ns)},
            }))
            .await?;
        let mut items = Vec::new();
        for n in data.issues.nodes {
            let created = time::parse_ns(&n.created_at).ok_or_else(|| Error::Upstream {
                system: SYSTEM,
                url: self.settings.url.clone(),
                message: format!("{}: createdAt unreadable", n.identifier),
            })?;
            let updated = time::parse_ns(&n.updated_at).unwrap_or(created);
            let team = n.team.map(|t| t.key);
            items.push(Item {
                signal: Signal {
                    url: n.url,
                    title: n.title,
                    body: excerpt(n.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS),
                    author: n.creator.map(|c| c.name),
                    updated_ns: updated,
                    repository: team.clone(),
                    status: n.state.map(|s| s.name),
                    ..Signal::new(
                        tenant,
                        SignalKind::Ticket,
                        &self.settings.name,
                        n.identifier,
                        created,
                    )
                },
                hints: Hints {
                    labels: n
                        .labels
                        .map(|l| l.nodes.into_iter().map(|x| x.name).collect())
                        .unwrap_or_default(),
                    project: team,
                    ..Hints::default()
                },
            });
        }
        let next = data
            .issues
            .page_info
            .has_next_page
            .then_some(data.issues.page_info.end_cursor)
            .flatten();
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let me: Viewer = self
            .run(json!({"query": "query { viewer { name email } }"}))
            .await?;
        Ok(vec![format!("signed in as {}", me.viewer.name)])
    }
}

#[derive(Deserialize)]
struct GraphQl<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    code: Option<String>,
}

#[derive(Deserialize)]
struct IssuesData {
    issues: Connection,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    nodes: Vec<Node>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct Labels {
    nodes: Vec<Named>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    identifier: String,
    title: String,
    description: Option<String>,
    url: Option<String>,
    created_at: String,
    updated_at: String,
    state: Option<Named>,
    team: Option<Key>,
    creator: Option<Named>,
    labels: Option<Labels>,
}

#[derive(Deserialize)]
struct ViewerData {
    name: String,
}

#[derive(Deserialize)]
struct Viewer {
    viewer: ViewerData,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};

    fn linear(r: &Seen, _base: &str) -> Answer {
        let ct = ("content-type", "application/json; charset=utf-8".to_owned());
        // Personal keys go raw, without Bearer.
        if r.header("authorization") != Some("lin_api_test") {
            return (
                400,
                vec![ct],
                json!({"errors": [{"message": "Authentication required, not authenticated",
                "extensions": {"type": "authentication error", "code": "AUTHENTICATION_ERROR"}}]})
                .to_string(),
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        let query = body["query"].as_str().unwrap_or_default();
        assert!(query.starts_with("query"), "{query}");
        if query.contains("viewer") {
            return (
                200,
                vec![ct],
                json!({"data": {"viewer": {"name": "causeway", "email": "bot@acme.com"}}})
                    .to_string(),
            );
        }
        let node = |id: &str, title: &str| {
            json!({
                "id": "9cfb482a-81e3-4154-b5b9-2c805e70a02d", "identifier": id, "title": title,
                "description": "Markdown body", "priority": 1, "priorityLabel": "Urgent",
                "url": format!("https://linear.app/acme/issue/{id}"),
                "createdAt": "2024-05-01T09:40:11.123Z", "updatedAt": "2024-05-01T10:05:00.456Z",
                "completedAt": null, "canceledAt": null, "state": {"name": "In Progress", "type": "started"},
                "team": {"key": "CART"}, "creator": {"name": "Ada L", "email": "ada@acme.com"},
                "labels": {"nodes": [{"name": "incident"}]}
            })
        };
        let page = match body["variables"]["after"].as_str() {
            None => json!({"data": {"issues": {"nodes": [node("CART-1", "Cart totals wrong")],
                "pageInfo": {"hasNextPage": true, "endCursor": "c1"}}}}),
            Some("c1") => json!({"data": {"issues": {"nodes": [node("CART-2", "Cart slow")],
                "pageInfo": {"hasNextPage": true, "endCursor": "c2"}}}}),
            Some("c2") => json!({"data": {"issues": {"nodes": [node("CART-3", "Cart empty")],
                "pageInfo": {"hasNextPage": false, "endCursor": "c3"}}}}),
            Some(_) => {
                json!({"errors": [{"message": "bad cursor", "extensions": {"code": "INVALID_INPUT"}}]})
            }
        };
        (
            200,
            vec![
                ct,
                ("x-ratelimit-requests-limit", "1500".to_owned()),
                ("x-ratelimit-requests-remaining", "1499".to_owned()),
            ],
            page.to_string(),
        )
    }

    #[tokio::test]
    async fn issues_page_by_relay_cursor_with_a_raw_key() {
        let server = TestServer::start(linear).await;
        let connector = |key: &str| {
            Linear::new(
                LinearSettings {
                    name: "linear".into(),
                    url: format!("{}/graphql", server.base),
                    oauth: false,
                },
                Secret::new(key),
                RetryPolicy::default(),
            )
            .expect("connector")
        };
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["cart".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(
            &connector("lin_api_test"),
            &tenant,
            &store,
            &mapper,
            SyncSettings::default(),
        )
        .await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 3);
        assert!(
            all.iter().all(|s| s.services == ["cart"]),
            "team key matched: {all:?}"
        );
        assert_read_only(&server.seen());
        let report = sync_connector(
            &connector("lin_api_wrong"),
            &tenant,
            &store,
            &mapper,
            SyncSettings::default(),
        )
        .await;
        assert!(
            report.failed[0].1.contains("credentials refused (400)"),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn conforms() {
        let make = |key: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Linear::new(
                        LinearSettings {
                            name: "linear".into(),
                            url: format!("{base}/graphql"),
                            oauth: false,
                        },
                        Secret::new(key),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(
            linear,
            make("lin_api_test"),
            make("lin_api_wrong"),
            "lin_api_wrong",
        )
        .await;
    }
}
