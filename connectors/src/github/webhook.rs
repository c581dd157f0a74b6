//! GitHub webhooks (`X-GitHub-Event`): pushes (commits with their paths),
//! deployments and their statuses, releases, merged pull requests.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use crate::Item;
use crate::mapping::Hints;
use crate::webhook::{Parsed, WebhookError, base, pushed_paths, s, ts_at};

/// Reads a verified GitHub payload into records.
pub(crate) fn parse_webhook(
    v: &serde_json::Value,
    source_name: &str,
    tenant: &TenantId,
    event: Option<&str>,
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let mut items = Vec::new();
    let repo = s(v, &["repository", "full_name"]).map(str::to_owned);
    let hints = || Hints {
        repository: repo.clone(),
        ..Hints::default()
    };
    match event.unwrap_or_default() {
        "push" => {
            for c in v
                .get("commits")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
            {
                let Some(id) = s(c, &["id"]) else { continue };
                let at = ts_at(c, &["timestamp"], now_ns);
                let msg = s(c, &["message"]).unwrap_or_default();
                let mut sig = base(tenant, source_name, SignalKind::Commit, id.to_owned(), at);
                sig.title = excerpt(msg.lines().next().unwrap_or(""), 300);
                sig.body = excerpt(msg.split_once('\n').map_or("", |x| x.1), BODY_EXCERPT_CHARS);
                sig.url = s(c, &["url"]).map(str::to_owned);
                sig.author = s(c, &["author", "username"])
                    .or(s(c, &["author", "name"]))
                    .map(str::to_owned);
                sig.repository = repo.clone();
                sig.commit = Some(id.to_owned());
                sig.changed_paths = pushed_paths(c);
                let mut h = hints();
                h.paths = sig.changed_paths.clone();
                items.push(Item {
                    signal: sig,
                    hints: h,
                });
            }
        }
        "deployment_status" | "deployment" => {
            let d = v
                .get("deployment")
                .ok_or_else(|| WebhookError::Payload("deployment missing".into()))?;
            let id = d.get("id").map(|i| i.to_string()).unwrap_or_default();
            let at = ts_at(d, &["created_at"], now_ns);
            let mut sig = base(tenant, source_name, SignalKind::Deploy, id, at);
            sig.updated_ns = ts_at(v, &["deployment_status", "created_at"], at);
            let r = s(d, &["ref"]).unwrap_or_default();
            sig.title = format!(
                "deploy {r} to {}",
                s(d, &["environment"]).unwrap_or_default()
            );
            sig.version = Some(r.to_owned());
            sig.commit = s(d, &["sha"]).map(str::to_owned);
            sig.status = s(v, &["deployment_status", "state"]).map(str::to_owned);
            sig.author = s(d, &["creator", "login"]).map(str::to_owned);
            sig.repository = repo.clone();
            items.push(Item {
                signal: sig,
                hints: hints(),
            });
        }
        "release" => {
            let r = v
                .get("release")
                .ok_or_else(|| WebhookError::Payload("release missing".into()))?;
            if s(v, &["action"]) == Some("published") {
                let id = r.get("id").map(|i| i.to_string()).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::Release,
                    id,
                    ts_at(r, &["published_at"], now_ns),
                );
                let tag = s(r, &["tag_name"]).unwrap_or_default();
                sig.title = s(r, &["name"])
                    .filter(|n| !n.is_empty())
                    .unwrap_or(tag)
                    .to_owned();
                sig.body = excerpt(s(r, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
                sig.version = Some(tag.to_owned());
                sig.url = s(r, &["html_url"]).map(str::to_owned);
                sig.repository = repo.clone();
                items.push(Item {
                    signal: sig,
                    hints: hints(),
                });
            }
        }
        "pull_request" => {
            let p = v
                .get("pull_request")
                .ok_or_else(|| WebhookError::Payload("pull_request missing".into()))?;
            if s(v, &["action"]) == Some("closed")
                && p.get("merged").and_then(|m| m.as_bool()) == Some(true)
            {
                let n = p.get("number").map(|i| i.to_string()).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::PullRequest,
                    n,
                    ts_at(p, &["merged_at"], now_ns),
                );
                sig.updated_ns = ts_at(p, &["updated_at"], sig.created_ns);
                sig.title = s(p, &["title"]).unwrap_or_default().to_owned();
                sig.body = excerpt(s(p, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
                sig.url = s(p, &["html_url"]).map(str::to_owned);
                sig.author = s(p, &["user", "login"]).map(str::to_owned);
                sig.commit = s(p, &["merge_commit_sha"]).map(str::to_owned);
                sig.status = Some("merged".into());
                sig.repository = repo.clone();
                items.push(Item {
                    signal: sig,
                    hints: hints(),
                });
            }
        }
        "issues" => {
            let i = v
                .get("issue")
                .ok_or_else(|| WebhookError::Payload("issue missing".into()))?;
            let n = i.get("number").map(|x| x.to_string()).unwrap_or_default();
            let id = format!("{}#{n}", repo.clone().unwrap_or_default());
            let mut sig = base(
                tenant,
                source_name,
                SignalKind::Ticket,
                id,
                ts_at(i, &["created_at"], now_ns),
            );
            sig.updated_ns = ts_at(i, &["updated_at"], sig.created_ns);
            sig.title = s(i, &["title"]).unwrap_or_default().to_owned();
            sig.body = excerpt(s(i, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
            sig.url = s(i, &["html_url"]).map(str::to_owned);
            sig.status = s(i, &["state"]).map(str::to_owned);
            sig.repository = repo.clone();
            items.push(Item {
                signal: sig,
                hints: hints(),
            });
        }
        // ping and the events this tool does not read.
        _ => {}
    }
    Ok(Parsed::Items(items))
}
