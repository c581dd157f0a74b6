//! Jira Cloud (REST v3): issues by JQL, incrementally on `updated`.
//!
//! `GET /rest/api/3/search/jql` with `nextPageToken` / `isLast` pagination
//! (the old `/search` with `startAt` is gone). JQL dates have minute
//! precision in the API user's time zone: the sync's overlap covers it,
//! and records read twice replace themselves.
//!
//! Auth: `Basic email:api_token` at `https://SITE.atlassian.net`, or a
//! Bearer token (OAuth 2.0, scoped tokens) at
//! `https://api.atlassian.com/ex/jira/{cloudId}`. Read scope:
//! `read:jira-work`.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::{Connector, Item, Page, time};

mod config;
pub(crate) mod webhook;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "jira";
const FIELDS: &str = "summary,description,status,priority,issuetype,created,updated,reporter,assignee,components,labels,project";

/// Settings of one Jira connector.
#[derive(Debug, Clone)]
pub struct JiraSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root: `https://SITE.atlassian.net` or
    /// `https://api.atlassian.com/ex/jira/{cloudId}`.
    pub base_url: String,
    /// Browse root for links (`https://SITE.atlassian.net`).
    pub browse_url: String,
    /// Which issues (`project = OPS`); the time condition is added.
    pub jql: String,
}

/// The Jira connector.
#[derive(Debug)]
pub struct Jira {
    settings: JiraSettings,
    client: ReadOnlyClient,
}

impl Jira {
    /// A connector authenticating with `auth` (Basic or Bearer).
    pub fn new(settings: JiraSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        if settings.jql.to_ascii_lowercase().contains("order by") {
            return Err(Error::Config {
                connector: settings.name.clone(),
                message: "jql must not have ORDER BY (the sync orders by updated)".into(),
            });
        }
        let client = ReadOnlyClient::new(
            SYSTEM,
            Some(auth),
            &[("accept", "application/json")],
            policy,
        )?
        .pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    fn url(&self, since_ns: i64, token: Option<&str>) -> Result<String> {
        let filter = if self.settings.jql.trim().is_empty() {
            String::new()
        } else {
            format!("({}) AND ", self.settings.jql)
        };
        let jql = format!(
            "{filter}updated >= \"{}\" ORDER BY updated ASC",
            time::jql_minute(since_ns)
        );
        let mut u = url::Url::parse(&format!("{}/rest/api/3/search/jql", self.settings.base_url))
            .map_err(|e| Error::Config {
            connector: self.settings.name.clone(),
            message: format!("base_url: {e}"),
        })?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("jql", &jql)
                .append_pair("fields", FIELDS)
                .append_pair("maxResults", "100");
            if let Some(t) = token {
                q.append_pair("nextPageToken", t);
            }
        }
        Ok(u.to_string())
    }
}

