//! Bitbucket Cloud (REST 2.0): commits of a branch with their changed
//! paths (diffstat), and merged pull requests.
//!
//! Pagination: the body's `next`, followed verbatim. Commits have no date
//! filter and come newest first, so a pass stops at the first commit older
//! than the cursor; pull requests filter with BBQL `updated_on>`.
//! Auth: `Basic email:api_token` (scopes `read:repository:bitbucket`,
//! `read:pullrequest:bitbucket`) or an access token as Bearer.

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

const SYSTEM: &str = "bitbucket";

/// Settings of one Bitbucket connector.
#[derive(Debug, Clone)]
pub struct BitbucketSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// API root (`https://api.bitbucket.org/2.0`).
    pub base_url: String,
    /// `workspace/repo_slug` of each repository.
    pub repositories: Vec<String>,
    /// Branch whose commits are read.
    pub branch: String,
    /// Commits whose diffstat is fetched per page at most.
    pub max_commit_details: usize,
}

/// The Bitbucket connector.
#[derive(Debug)]
pub struct Bitbucket {
    settings: BitbucketSettings,
    client: ReadOnlyClient,
}

impl Bitbucket {
    /// A connector with Basic (email, API token) or Bearer auth.
    pub fn new(settings: BitbucketSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        let client =
            ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?.pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }

    fn bad(&self, url: &str, m: String) -> Error {
        Error::Upstream {
            system: SYSTEM,
            url: url.split('?').next().unwrap_or(url).to_owned(),
            message: m,
        }
    }
}

/// `Jane Dev <jane@example.com>` → `Jane Dev`.
fn raw_name(raw: &str) -> String {
    raw.split('<').next().unwrap_or(raw).trim().to_owned()
}

