//! GitLab (REST v4, gitlab.com or self-managed): commits with their
//! changed paths, merged merge requests, deployments and issues.
//!
//! Auth: `PRIVATE-TOKEN` (personal, group or project token) with the
//! `read_api` scope. Pagination: `x-next-page` until it is empty (the
//! commits API never sends totals). Incremental keys: `since` (commits),
//! `updated_after` (the rest), ordered by `updated_at` ascending.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use reqwest::header::HeaderName;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, Response, RetryPolicy};
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Connector, Item, Page, time};

mod config;
pub(crate) mod webhook;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "gitlab";
const STREAMS: [&str; 4] = ["commits", "merge_requests", "deployments", "issues"];

/// Settings of one GitLab connector.
#[derive(Debug, Clone)]
pub struct GitLabSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root (`https://gitlab.com/api/v4`).
    pub base_url: String,
    /// Project paths (`group/project`) or numeric ids.
    pub projects: Vec<String>,
    /// Commits whose changed paths are fetched per page at most.
    pub max_commit_details: usize,
}

/// The GitLab connector.
#[derive(Debug)]
pub struct GitLab {
    settings: GitLabSettings,
    client: ReadOnlyClient,
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl GitLab {
    /// A connector authenticating with `token` in `PRIVATE-TOKEN`.
    pub fn new(settings: GitLabSettings, token: Secret, policy: RetryPolicy) -> Result<Self> {
        let auth = Auth::Header {
            name: HeaderName::from_static("private-token"),
            value: token,
        };
        Self::with_auth(settings, auth, policy)
    }

    /// A connector with any [`Auth`] (an OAuth session: `Bearer`).
    pub fn with_auth(settings: GitLabSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client =
            ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?.pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    fn project_url(&self, project: &str) -> String {
        format!("{}/projects/{}", self.settings.base_url, encode(project))
    }

    /// The next page: the same URL with `page` set to `x-next-page`.
    fn next_page(resp: &Response) -> Option<String> {
        let next = resp
            .header("x-next-page")
            .filter(|p| !p.trim().is_empty())?;
        let mut u = resp.url.clone();
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair("page", next.trim());
        Some(u.to_string())
    }

    fn signal(&self, tenant: &TenantId, kind: SignalKind, id: String, project: &str) -> Signal {
        let mut s = Signal::new(tenant, kind, &self.settings.name, id, 0);
        s.repository = Some(project.to_owned());
        s
    }

    fn ts(&self, url: &str, what: &str, v: Option<&str>) -> Result<i64> {
        v.and_then(time::parse_ns).ok_or_else(|| Error::Upstream {
            system: SYSTEM,
            url: url.split('?').next().unwrap_or(url).to_owned(),
            message: format!("{what} missing or not a timestamp"),
        })
    }
}

#[async_trait::async_trait]
impl Connector for GitLab {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        self.settings
            .projects
            .iter()
            .flat_map(|p| STREAMS.iter().map(move |s| format!("{s}:{p}")))
            .collect()
    }

    async fn page(
        &self,
        tenant: &TenantId,
        stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let (kind, project) = stream.split_once(':').ok_or_else(|| Error::Config {
            connector: self.settings.name.clone(),
            message: format!("unknown stream {stream}"),
        })?;
        let root = self.project_url(project);
        let since = encode(&time::rfc3339(since_ns));
        let first = match kind {
            "commits" => {
                format!("{root}/repository/commits?since={since}&with_stats=true&per_page=100")
            }
            "merge_requests" => format!(
                "{root}/merge_requests?state=merged&updated_after={since}&order_by=updated_at&sort=asc&per_page=100"
            ),
            "deployments" => format!(
                "{root}/deployments?updated_after={since}&order_by=updated_at&sort=asc&per_page=100"
            ),
            "issues" => format!(
                "{root}/issues?updated_after={since}&order_by=updated_at&sort=asc&per_page=100"
            ),
            _ => {
                return Err(Error::Config {
                    connector: self.settings.name.clone(),
                    message: format!("unknown stream {stream}"),
                });
            }
        };
        let url = next.unwrap_or(&first);
        let resp = self.client.get(url).await?;
        let mut items = Vec::new();
        let hints = |paths: Vec<String>| Hints {
            repository: Some(project.to_owned()),
            paths,
            ..Hints::default()
        };
        match kind {
            "commits" => {
                let list: Vec<Commit> = resp.json(SYSTEM)?;
                for (i, c) in list.into_iter().enumerate() {
                    let at = self.ts(
                        url,
                        "committed_date",
                        c.committed_date.as_deref().or(c.created_at.as_deref()),
                    )?;
                    let paths = if i < self.settings.max_commit_details {
                        let diff: Vec<Diff> = self
                            .client
                            .get(&format!(
                                "{root}/repository/commits/{}/diff?per_page=100",
                                c.id
                            ))
                            .await?
                            .json(SYSTEM)?;
                        diff.into_iter().map(|d| d.new_path).collect()
                    } else {
                        Vec::new()
                    };
                    let mut s = self.signal(tenant, SignalKind::Commit, c.id.clone(), project);
                    s.title = excerpt(&c.title, 300);
                    s.body = excerpt(
                        c.message
                            .as_deref()
                            .and_then(|m| m.split_once('\n'))
                            .map_or("", |x| x.1),
                        BODY_EXCERPT_CHARS,
                    );
                    s.url = c.web_url;
                    s.author = c.author_name;
                    s.created_ns = at;
                    s.updated_ns = at;
                    s.changed_paths = paths.clone();
                    s.commit = Some(c.id);
                    items.push(Item {
                        signal: s,
                        hints: hints(paths),
                    });
                }
            }
            "merge_requests" => {
                let list: Vec<MergeRequest> = resp.json(SYSTEM)?;
                for m in list {
                    let updated = self.ts(url, "updated_at", m.updated_at.as_deref())?;
                    let merged = m
                        .merged_at
                        .as_deref()
                        .and_then(time::parse_ns)
                        .unwrap_or(updated);
                    let mut s =
                        self.signal(tenant, SignalKind::PullRequest, m.iid.to_string(), project);
                    s.title = m.title;
                    s.body = excerpt(m.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
                    s.url = m.web_url;
                    s.author = m.author.map(|a| a.username);
                    s.created_ns = merged;
                    s.updated_ns = updated;
                    s.status = Some(m.state);
                    s.commit = m.merge_commit_sha.or(m.squash_commit_sha);
                    items.push(Item {
                        signal: s,
                        hints: hints(Vec::new()),
                    });
                }
            }
            "deployments" => {
                let list: Vec<Deployment> = resp.json(SYSTEM)?;
                for d in list {
                    let created = self.ts(url, "created_at", d.created_at.as_deref())?;
                    let updated = d
                        .updated_at
                        .as_deref()
                        .and_then(time::parse_ns)
                        .unwrap_or(created);
                    let env = d.environment.map(|e| e.name).unwrap_or_default();
                    let mut s = self.signal(tenant, SignalKind::Deploy, d.id.to_string(), project);
                    s.title = format!("deploy {} to {env}", d.r#ref);
                    s.author = d.user.map(|u| u.username);
                    s.created_ns = created;
                    s.updated_ns = updated;
                    s.status = Some(d.status);
                    s.version = Some(d.r#ref);
                    s.commit = Some(d.sha);
                    s.url = d
                        .deployable
                        .and_then(|x| x.pipeline)
                        .and_then(|p| p.web_url);
                    items.push(Item {
                        signal: s,
                        hints: hints(Vec::new()),
                    });
                }
            }
            _ => {
                let list: Vec<Issue> = resp.json(SYSTEM)?;
                for i in list {
                    let created = self.ts(url, "created_at", i.created_at.as_deref())?;
                    let updated = i
                        .updated_at
                        .as_deref()
                        .and_then(time::parse_ns)
                        .unwrap_or(created);
                    let mut s = self.signal(
                        tenant,
                        SignalKind::Ticket,
                        format!("{project}#{}", i.iid),
                        project,
                    );
                    s.title = i.title;
                    s.body = excerpt(i.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
                    s.url = i.web_url;
                    s.author = i.author.map(|a| a.username);
                    s.created_ns = created;
                    s.updated_ns = updated;
                    s.status = Some(i.state);
                    items.push(Item {
                        signal: s,
                        hints: Hints {
                            repository: Some(project.to_owned()),
                            labels: i.labels,
                            ..Hints::default()
                        },
                    });
                }
            }
        }
        Ok(Page {
            items,
            next: Self::next_page(&resp),
        })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for p in &self.settings.projects {
            let info: Project = self.client.get(&self.project_url(p)).await?.json(SYSTEM)?;
            out.push(format!("{}: readable", info.path_with_namespace));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
    title: String,
    message: Option<String>,
    author_name: Option<String>,
    committed_date: Option<String>,
    created_at: Option<String>,
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Diff {
    new_path: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    title: String,
    description: Option<String>,
    state: String,
    updated_at: Option<String>,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    author: Option<User>,
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Environment {
    name: String,
}

#[derive(Deserialize)]
struct Pipeline {
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Deployable {
    pipeline: Option<Pipeline>,
}

#[derive(Deserialize)]
struct Deployment {
    id: u64,
    r#ref: String,
    sha: String,
    status: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    user: Option<User>,
    environment: Option<Environment>,
    deployable: Option<Deployable>,
}

#[derive(Deserialize)]
struct Issue {
    iid: u64,
    title: String,
    description: Option<String>,
    state: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    author: Option<User>,
    web_url: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn gitlab(r: &Seen, _base: &str) -> Answer {
        let ct = ("content-type", "application/json".to_owned());
        if r.header("private-token") != Some("glpat-test") {
            return (
                401,
                vec![ct],
                json!({"message": "401 Unauthorized"}).to_string(),
            );
        }
        let root = "/projects/acme%2Fcart";
        // axum hands the path over still percent-encoded.
        let path = r.path.as_str();
        let page = r.q("page").unwrap_or("1");
        let paged = |body: serde_json::Value, next: &str| -> Answer {
            (
                200,
                vec![
                    ct.clone(),
                    ("x-page", page.to_owned()),
                    ("x-per-page", "100".to_owned()),
                    ("x-next-page", next.to_owned()),
                    ("ratelimit-limit", "2000".to_owned()),
                    ("ratelimit-remaining", "1999".to_owned()),
                    ("ratelimit-reset", "1714557700".to_owned()),
                ],
                body.to_string(),
            )
        };
        match path {
            p if p == format!("{root}/repository/commits") => {
                assert_eq!(r.q("with_stats"), Some("true"));
                assert!(r.q("since").is_some());
                let commit = |id: &str, title: &str| {
                    json!({
                        "id": id, "short_id": &id[..4], "title": title, "message": format!("{title}\n\nDetails"),
                        "author_name": "Example User", "author_email": "user@example.com",
                        "authored_date": "2024-05-01T09:50:22.001+00:00", "committer_name": "Administrator",
                        "committed_date": "2024-05-01T09:50:22.001+00:00", "created_at": "2024-05-01T09:50:22.001+00:00",
                        "parent_ids": [], "web_url": format!("https://gitlab.example.com/acme/cart/-/commit/{id}"),
                        "stats": {"additions": 15, "deletions": 10, "total": 25}
                    })
                };
                if page == "1" {
                    paged(
                        json!([commit("ed899a2f", "Replace sanitize with escape once")]),
                        "2",
                    )
                } else if page == "2" {
                    paged(json!([commit("6104942b", "Cache cart totals")]), "3")
                } else {
                    paged(json!([commit("77aa01cc", "Cart: drop stale sessions")]), "")
                }
            }
            p if p.starts_with(&format!("{root}/repository/commits/")) && p.ends_with("/diff") => {
                paged(
                    json!([{"diff": "@@", "new_path": "cart/totals.go", "old_path": "cart/totals.go", "a_mode": null, "b_mode": "100644",
                        "new_file": false, "renamed_file": false, "deleted_file": false}]),
                    "",
                )
            }
            p if p == format!("{root}/merge_requests") => {
                assert_eq!(r.q("state"), Some("merged"));
                paged(
                    json!([{"id": 1, "iid": 7, "title": "Cart totals cache", "description": "Faster", "state": "merged",
                    "created_at": "2024-05-01T08:00:00Z", "updated_at": "2024-05-01T09:55:00Z", "merged_at": "2024-05-01T09:55:00Z",
                    "merge_commit_sha": "6104942b", "squash_commit_sha": null, "author": {"username": "jdoe"},
                    "merge_user": {"username": "lead"}, "web_url": "https://gitlab.example.com/acme/cart/-/merge_requests/7"}]),
                    "",
                )
            }
            p if p == format!("{root}/deployments") => paged(
                json!([{"id": 41, "iid": 3, "ref": "v1.4.0", "sha": "6104942b", "status": "success",
                        "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:01:00Z", "user": {"username": "deployer"},
                        "environment": {"id": 9, "name": "production", "external_url": "https://cart.example.com"},
                        "deployable": {"id": 88, "status": "success", "pipeline": {"id": 5, "sha": "6104942b", "web_url": "https://gitlab.example.com/acme/cart/-/pipelines/5"}}}]),
                "",
            ),
            p if p == format!("{root}/issues") => paged(json!([]), ""),
            p if p == root => (
                200,
                vec![ct],
                json!({"id": 5, "path_with_namespace": "acme/cart"}).to_string(),
            ),
            _ => (
                404,
                vec![ct],
                json!({"message": "404 Not Found"}).to_string(),
            ),
        }
    }

    #[tokio::test]
    async fn projects_page_by_next_page_header() {
        let server = TestServer::start(gitlab).await;
        let gl = GitLab::new(
            GitLabSettings {
                name: "gitlab".into(),
                base_url: server.base.clone(),
                projects: vec!["acme/cart".into()],
                max_commit_details: 10,
            },
            Secret::new("glpat-test"),
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["cart".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&gl, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 5, "{all:#?}");
        let deploy = all
            .iter()
            .find(|s| s.kind == SignalKind::Deploy)
            .expect("deploy");
        assert_eq!(deploy.title, "deploy v1.4.0 to production");
        assert_eq!(deploy.services, ["cart"]);
        let c = all
            .iter()
            .find(|s| s.external_id == "6104942b")
            .expect("page 2 commit");
        assert_eq!(c.changed_paths, ["cart/totals.go"]);
        assert_eq!(c.body, "Details");
        let seen = server.seen();
        assert_read_only(&seen);
        assert!(
            seen.iter()
                .any(|s| s.path.ends_with("/commits") && s.q("page") == Some("2"))
        );
        assert_eq!(gl.check().await.expect("check"), ["acme/cart: readable"]);
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    GitLab::new(
                        GitLabSettings {
                            name: "gitlab".into(),
                            base_url: base.to_owned(),
                            projects: vec!["acme/cart".into()],
                            max_commit_details: 10,
                        },
                        Secret::new(token),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(
            gitlab,
            make("glpat-test"),
            make("glpat-wrong"),
            "glpat-wrong",
        )
        .await;
    }
}