/// The text of an Atlassian Document Format node (v3 descriptions), or a
/// plain string (v2).
pub fn adf_text(v: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => out.push_str(s),
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::String(t)) = o.get("text") {
                    out.push_str(t);
                }
                if let Some(serde_json::Value::Array(children)) = o.get("content") {
                    for c in children {
                        walk(c, out);
                    }
                    // Block nodes end a line.
                    if o.get("type").and_then(|t| t.as_str()) != Some("text")
                        && !out.ends_with('\n')
                    {
                        out.push('\n');
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    walk(v, &mut out);
    out.trim().to_owned()
}

#[async_trait::async_trait]
impl Connector for Jira {
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
        let url = self.url(since_ns, next)?;
        let resp = self.client.get(&url).await?;
        let body: SearchResults = resp.json(SYSTEM)?;
        let bad = |m: String| Error::Upstream {
            system: SYSTEM,
            url: format!("{}/rest/api/3/search/jql", self.settings.base_url),
            message: m,
        };
        let mut items = Vec::with_capacity(body.issues.len());
        for issue in body.issues {
            let f = issue
                .fields
                .ok_or_else(|| bad(format!("issue {} has no fields", issue.key)))?;
            let created = f
                .created
                .as_deref()
                .and_then(time::parse_ns)
                .ok_or_else(|| {
                    bad(format!(
                        "issue {}: created missing or unreadable",
                        issue.key
                    ))
                })?;
            let updated = f
                .updated
                .as_deref()
                .and_then(time::parse_ns)
                .unwrap_or(created);
            let project = f
                .project
                .map(|p| p.key)
                .or_else(|| issue.key.split('-').next().map(str::to_owned));
            let components: Vec<String> = f.components.into_iter().map(|c| c.name).collect();
            items.push(Item {
                signal: Signal {
                    url: Some(format!("{}/browse/{}", self.settings.browse_url, issue.key)),
                    title: f.summary.unwrap_or_default(),
                    body: excerpt(
                        &f.description.as_ref().map(adf_text).unwrap_or_default(),
                        BODY_EXCERPT_CHARS,
                    ),
                    author: f.reporter.and_then(|r| r.display_name),
                    updated_ns: updated,
                    repository: project.clone(),
                    status: f.status.map(|s| s.name),
                    ..Signal::new(
                        tenant,
                        SignalKind::Ticket,
                        &self.settings.name,
                        issue.key.clone(),
                        created,
                    )
                },
                hints: Hints {
                    components,
                    labels: f.labels,
                    project,
                    ..Hints::default()
                },
            });
        }
        let next = match (body.is_last, body.next_page_token) {
            (Some(true), _) | (_, None) => None,
            (_, Some(t)) if t.is_empty() => None,
            (_, Some(t)) => Some(t),
        };
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let me: Myself = self
            .client
            .get(&format!("{}/rest/api/3/myself", self.settings.base_url))
            .await?
            .json(SYSTEM)?;
        let page = self
            .page(&TenantId::default_tenant(), "issues", time::now_ns(), None)
            .await?;
        Ok(vec![format!(
            "signed in as {}; the JQL reads ({} issue(s) updated in the last minute)",
            me.display_name.unwrap_or_else(|| "?".into()),
            page.items.len()
        )])
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchResults {
    #[serde(default)]
    issues: Vec<JiraIssue>,
    next_page_token: Option<String>,
    is_last: Option<bool>,
}

#[derive(Deserialize)]
struct JiraIssue {
    key: String,
    fields: Option<Fields>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct ProjectRef {
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct Fields {
    summary: Option<String>,
    description: Option<serde_json::Value>,
    status: Option<Named>,
    created: Option<String>,
    updated: Option<String>,
    reporter: Option<UserRef>,
    project: Option<ProjectRef>,
    #[serde(default)]
    components: Vec<Named>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Myself {
    display_name: Option<String>,
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

    fn issue(key: &str, summary: &str, component: &str, updated: &str) -> serde_json::Value {
        json!({
            "id": "10068", "key": key,
            "self": format!("https://acme.atlassian.net/rest/api/3/issue/{key}"),
            "fields": {
                "summary": summary,
                "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph",
                    "content": [{"type": "text", "text": "p99 > 2s since 09:40 UTC"}]}]},
                "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
                "priority": {"name": "High", "id": "2"},
                "issuetype": {"name": "Bug"},
                "project": {"key": "OPS", "name": "Operations"},
                "components": [{"id": "1", "name": component}],
                "labels": ["customer-impact"],
                "created": "2024-05-01T09:45:12.000+0000",
                "updated": updated,
                "reporter": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
                "assignee": null
            }
        })
    }

    fn jira(r: &Seen, _base: &str) -> Answer {
        let json_ct = vec![("content-type", "application/json".to_owned())];
        // Basic base64("ops@acme.com:atl-token").
        if r.header("authorization") != Some("Basic b3BzQGFjbWUuY29tOmF0bC10b2tlbg==") {
            return (401, json_ct, json!({"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}}).to_string());
        }
        match r.path.as_str() {
            "/rest/api/3/search/jql" => {
                let jql = r.q("jql").unwrap_or_default();
                assert!(
                    jql.starts_with("(project = OPS) AND updated >= \""),
                    "{jql}"
                );
                assert!(jql.ends_with("ORDER BY updated ASC"), "{jql}");
                assert!(r.q("fields").is_some_and(|f| f.contains("summary")));
                match r.q("nextPageToken") {
                    None => (200, json_ct, json!({
                        "issues": [issue("OPS-41", "Checkout latency spike", "Checkout", "2024-05-01T10:02:33.120+0000")],
                        "nextPageToken": "CAEaAggD", "isLast": false
                    }).to_string()),
                    Some("CAEaAggD") => (200, json_ct, json!({
                        "issues": [issue("OPS-42", "Payments timeouts", "Payments", "2024-05-01T10:05:00.000+0000")],
                        "nextPageToken": "CAEaAggE", "isLast": false
                    }).to_string()),
                    Some("CAEaAggE") => (200, json_ct, json!({
                        "issues": [issue("OPS-43", "Checkout retries", "Checkout", "2024-05-01T10:04:00.000+0000")],
                        "isLast": true
                    }).to_string()),
                    Some(_) => (400, json_ct, json!({"errorMessages": ["Invalid nextPageToken"]}).to_string()),
                }
            }
            "/rest/api/3/myself" => (
                200,
                json_ct,
                json!({"accountId": "x", "displayName": "causeway bot"}).to_string(),
            ),
            // The removed endpoint, as Jira answers it now.
            "/rest/api/3/search" => (
                410,
                json_ct,
                json!({"errorMessages": ["The requested API has been removed."]}).to_string(),
            ),
            _ => (404, json_ct, "{}".into()),
        }
    }

    #[tokio::test]
    async fn jql_pages_map_components_to_services() {
        let server = TestServer::start(jira).await;
        let connector = Jira::new(
            JiraSettings {
                name: "jira".into(),
                base_url: server.base.clone(),
                browse_url: "https://acme.atlassian.net".into(),
                jql: "project = OPS".into(),
            },
            Auth::Basic {
                user: "ops@acme.com".into(),
                password: Secret::new("atl-token"),
            },
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(
            vec![MappingRule {
                component: Some("Payments".into()),
                services: vec!["payments-api".into()],
                ..MappingRule::default()
            }],
            ["checkout".to_owned()],
        );
        let tenant = TenantId::new("acme").expect("tenant");
        // Read back far enough for the 2024 records.
        let settings = SyncSettings {
            lookback_ns: 20 * 365 * 86_400_000_000_000,
            ..SyncSettings::default()
        };
        let report = sync_connector(&connector, &tenant, &store, &mapper, settings).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!((report.pages, report.new), (3, 3));
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        let ops41 = all
            .iter()
            .find(|s| s.external_id == "OPS-41")
            .expect("OPS-41");
        assert_eq!(
            ops41.url.as_deref(),
            Some("https://acme.atlassian.net/browse/OPS-41")
        );
        assert_eq!(ops41.body, "p99 > 2s since 09:40 UTC");
        assert_eq!(ops41.status.as_deref(), Some("In Progress"));
        assert_eq!(ops41.services, ["checkout"], "component matched by name");
        let ops42 = all
            .iter()
            .find(|s| s.external_id == "OPS-42")
            .expect("OPS-42");
        assert_eq!(ops42.services, ["payments-api"], "explicit rule");
        // The cursor is the newest update seen, not the time of the sync.
        let cursor = store
            .lock()
            .await
            .cursor(&tenant, "jira", "issues")
            .expect("c")
            .expect("set");
        assert!(
            cursor.contains(
                &time::parse_ns("2024-05-01T10:05:00Z")
                    .expect("ts")
                    .to_string()
            ),
            "{cursor}"
        );
        assert_read_only(&server.seen());
        assert!(connector.check().await.expect("check")[0].contains("causeway bot"));
    }

    #[test]
    fn adf_descriptions_become_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "First "}, {"type": "text", "text": "line"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Second"}]}
        ]});
        assert_eq!(adf_text(&doc), "First line\nSecond");
        assert_eq!(adf_text(&json!("plain v2")), "plain v2");
    }

    #[tokio::test]
    async fn conforms() {
        let make = |password: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Jira::new(
                        JiraSettings {
                            name: "jira".into(),
                            base_url: base.to_owned(),
                            browse_url: "https://acme.atlassian.net".into(),
                            jql: "project = OPS".into(),
                        },
                        Auth::Basic {
                            user: "ops@acme.com".into(),
                            password: Secret::new(password),
                        },
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(jira, make("atl-token"), make("atl-wrong"), "atl-wrong")
            .await;
    }
}
