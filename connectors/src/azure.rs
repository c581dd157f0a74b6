//! Azure DevOps Services: commits with their changed paths, completed pull
//! requests, and work items changed since the cursor.
//!
//! `https://dev.azure.com/{org}/{project}/_apis/…?api-version=7.1`, paged
//! with `$top`/`$skip` (a short page ends the pass). Work items take a
//! WIQL query (a POST that only reads; `timePrecision=true`, or dates
//! compare by day) and then one GET for their fields.
//! Auth: a PAT as `Basic :PAT` with Code (Read) and Work Items (Read), or
//! an Entra ID Bearer token.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt, html_text};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::{Connector, Item, Page, time};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "azure_devops";
const API: &str = "api-version=7.1";

/// Settings of one Azure DevOps connector.
#[derive(Debug, Clone)]
pub struct AzureDevOpsSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// `https://dev.azure.com/{org}/{project}`.
    pub base_url: String,
    /// Repository names or ids.
    pub repositories: Vec<String>,
    /// Read work items too.
    pub work_items: bool,
    /// Commits whose changes are fetched per page at most.
    pub max_commit_details: usize,
    /// `$top`: records per page (at most 100 is polite).
    pub page_size: usize,
}

/// The Azure DevOps connector.
#[derive(Debug)]
pub struct AzureDevOps {
    settings: AzureDevOpsSettings,
    client: ReadOnlyClient,
}

