//! GitHub (REST, `https://api.github.com` or GitHub Enterprise's
//! `https://HOST/api/v3`): commits with their changed files, merged pull
//! requests, deployments with their latest status, releases, and issues.
//!
//! Read scopes (fine-grained token or GitHub App): Metadata, Contents,
//! Pull requests, Deployments and Issues, all read-only.
//!
//! Pagination follows `Link: rel="next"` verbatim. Commits and issues
//! filter server-side with `since`; pull requests, deployments and releases
//! come newest first, so a pass stops at the first page that reaches
//! records older than the cursor.

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

const SYSTEM: &str = "github";

/// Streams per repository.
const STREAMS: [&str; 5] = ["commits", "pulls", "deployments", "releases", "issues"];

/// Settings of one GitHub connector.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root, without a trailing slash.
    pub base_url: String,
    /// `owner/name` of each repository.
    pub repositories: Vec<String>,
    /// Branch whose commits are read (default: the repository's default).
    pub branch: Option<String>,
    /// Commits whose changed files are fetched per pass at most (one
    /// request each).
    pub max_commit_details: usize,
}

/// The GitHub connector.
#[derive(Debug)]
pub struct GitHub {
    settings: GitHubSettings,
    client: ReadOnlyClient,
}

impl GitHub {
    /// A connector authenticating with `token`.
    pub fn new(settings: GitHubSettings, token: Secret, policy: RetryPolicy) -> Result<Self> {
        Self::with_auth(settings, Auth::Bearer(token), policy)
    }

