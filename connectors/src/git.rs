//! A local git repository on disk (a mirror or a CI checkout): commits of
//! a branch with the paths each changed, read with gitoxide (pure Rust, no
//! `git` binary, nothing written to the repository).
//!
//! Commits come newest first by commit time with the pass's cutoff, at
//! most [`PAGE`] a page; the next page continues from the first commit not
//! yet returned. Changed paths are the diff of each commit's tree against
//! its first parent's (merges show what they brought into the branch).

use std::path::PathBuf;

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use gix::diff::tree::recorder::Change;
use gix::revision::walk::Sorting;
use gix::traverse::commit::simple::CommitTimeOrder;

use crate::error::{Error, Result};
use crate::mapping::Hints;
use crate::{Connector, Item, Page};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "git";
/// Commits per page.
pub const PAGE: usize = 200;

/// Settings of one local repository.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// The repository (work tree or bare).
    pub path: PathBuf,
    /// Branch (`main`, or a full ref); default: `HEAD`.
    pub branch: Option<String>,
    /// Repository name for signals and service matching (default: the
    /// directory's name without `.git`).
    pub repository: Option<String>,
}

/// The local repository connector.
#[derive(Debug)]
pub struct LocalGit {
    settings: GitSettings,
    repository: String,
}

impl LocalGit {
    /// A connector; the repository is opened at each read.
    pub fn new(settings: GitSettings) -> Result<Self> {
        let repository = settings.repository.clone().unwrap_or_else(|| {
            let dir = settings
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            dir.strip_suffix(".git").unwrap_or(&dir).to_owned()
        });
        Ok(Self {
            settings,
            repository,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::Upstream {
            system: SYSTEM,
            url: self.settings.path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Reads up to a page of commits (blocking).
    fn read(&self, tenant: &TenantId, since_ns: i64, next: Option<&str>) -> Result<Page> {
        let repo = gix::open(&self.settings.path).map_err(|e| Error::Config {
            connector: self.settings.name.clone(),
            message: format!(
                "{}: not a git repository: {e}",
                self.settings.path.display()
            ),
        })?;
        let tip = match next {
            Some(id) => gix::ObjectId::from_hex(id.as_bytes())
                .map_err(|e| self.err(format!("resume point {id}: {e}")))?,
            None => match &self.settings.branch {
                None => repo
                    .head_id()
                    .map_err(|e| self.err(format!("HEAD: {e}")))?
                    .detach(),
                Some(b) => {
                    let name = if b.starts_with("refs/") {
                        b.clone()
                    } else {
                        format!("refs/heads/{b}")
                    };
                    repo.find_reference(name.as_str())
                        .map_err(|e| self.err(format!("branch {b}: {e}")))?
                        .into_fully_peeled_id()
                        .map_err(|e| self.err(format!("branch {b}: {e}")))?
                        .detach()
                }
            },
        };
        let cutoff = since_ns.div_euclid(1_000_000_000);
        let walk = repo
            .rev_walk([tip])
            .sorting(Sorting::ByCommitTimeCutoff {
                order: CommitTimeOrder::NewestFirst,
                seconds: cutoff,
            })
            .all()
            .map_err(|e| self.err(format!("walk: {e}")))?;
        let mut items = Vec::new();
        let mut more = None;
        for info in walk {
            let info = info.map_err(|e| self.err(format!("walk: {e}")))?;
            if items.len() == PAGE {
                more = Some(info.id.to_string());
                break;
            }
            let commit = info.object().map_err(|e| self.err(e))?;
            let seconds = commit.time().map_err(|e| self.err(e))?.seconds;
            if seconds < cutoff {
                continue;
            }
            let at = seconds.saturating_mul(1_000_000_000);
            let message = commit.message_raw().map_err(|e| self.err(e))?.to_string();
            let author = commit.author().map_err(|e| self.err(e))?.name.to_string();
            let tree = commit.tree().map_err(|e| self.err(e))?;
            let parent = match commit.parent_ids().next() {
                Some(p) => p
                    .object()
                    .map_err(|e| self.err(e))?
                    .into_commit()
                    .tree()
                    .map_err(|e| self.err(e))?,
                None => repo.empty_tree(),
            };
            let mut recorder = gix::diff::tree::Recorder::default();
            gix::diff::tree(
                gix::objs::TreeRefIter::from_bytes(&parent.data, repo.object_hash()),
                gix::objs::TreeRefIter::from_bytes(&tree.data, repo.object_hash()),
                &mut gix::diff::tree::State::default(),
                &repo.objects,
                &mut recorder,
            )
            .map_err(|e| self.err(format!("diff of {}: {e}", info.id)))?;
            let paths: Vec<String> = recorder
                .records
                .iter()
                .filter_map(|c| match c {
                    Change::Addition {
                        path, entry_mode, ..
                    }
                    | Change::Deletion {
                        path, entry_mode, ..
                    }
                    | Change::Modification {
                        path, entry_mode, ..
                    } => (!entry_mode.is_tree()).then(|| path.to_string()),
                })
                .collect();
            let id = info.id.to_string();
            let (title, body) = message.split_once('\n').unwrap_or((&message, ""));
            items.push(Item {
                signal: Signal {
                    title: excerpt(title, 300),
                    body: excerpt(body, BODY_EXCERPT_CHARS),
                    author: Some(author),
                    repository: Some(self.repository.clone()),
                    changed_paths: paths.clone(),
                    commit: Some(id.clone()),
                    ..Signal::new(tenant, SignalKind::Commit, &self.settings.name, id, at)
                },
                hints: Hints {
                    repository: Some(self.repository.clone()),
                    paths,
                    ..Hints::default()
                },
            });
        }
        Ok(Page { items, next: more })
    }
}

/// What `read` needs, owned, for a blocking task.
struct Job {
    connector: LocalGit,
    tenant: TenantId,
    since_ns: i64,
    next: Option<String>,
}

#[async_trait::async_trait]
impl Connector for LocalGit {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        vec!["commits".into()]
    }

    async fn page(
        &self,
        tenant: &TenantId,
        _stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        // gitoxide reads files: off the async workers.
        let job = Job {
            connector: LocalGit {
                settings: self.settings.clone(),
                repository: self.repository.clone(),
            },
            tenant: tenant.clone(),
            since_ns,
            next: next.map(str::to_owned),
        };
        tokio::task::spawn_blocking(move || {
            job.connector
                .read(&job.tenant, job.since_ns, job.next.as_deref())
        })
        .await
        .map_err(|e| self.err(format!("reader task: {e}")))?
    }

    async fn check(&self) -> Result<Vec<String>> {
        let page = self
            .page(&TenantId::default_tenant(), "commits", i64::MAX, None)
            .await?;
        debug_assert!(page.items.is_empty());
        Ok(vec![format!("{}: readable", self.settings.path.display())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};

    /// Runs `git` in `dir` with fixed identities and dates.
    fn git(dir: &std::path::Path, args: &[&str], date: &str) {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Jane Dev")
            .env("GIT_AUTHOR_EMAIL", "jane@example.com")
            .env("GIT_COMMITTER_NAME", "Jane Dev")
            .env("GIT_COMMITTER_EMAIL", "jane@example.com")
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn commits_with_changed_paths_since_the_cursor_page_by_page() {
        let dir = std::env::temp_dir().join(format!("causeway-git-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.join("shop.git");
        std::fs::create_dir_all(repo.join("services/checkout")).expect("dir");
        git(&repo, &["init", "-q", "-b", "main"], "2024-05-01T09:00:00Z");
        std::fs::write(repo.join("README.md"), "shop\n").expect("write");
        git(&repo, &["add", "."], "2024-05-01T09:00:00Z");
        git(
            &repo,
            &["commit", "-q", "-m", "Initial import"],
            "2020-01-01T00:00:00Z",
        );
        for i in 0..(PAGE + 5) {
            std::fs::write(repo.join("services/checkout/pay.rs"), format!("// {i}\n"))
                .expect("write");
            git(&repo, &["add", "."], "2024-05-01T09:00:00Z");
            let date = format!("2024-05-01T09:{:02}:{:02}Z", i / 60, i % 60);
            git(
                &repo,
                &[
                    "commit",
                    "-q",
                    "-m",
                    &format!("Tune payment retry {i}\n\nBody {i}"),
                ],
                &date,
            );
        }
        let g = LocalGit::new(GitSettings {
            name: "shop-git".into(),
            path: repo.clone(),
            branch: Some("main".into()),
            repository: None,
        })
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["checkout".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        // From 2023 on: the 2020 import is older than the cursor.
        let since = crate::time::parse_ns("2023-01-01T00:00:00Z").expect("ts");
        let settings = SyncSettings {
            lookback_ns: crate::time::now_ns() - since,
            ..SyncSettings::default()
        };
        let report = sync_connector(&g, &tenant, &store, &mapper, settings).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!((report.pages, report.records), (2, PAGE + 5));
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), PAGE + 5);
        let newest = &all[0];
        assert_eq!(newest.title, format!("Tune payment retry {}", PAGE + 4));
        assert_eq!(newest.body, format!("Body {}", PAGE + 4));
        assert_eq!(newest.changed_paths, ["services/checkout/pay.rs"]);
        assert_eq!(newest.services, ["checkout"]);
        assert_eq!(newest.repository.as_deref(), Some("shop"));
        assert_eq!(newest.author.as_deref(), Some("Jane Dev"));
        // Again: nothing new.
        let report = sync_connector(&g, &tenant, &store, &mapper, settings).await;
        assert_eq!((report.new, report.failed.len()), (0, 0), "{report:?}");
        assert!(g.check().await.is_ok());
        let missing = LocalGit::new(GitSettings {
            name: "x".into(),
            path: dir.join("nope"),
            branch: None,
            repository: None,
        })
        .expect("connector");
        assert!(matches!(missing.check().await, Err(Error::Config { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