#[async_trait::async_trait]
impl Connector for Bitbucket {
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
            .flat_map(|r| [format!("commits:{r}"), format!("pullrequests:{r}")])
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
        let root = format!("{}/repositories/{repo}", self.settings.base_url);
        let signal = |kind: SignalKind, id: String| {
            let mut s = Signal::new(tenant, kind, &self.settings.name, id, 0);
            s.repository = Some(repo.to_owned());
            s
        };
        if kind == "commits" {
            let first = format!("{root}/commits/{}?pagelen=100", self.settings.branch);
            let url = next.unwrap_or(&first);
            let page: Paginated<Commit> = self.client.get(url).await?.json(SYSTEM)?;
            let mut items = Vec::new();
            let mut reached_old = false;
            for (i, c) in page.values.into_iter().enumerate() {
                let at = time::parse_ns(&c.date)
                    .ok_or_else(|| self.bad(url, format!("commit {}: date unreadable", c.hash)))?;
                if at < since_ns {
                    reached_old = true;
                    break;
                }
                let paths: Vec<String> = if i < self.settings.max_commit_details {
                    let d: Paginated<DiffStat> = self
                        .client
                        .get(&format!("{root}/diffstat/{}?pagelen=100", c.hash))
                        .await?
                        .json(SYSTEM)?;
                    d.values
                        .into_iter()
                        .filter_map(|x| x.new.or(x.old).map(|p| p.path))
                        .collect()
                } else {
                    Vec::new()
                };
                let mut s = signal(SignalKind::Commit, c.hash.clone());
                let (title, body) = c.message.split_once('\n').unwrap_or((&c.message, ""));
                s.title = excerpt(title, 300);
                s.body = excerpt(body, BODY_EXCERPT_CHARS);
                s.url = c.links.and_then(|l| l.html).map(|h| h.href);
                s.author = c.author.and_then(|a| {
                    a.user
                        .map(|u| u.display_name)
                        .or(a.raw.as_deref().map(raw_name))
                });
                s.created_ns = at;
                s.updated_ns = at;
                s.changed_paths = paths.clone();
                s.commit = Some(c.hash);
                items.push(Item {
                    signal: s,
                    hints: Hints {
                        repository: Some(repo.to_owned()),
                        paths,
                        ..Hints::default()
                    },
                });
            }
            return Ok(Page {
                items,
                next: if reached_old { None } else { page.next },
            });
        }
        let first = {
            let mut u =
                url::Url::parse(&format!("{root}/pullrequests")).map_err(|e| Error::Config {
                    connector: self.settings.name.clone(),
                    message: format!("base_url: {e}"),
                })?;
            u.query_pairs_mut()
                .append_pair("state", "MERGED")
                .append_pair("q", &format!("updated_on>{}", time::rfc3339(since_ns)))
                .append_pair("sort", "-updated_on")
                .append_pair("pagelen", "50");
            u.to_string()
        };
        let url = next.unwrap_or(&first);
        let page: Paginated<PullRequest> = self.client.get(url).await?.json(SYSTEM)?;
        let mut items = Vec::new();
        for p in page.values {
            let updated = time::parse_ns(&p.updated_on).ok_or_else(|| {
                self.bad(url, format!("pull request {}: updated_on unreadable", p.id))
            })?;
            let mut s = signal(SignalKind::PullRequest, p.id.to_string());
            s.title = p.title;
            s.body = excerpt(p.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
            s.url = p.links.and_then(|l| l.html).map(|h| h.href);
            s.author = p.author.map(|a| a.display_name);
            s.created_ns = updated;
            s.updated_ns = updated;
            s.status = Some(p.state.to_ascii_lowercase());
            s.commit = p.merge_commit.map(|m| m.hash);
            s.version = p.destination.map(|d| d.branch.name);
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
            next: page.next,
        })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for r in &self.settings.repositories {
            let info: Repo = self
                .client
                .get(&format!("{}/repositories/{r}", self.settings.base_url))
                .await?
                .json(SYSTEM)?;
            out.push(format!("{}: readable", info.full_name));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Paginated<T> {
    values: Vec<T>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

#[derive(Deserialize)]
struct Links {
    html: Option<Href>,
}

#[derive(Deserialize)]
struct User {
    display_name: String,
}

#[derive(Deserialize)]
struct Author {
    raw: Option<String>,
    user: Option<User>,
}

#[derive(Deserialize)]
struct Commit {
    hash: String,
    date: String,
    message: String,
    author: Option<Author>,
    links: Option<Links>,
}

#[derive(Deserialize)]
struct PathRef {
    path: String,
}

#[derive(Deserialize)]
struct DiffStat {
    old: Option<PathRef>,
    new: Option<PathRef>,
}

#[derive(Deserialize)]
struct Hash {
    hash: String,
}

#[derive(Deserialize)]
struct BranchName {
    name: String,
}

#[derive(Deserialize)]
struct Destination {
    branch: BranchName,
}

#[derive(Deserialize)]
struct PullRequest {
    id: u64,
    title: String,
    description: Option<String>,
    state: String,
    author: Option<User>,
    updated_on: String,
    merge_commit: Option<Hash>,
    destination: Option<Destination>,
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Repo {
    full_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::secret::Secret;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn bitbucket(r: &Seen, base: &str) -> Answer {
        let ct = ("content-type", "application/json".to_owned());
        if r.header("authorization") != Some("Bearer bb-access") {
            return (
                401,
                vec![ct],
                json!({"type": "error", "error": {"message": "Access token expired."}}).to_string(),
            );
        }
        let recent = time::rfc3339(time::now_ns() - 3_600_000_000_000);
        let commit = |hash: &str, date: &str| {
            json!({
                "type": "commit", "hash": hash, "date": date, "message": "Fix null pointer in checkout\n",
                "author": {"type": "author", "raw": "Jane Dev <jane@example.com>",
                           "user": {"type": "user", "display_name": "Jane Dev", "uuid": "{d301aafa}", "account_id": "557058:1234abcd"}},
                "parents": [], "links": {"html": {"href": format!("https://bitbucket.org/acme/shop/commits/{hash}")}}
            })
        };
        match r.path.as_str() {
            "/repositories/acme/shop/commits/main" => match r.q("page") {
                None => (200, vec![ct], json!({"pagelen": 100, "values": [commit("b2c7f0e4", &recent)],
                    "next": format!("{base}/repositories/acme/shop/commits/main?page=2")}).to_string()),
                Some("2") => (200, vec![ct], json!({"pagelen": 100, "values": [commit("c3d4e5f6", &recent)],
                    "next": format!("{base}/repositories/acme/shop/commits/main?page=3")}).to_string()),
                // The third page reaches a commit older than the cursor.
                _ => (200, vec![ct], json!({"pagelen": 100, "values": [commit("a1b2c3d4", &recent), commit("00000001", "2001-01-01T00:00:00+00:00")],
                    "next": format!("{base}/repositories/acme/shop/commits/main?page=4")}).to_string()),
            },
            p if p.starts_with("/repositories/acme/shop/diffstat/") => (200, vec![ct], json!({"pagelen": 100, "values": [
                {"type": "diffstat", "status": "modified", "lines_added": 1, "lines_removed": 1,
                 "old": {"path": "checkout/app.py"}, "new": {"path": "checkout/app.py"}},
                {"type": "diffstat", "status": "removed", "lines_added": 0, "lines_removed": 9, "old": {"path": "old.txt"}, "new": null}
            ]}).to_string()),
            "/repositories/acme/shop/pullrequests" => {
                assert_eq!(r.q("state"), Some("MERGED"));
                assert!(r.q("q").is_some_and(|q| q.starts_with("updated_on>")));
                (200, vec![ct], json!({"pagelen": 50, "values": [{
                    "id": 5, "title": "Checkout hotfix", "description": "", "state": "MERGED",
                    "author": {"display_name": "Jane Dev"}, "created_on": recent, "updated_on": recent,
                    "merge_commit": {"hash": "b2c7f0e4"}, "source": {"branch": {"name": "fix"}, "commit": {"hash": "x"}},
                    "destination": {"branch": {"name": "main"}}, "links": {"html": {"href": "https://bitbucket.org/acme/shop/pull-requests/5"}}
                }]}).to_string())
            }
            _ => (404, vec![ct], json!({"type": "error", "error": {"message": "Resource not found"}}).to_string()),
        }
    }

    #[tokio::test]
    async fn commits_stop_at_the_cursor_and_paths_come_from_diffstat() {
        let server = TestServer::start(bitbucket).await;
        let bb = Bitbucket::new(
            BitbucketSettings {
                name: "bitbucket".into(),
                base_url: server.base.clone(),
                repositories: vec!["acme/shop".into()],
                branch: "main".into(),
                max_commit_details: 10,
            },
            Auth::Bearer(Secret::new("bb-access")),
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["checkout".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&bb, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 4, "{all:#?}");
        let c = all
            .iter()
            .find(|s| s.external_id == "b2c7f0e4")
            .expect("commit");
        assert_eq!(c.changed_paths, ["checkout/app.py", "old.txt"]);
        assert_eq!(c.services, ["checkout"], "monorepo path");
        assert_eq!(c.author.as_deref(), Some("Jane Dev"));
        let seen = server.seen();
        assert_read_only(&seen);
        assert!(
            !seen.iter().any(|s| s.q("page") == Some("4")),
            "stopped at the old commit"
        );
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Bitbucket::new(
                        BitbucketSettings {
                            name: "bitbucket".into(),
                            base_url: base.to_owned(),
                            repositories: vec!["acme/shop".into()],
                            branch: "main".into(),
                            max_commit_details: 10,
                        },
                        Auth::Bearer(Secret::new(token)),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(bitbucket, make("bb-access"), make("bb-wrong"), "bb-wrong")
            .await;
    }
}