    /// A connector with any [`Auth`] (an OAuth session for GitHub App
    /// user tokens).
    pub fn with_auth(settings: GitHubSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        for r in &settings.repositories {
            if r.split('/').count() != 2 || r.starts_with('/') || r.ends_with('/') {
                return Err(Error::Config {
                    connector: settings.name.clone(),
                    message: format!("repository {r:?} is not owner/name"),
                });
            }
        }
        let client = ReadOnlyClient::new(
            SYSTEM,
            Some(auth),
            &[
                ("accept", "application/vnd.github+json"),
                ("x-github-api-version", "2022-11-28"),
            ],
            policy,
        )?
        .pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    fn upstream(&self, url: &str, message: impl Into<String>) -> Error {
        Error::Upstream {
            system: SYSTEM,
            url: url.split('?').next().unwrap_or(url).to_owned(),
            message: message.into(),
        }
    }

    fn signal(&self, tenant: &TenantId, kind: SignalKind, id: String) -> Signal {
        Signal::new(tenant, kind, &self.settings.name, id, 0)
    }

    fn ts(&self, url: &str, what: &str, v: Option<&str>) -> Result<i64> {
        let v = v.ok_or_else(|| self.upstream(url, format!("{what} missing")))?;
        time::parse_ns(v)
            .ok_or_else(|| self.upstream(url, format!("{what} {v:?} is not a timestamp")))
    }

    async fn commits(&self, tenant: &TenantId, repo: &str, url: &str) -> Result<Page> {
        let resp = self.client.get(url).await?;
        let list: Vec<CommitItem> = resp.json(SYSTEM)?;
        let mut items = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            let when = self.ts(
                url,
                "commit.committer.date",
                c.commit.committer.as_ref().and_then(|p| p.date.as_deref()),
            )?;
            // Changed paths need one request per commit: bounded per page.
            let paths = if i < self.settings.max_commit_details {
                let detail_url =
                    format!("{}/repos/{repo}/commits/{}", self.settings.base_url, c.sha);
                let d: CommitDetail = self.client.get(&detail_url).await?.json(SYSTEM)?;
                d.files.into_iter().map(|f| f.filename).collect()
            } else {
                Vec::new()
            };
            let (title, body) = split_message(&c.commit.message);
            let mut s = self.signal(tenant, SignalKind::Commit, c.sha.clone());
            s.url = c.html_url;
            s.title = title;
            s.body = body;
            s.author = c
                .author
                .map(|a| a.login)
                .or_else(|| c.commit.author.and_then(|a| a.name));
            s.created_ns = when;
            s.updated_ns = when;
            s.repository = Some(repo.to_owned());
            s.changed_paths = paths.clone();
            s.commit = Some(c.sha);
            items.push(Item {
                signal: s,
                hints: Hints {
                    repository: Some(repo.to_owned()),
                    paths,
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: resp.next_link(),
        })
    }

    async fn pulls(&self, tenant: &TenantId, repo: &str, url: &str, since: i64) -> Result<Page> {
        let resp = self.client.get(url).await?;
        let list: Vec<PullItem> = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        let mut reached_old = false;
        for p in list {
            let updated = self.ts(url, "updated_at", p.updated_at.as_deref())?;
            if updated < since {
                reached_old = true;
                continue;
            }
            let Some(merged) = p.merged_at.as_deref() else {
                continue;
            };
            let merged = self.ts(url, "merged_at", Some(merged))?;
            let mut s = self.signal(tenant, SignalKind::PullRequest, p.number.to_string());
            s.url = p.html_url;
            s.title = p.title;
            s.body = excerpt(p.body.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
            s.author = p.user.map(|u| u.login);
            s.created_ns = merged;
            s.updated_ns = updated;
            s.repository = Some(repo.to_owned());
            s.status = Some("merged".into());
            s.commit = p.merge_commit_sha;
            s.version = p.base.map(|b| b.r#ref);
            items.push(Item {
                signal: s,
                hints: Hints {
                    repository: Some(repo.to_owned()),
                    labels: p.labels.into_iter().map(|l| l.name).collect(),
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: if reached_old { None } else { resp.next_link() },
        })
    }

    async fn deployments(
        &self,
        tenant: &TenantId,
        repo: &str,
        url: &str,
        since: i64,
    ) -> Result<Page> {
        let resp = self.client.get(url).await?;
        let list: Vec<Deployment> = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        let mut reached_old = false;
        for d in list {
            let created = self.ts(url, "created_at", d.created_at.as_deref())?;
            let updated = d
                .updated_at
                .as_deref()
                .and_then(time::parse_ns)
                .unwrap_or(created);
            if updated < since {
                reached_old = true;
                continue;
            }
            // The latest status says whether it went out.
            let status = match &d.statuses_url {
                Some(u) => {
                    let sep = if u.contains('?') { '&' } else { '?' };
                    let statuses: Vec<DeploymentStatus> = self
                        .client
                        .get(&format!("{u}{sep}per_page=1"))
                        .await?
                        .json(SYSTEM)?;
                    statuses.into_iter().next().map(|s| s.state)
                }
                None => None,
            };
            let environment = d.environment.unwrap_or_default();
            let mut s = self.signal(tenant, SignalKind::Deploy, d.id.to_string());
            s.title = format!("deploy {} to {environment}", d.r#ref);
            s.body = excerpt(d.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
            s.author = d.creator.map(|u| u.login);
            s.created_ns = created;
            s.updated_ns = updated;
            s.repository = Some(repo.to_owned());
            s.status = status;
            s.version = Some(d.r#ref);
            s.commit = Some(d.sha);
            items.push(Item {
                signal: s,
                hints: Hints {
                    repository: Some(repo.to_owned()),
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: if reached_old { None } else { resp.next_link() },
        })
    }

    async fn releases(&self, tenant: &TenantId, repo: &str, url: &str, since: i64) -> Result<Page> {
        let resp = self.client.get(url).await?;
        let list: Vec<Release> = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        let mut reached_old = false;
        for r in list {
            // Drafts are not published.
            let Some(published) = r.published_at.as_deref() else {
                continue;
            };
            let published = self.ts(url, "published_at", Some(published))?;
            if published < since {
                reached_old = true;
                continue;
            }
            let mut s = self.signal(tenant, SignalKind::Release, r.id.to_string());
            s.url = r.html_url;
            s.title = r
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| r.tag_name.clone());
            s.body = excerpt(r.body.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
            s.author = r.author.map(|a| a.login);
            s.created_ns = published;
            s.updated_ns = published;
            s.repository = Some(repo.to_owned());
            s.status = Some(
                if r.prerelease {
                    "prerelease"
                } else {
                    "published"
                }
                .into(),
            );
            s.version = Some(r.tag_name);
            s.commit = r.target_commitish;
            items.push(Item {
                signal: s,
                hints: Hints {
                    repository: Some(repo.to_owned()),
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: if reached_old { None } else { resp.next_link() },
        })
    }

    async fn issues(&self, tenant: &TenantId, repo: &str, url: &str) -> Result<Page> {
        let resp = self.client.get(url).await?;
        let list: Vec<Issue> = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        for i in list {
            // The issues endpoint lists pull requests too.
            if i.pull_request.is_some() {
                continue;
            }
            let created = self.ts(url, "created_at", i.created_at.as_deref())?;
            let updated = self.ts(url, "updated_at", i.updated_at.as_deref())?;
            let labels: Vec<String> = i.labels.into_iter().map(|l| l.name).collect();
            let mut s = self.signal(tenant, SignalKind::Ticket, format!("{repo}#{}", i.number));
            s.url = i.html_url;
            s.title = i.title;
            s.body = excerpt(i.body.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
            s.author = i.user.map(|u| u.login);
            s.created_ns = created;
            s.updated_ns = updated;
            s.repository = Some(repo.to_owned());
            s.status = Some(i.state);
            items.push(Item {
                signal: s,
                hints: Hints {
                    repository: Some(repo.to_owned()),
                    labels,
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: resp.next_link(),
        })
    }
}

/// A commit message's first line, and the rest as an excerpt.
fn split_message(message: &str) -> (String, String) {
    let (title, body) = message.split_once('\n').unwrap_or((message, ""));
    (excerpt(title, 300), excerpt(body, BODY_EXCERPT_CHARS))
}

#[async_trait::async_trait]
impl Connector for GitHub {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        self.settings
            .repositories
            .iter()
            .flat_map(|r| STREAMS.iter().map(move |s| format!("{s}:{r}")))
            .collect()
    }

    async fn page(
        &self,
        tenant: &TenantId,
        stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let (kind, repo) = stream.split_once(':').ok_or_else(|| Error::Config {
            connector: self.settings.name.clone(),
            message: format!("unknown stream {stream}"),
        })?;
        let base = &self.settings.base_url;
        let since = time::rfc3339(since_ns);
        let first = match kind {
            "commits" => {
                let branch = self
                    .settings
                    .branch
                    .as_ref()
                    .map(|b| format!("&sha={b}"))
                    .unwrap_or_default();
                format!("{base}/repos/{repo}/commits?since={since}&per_page=100{branch}")
            }
            "pulls" => format!(
                "{base}/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=100"
            ),
            "deployments" => format!("{base}/repos/{repo}/deployments?per_page=100"),
            "releases" => format!("{base}/repos/{repo}/releases?per_page=100"),
            "issues" => format!(
                "{base}/repos/{repo}/issues?state=all&since={since}&sort=updated&direction=asc&per_page=100"
            ),
            _ => {
                return Err(Error::Config {
                    connector: self.settings.name.clone(),
                    message: format!("unknown stream {stream}"),
                });
            }
        };
        let url = next.unwrap_or(&first);
        match kind {
            "commits" => self.commits(tenant, repo, url).await,
            "pulls" => self.pulls(tenant, repo, url, since_ns).await,
            "deployments" => self.deployments(tenant, repo, url, since_ns).await,
            "releases" => self.releases(tenant, repo, url, since_ns).await,
            _ => self.issues(tenant, repo, url).await,
        }
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for repo in &self.settings.repositories {
            let url = format!("{}/repos/{repo}", self.settings.base_url);
            let r: RepoInfo = self.client.get(&url).await?.json(SYSTEM)?;
            out.push(format!(
                "{}: readable{}",
                r.full_name,
                match r.permissions {
                    Some(p) if p.push || p.admin => {
                        " (this token can also write: a read-only token is enough)"
                    }
                    _ => "",
                }
            ));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct Person {
    name: Option<String>,
    date: Option<String>,
}

#[derive(Deserialize)]
struct CommitBody {
    message: String,
    author: Option<Person>,
    committer: Option<Person>,
}

#[derive(Deserialize)]
struct CommitItem {
    sha: String,
    html_url: Option<String>,
    commit: CommitBody,
    author: Option<Login>,
}

#[derive(Deserialize)]
struct CommitFile {
    filename: String,
}

#[derive(Deserialize)]
struct CommitDetail {
    #[serde(default)]
    files: Vec<CommitFile>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct Branch {
    r#ref: String,
}

#[derive(Deserialize)]
struct PullItem {
    number: u64,
    title: String,
    body: Option<String>,
    user: Option<Login>,
    updated_at: Option<String>,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    html_url: Option<String>,
    base: Option<Branch>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct Deployment {
    id: u64,
    sha: String,
    r#ref: String,
    environment: Option<String>,
    description: Option<String>,
    creator: Option<Login>,
    created_at: Option<String>,
    updated_at: Option<String>,
    statuses_url: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentStatus {
    state: String,
}

#[derive(Deserialize)]
struct Release {
    id: u64,
    tag_name: String,
    target_commitish: Option<String>,
    name: Option<String>,
    body: Option<String>,
    #[serde(default)]
    prerelease: bool,
    published_at: Option<String>,
    author: Option<Login>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
    body: Option<String>,
    state: String,
    user: Option<Login>,
    created_at: Option<String>,
    updated_at: Option<String>,
    html_url: Option<String>,
    #[serde(default)]
    labels: Vec<Label>,
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Permissions {
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    push: bool,
}

#[derive(Deserialize)]
struct RepoInfo {
    full_name: String,
    permissions: Option<Permissions>,
}

#[cfg(test)]
mod tests;