impl AzureDevOps {
    /// A connector; for a PAT, `Auth::Basic` with an empty user.
    pub fn new(settings: AzureDevOpsSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client = ReadOnlyClient::new(
            SYSTEM,
            Some(auth),
            &[("accept", "application/json")],
            policy,
        )?
        .pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    fn bad(&self, what: String) -> Error {
        Error::Upstream {
            system: SYSTEM,
            url: self.settings.base_url.clone(),
            message: what,
        }
    }

    fn signal(
        &self,
        tenant: &TenantId,
        kind: SignalKind,
        id: String,
        repo: Option<&str>,
    ) -> Signal {
        let mut s = Signal::new(tenant, kind, &self.settings.name, id, 0);
        s.repository = repo.map(str::to_owned);
        s
    }

    async fn work_items(&self, tenant: &TenantId, since_ns: i64) -> Result<Page> {
        let base = &self.settings.base_url;
        let wiql = format!(
            "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project AND [System.ChangedDate] >= '{}' ORDER BY [System.ChangedDate] ASC",
            time::rfc3339(since_ns)
        );
        let found: Wiql = self
            .client
            .query(
                &format!("{base}/_apis/wit/wiql?timePrecision=true&{API}"),
                &json!({ "query": wiql }),
            )
            .await?
            .json(SYSTEM)?;
        let mut items = Vec::new();
        // Fields for at most 200 ids a call.
        for ids in found.work_items.chunks(200) {
            let list: String = ids
                .iter()
                .map(|w| w.id.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let got: List<WorkItem> = self
                .client
                .get(&format!(
                    "{base}/_apis/wit/workitems?ids={list}&fields=System.Title,System.State,System.WorkItemType,System.Description,System.CreatedDate,System.ChangedDate,System.CreatedBy,System.AreaPath,System.Tags&{API}"
                ))
                .await?
                .json(SYSTEM)?;
            for w in got.value {
                let f = &w.fields;
                let field = |k: &str| f.get(k).and_then(|v| v.as_str());
                let created = field("System.CreatedDate")
                    .and_then(time::parse_ns)
                    .ok_or_else(|| {
                        self.bad(format!("work item {}: System.CreatedDate unreadable", w.id))
                    })?;
                let mut s = self.signal(tenant, SignalKind::Ticket, w.id.to_string(), None);
                s.updated_ns = field("System.ChangedDate")
                    .and_then(time::parse_ns)
                    .unwrap_or(created);
                s.created_ns = created;
                s.title = field("System.Title").unwrap_or_default().to_owned();
                s.body = excerpt(
                    &html_text(field("System.Description").unwrap_or_default()),
                    BODY_EXCERPT_CHARS,
                );
                s.status = field("System.State").map(str::to_owned);
                s.author = f
                    .get("System.CreatedBy")
                    .and_then(|c| c.get("displayName"))
                    .and_then(|n| n.as_str())
                    .map(str::to_owned);
                s.url = Some(format!("{base}/_workitems/edit/{}", w.id));
                let area =
                    field("System.AreaPath").map(|a| a.rsplit('\\').next().unwrap_or(a).to_owned());
                let tags = field("System.Tags")
                    .map(|t| {
                        t.split(';')
                            .map(|x| x.trim().to_owned())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                items.push(Item {
                    signal: s,
                    hints: Hints {
                        components: area.into_iter().collect(),
                        labels: tags,
                        ..Hints::default()
                    },
                });
            }
        }
        // WIQL answers the whole match at once (up to 20,000 ids).
        Ok(Page { items, next: None })
    }
}

#[async_trait::async_trait]
impl Connector for AzureDevOps {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .settings
            .repositories
            .iter()
            .flat_map(|r| [format!("commits:{r}"), format!("pullrequests:{r}")])
            .collect();
        if self.settings.work_items {
            s.push("workitems".into());
        }
        s
    }

    async fn page(
        &self,
        tenant: &TenantId,
        stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        if stream == "workitems" {
            return self.work_items(tenant, since_ns).await;
        }
        let (kind, repo) = stream.split_once(':').ok_or_else(|| Error::Config {
            connector: self.settings.name.clone(),
            message: format!("unknown stream {stream}"),
        })?;
        let skip: usize = next.and_then(|n| n.parse().ok()).unwrap_or(0);
        let top = self.settings.page_size.max(1);
        let base = &self.settings.base_url;
        let root = format!("{base}/_apis/git/repositories/{repo}");
        let since = time::rfc3339(since_ns);
        let mut items = Vec::new();
        let n = if kind == "commits" {
            let list: List<Commit> = self
                .client
                .get(&format!(
                    "{root}/commits?searchCriteria.fromDate={since}&$top={top}&$skip={skip}&{API}"
                ))
                .await?
                .json(SYSTEM)?;
            let n = list.value.len();
            for (i, c) in list.value.into_iter().enumerate() {
                let at = c
                    .committer
                    .as_ref()
                    .or(c.author.as_ref())
                    .and_then(|p| time::parse_ns(&p.date))
                    .ok_or_else(|| self.bad(format!("commit {}: date unreadable", c.commit_id)))?;
                let paths: Vec<String> = if i < self.settings.max_commit_details {
                    let ch: Changes = self
                        .client
                        .get(&format!("{root}/commits/{}/changes?{API}", c.commit_id))
                        .await?
                        .json(SYSTEM)?;
                    ch.changes
                        .into_iter()
                        .filter(|x| x.item.git_object_type.as_deref() != Some("tree"))
                        .map(|x| x.item.path.trim_start_matches('/').to_owned())
                        .collect()
                } else {
                    Vec::new()
                };
                let mut s =
                    self.signal(tenant, SignalKind::Commit, c.commit_id.clone(), Some(repo));
                s.title = excerpt(c.comment.lines().next().unwrap_or(""), 300);
                s.url = c.remote_url;
                s.author = c.author.map(|a| a.name);
                s.created_ns = at;
                s.updated_ns = at;
                s.changed_paths = paths.clone();
                s.commit = Some(c.commit_id);
                items.push(Item {
                    signal: s,
                    hints: Hints {
                        repository: Some(repo.to_owned()),
                        paths,
                        ..Hints::default()
                    },
                });
            }
            n
        } else {
            let list: List<PullRequest> = self
                .client
                .get(&format!(
                    "{root}/pullrequests?searchCriteria.status=completed&searchCriteria.queryTimeRangeType=closed&searchCriteria.minTime={since}&$top={top}&$skip={skip}&{API}"
                ))
                .await?
                .json(SYSTEM)?;
            let n = list.value.len();
            for p in list.value {
                let closed = p
                    .closed_date
                    .as_deref()
                    .and_then(time::parse_ns)
                    .ok_or_else(|| {
                        self.bad(format!(
                            "pull request {}: closedDate unreadable",
                            p.pull_request_id
                        ))
                    })?;
                let mut s = self.signal(
                    tenant,
                    SignalKind::PullRequest,
                    p.pull_request_id.to_string(),
                    Some(repo),
                );
                s.title = p.title;
                s.body = excerpt(p.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
                s.author = p.created_by.map(|c| c.display_name);
                s.created_ns = closed;
                s.updated_ns = closed;
                s.status = Some(p.status);
                s.commit = p.last_merge_commit.map(|c| c.commit_id);
                s.version = p.target_ref_name;
                s.url = Some(format!(
                    "{base}/_git/{repo}/pullrequest/{}",
                    p.pull_request_id
                ));
                items.push(Item {
                    signal: s,
                    hints: Hints {
                        repository: Some(repo.to_owned()),
                        ..Hints::default()
                    },
                });
            }
            n
        };
        // A full page may have a successor; a short one ends the pass.
        Ok(Page {
            items,
            next: (n == top).then(|| (skip + top).to_string()),
        })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for r in &self.settings.repositories {
            let info: Repository = self
                .client
                .get(&format!(
                    "{}/_apis/git/repositories/{r}?{API}",
                    self.settings.base_url
                ))
                .await?
                .json(SYSTEM)?;
            out.push(format!("{}: readable", info.name));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
}

#[derive(Deserialize)]
struct GitUser {
    name: String,
    date: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Commit {
    commit_id: String,
    author: Option<GitUser>,
    committer: Option<GitUser>,
    comment: String,
    remote_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeItem {
    path: String,
    git_object_type: Option<String>,
}

#[derive(Deserialize)]
struct Change {
    item: ChangeItem,
}

#[derive(Deserialize)]
struct Changes {
    changes: Vec<Change>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    display_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitRef {
    commit_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    pull_request_id: u64,
    title: String,
    description: Option<String>,
    status: String,
    created_by: Option<Identity>,
    closed_date: Option<String>,
    target_ref_name: Option<String>,
    last_merge_commit: Option<CommitRef>,
}

#[derive(Deserialize)]
struct WorkItemRef {
    id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wiql {
    work_items: Vec<WorkItemRef>,
}

#[derive(Deserialize)]
struct WorkItem {
    id: u64,
    fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Repository {
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use crate::{MappingRule, ServiceMapper};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};

    fn azure(r: &Seen, _base: &str) -> Answer {
        let ct = (
            "content-type",
            "application/json; charset=utf-8; api-version=7.1".to_owned(),
        );
        // Basic base64(":ado-pat").
        if r.header("authorization") != Some("Basic OmFkby1wYXQ=") {
            return (401, vec![ct], String::new());
        }
        assert_eq!(r.q("api-version"), Some("7.1"));
        let root = "/fabrikam/shop/_apis/git/repositories/checkout";
        match r.path.as_str() {
            p if p == format!("{root}/commits") => {
                assert!(r.q("searchCriteria.fromDate").is_some());
                // Pages of `$top` (1 in these tests) by `$skip`: three commits.
                let skip: usize = r.q("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
                if skip >= 3 {
                    return (200, vec![ct], json!({"count": 0, "value": []}).to_string());
                }
                (200, vec![ct], json!({"count": 1, "value": [{
                    "commitId": format!("9991b4f66def4c0a9ad8f9f27043ece7eddcf1c{skip}"),
                    "author": {"name": "Norman Paulk", "email": "n@fabrikam.com", "date": "2024-05-01T09:06:53Z"},
                    "committer": {"name": "Norman Paulk", "email": "n@fabrikam.com", "date": "2024-05-01T09:06:53Z"},
                    "comment": "Merged PR 2: Raise payment timeout", "commentTruncated": true,
                    "changeCounts": {"Add": 0, "Edit": 1, "Delete": 0},
                    "url": "https://dev.azure.com/fabrikam/1fec/_apis/git/repositories/1701/commits/9991b4f6",
                    "remoteUrl": "https://dev.azure.com/fabrikam/shop/_git/checkout/commit/9991b4f6"
                }]}).to_string())
            }
            p if p.starts_with(&format!("{root}/commits/")) && p.ends_with("/changes") => (200, vec![ct], json!({
                "changeCounts": {"Edit": 1},
                "changes": [
                    {"item": {"gitObjectType": "tree", "path": "/src", "url": "x"}, "changeType": "edit"},
                    {"item": {"gitObjectType": "blob", "path": "/src/Payment.cs", "url": "x"}, "changeType": "edit"}
                ]
            }).to_string()),
            p if p == format!("{root}/pullrequests") => {
                assert_eq!(r.q("searchCriteria.status"), Some("completed"));
                if r.q("$skip") != Some("0") {
                    return (200, vec![ct], json!({"count": 0, "value": []}).to_string());
                }
                (200, vec![ct], json!({"count": 1, "value": [{
                    "pullRequestId": 2, "title": "Raise payment timeout", "description": "", "status": "completed",
                    "createdBy": {"displayName": "Norman Paulk", "uniqueName": "n@fabrikam.com"},
                    "creationDate": "2024-05-01T08:00:00Z", "closedDate": "2024-05-01T09:06:53Z",
                    "sourceRefName": "refs/heads/timeout", "targetRefName": "refs/heads/main",
                    "lastMergeCommit": {"commitId": "9991b4f66def4c0a9ad8f9f27043ece7eddcf1c7"}
                }]}).to_string())
            }
            "/fabrikam/shop/_apis/wit/wiql" => {
                assert_eq!(r.method, "POST");
                assert_eq!(r.q("timePrecision"), Some("true"));
                let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
                assert!(body["query"].as_str().is_some_and(|q| q.contains("[System.ChangedDate] >=")));
                (200, vec![ct], json!({"queryType": "flat", "asOf": "2024-05-01T10:00:00Z",
                    "workItems": [{"id": 301, "url": "x"}, {"id": 302, "url": "y"}]}).to_string())
            }
            "/fabrikam/shop/_apis/wit/workitems" => {
                assert_eq!(r.q("ids"), Some("301,302"));
                let wi = |id: u64, area: &str| json!({"id": id, "rev": 3, "url": "x", "fields": {
                    "System.Title": "Checkout errors", "System.State": "Active", "System.WorkItemType": "Bug",
                    "System.Description": "<div>Payment <b>fails</b></div>", "System.CreatedDate": "2024-05-01T09:30:00.12Z",
                    "System.ChangedDate": "2024-05-01T09:45:00Z", "System.CreatedBy": {"displayName": "Ops", "uniqueName": "ops@fabrikam.com"},
                    "System.AreaPath": area, "System.Tags": "incident; sev2"
                }});
                (200, vec![ct], json!({"count": 2, "value": [wi(301, "shop\\Checkout"), wi(302, "shop\\Search")]}).to_string())
            }
            _ => (404, vec![ct], json!({"message": "TF401019: not found"}).to_string()),
        }
    }

    #[tokio::test]
    async fn repositories_and_work_items_with_a_pat() {
        let server = TestServer::start(azure).await;
        let ado = AzureDevOps::new(
            AzureDevOpsSettings {
                name: "azure".into(),
                base_url: format!("{}/fabrikam/shop", server.base),
                repositories: vec!["checkout".into()],
                work_items: true,
                max_commit_details: 10,
                page_size: 1,
            },
            Auth::Basic {
                user: String::new(),
                password: Secret::new("ado-pat"),
            },
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(
            vec![MappingRule {
                component: Some("Search".into()),
                services: vec!["search".into()],
                ..MappingRule::default()
            }],
            ["checkout".to_owned()],
        );
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&ado, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 6, "{all:#?}");
        let c = all
            .iter()
            .find(|s| s.kind == SignalKind::Commit)
            .expect("commit");
        assert_eq!(c.changed_paths, ["src/Payment.cs"]);
        let w = all
            .iter()
            .find(|s| s.external_id == "301")
            .expect("work item");
        assert_eq!(w.body, "Payment fails");
        assert_eq!(w.services, ["checkout"], "area matched by name");
        assert_eq!(
            all.iter()
                .find(|s| s.external_id == "302")
                .expect("w")
                .services,
            ["search"]
        );
        assert_read_only(&server.seen());
    }

    #[tokio::test]
    async fn conforms() {
        let make = |pat: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    AzureDevOps::new(
                        AzureDevOpsSettings {
                            name: "azure".into(),
                            base_url: format!("{base}/fabrikam/shop"),
                            repositories: vec!["checkout".into()],
                            work_items: true,
                            max_commit_details: 10,
                            page_size: 1,
                        },
                        Auth::Basic {
                            user: String::new(),
                            password: Secret::new(pat),
                        },
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(azure, make("ado-pat"), make("ado-wrong"), "ado-wrong")
            .await;
    }
}
