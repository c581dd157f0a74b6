//! GitLab webhooks (`object_kind`): pushes, deployments, releases, merge
//! requests.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use crate::Item;
use crate::mapping::Hints;
use crate::webhook::{Parsed, WebhookError, base, pushed_paths, s, ts_at};

/// Reads a verified GitLab payload into records.
pub(crate) fn parse_webhook(
    v: &serde_json::Value,
    source_name: &str,
    tenant: &TenantId,
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let mut items = Vec::new();
    let repo = s(v, &["project", "path_with_namespace"]).map(str::to_owned);
    match s(v, &["object_kind"]).unwrap_or_default() {
        "push" => {
            for c in v
                .get("commits")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
            {
                let Some(id) = s(c, &["id"]) else { continue };
                let msg = s(c, &["message"]).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::Commit,
                    id.to_owned(),
                    ts_at(c, &["timestamp"], now_ns),
                );
                sig.title = excerpt(msg.lines().next().unwrap_or(""), 300);
                sig.url = s(c, &["url"]).map(str::to_owned);
                sig.author = s(c, &["author", "name"]).map(str::to_owned);
                sig.repository = repo.clone();
                sig.commit = Some(id.to_owned());
                sig.changed_paths = pushed_paths(c);
                let h = Hints {
                    repository: repo.clone(),
                    paths: sig.changed_paths.clone(),
                    ..Hints::default()
                };
                items.push(Item {
                    signal: sig,
                    hints: h,
                });
            }
        }
        "merge_request" => {
            let a = v
                .get("object_attributes")
                .ok_or_else(|| WebhookError::Payload("object_attributes missing".into()))?;
            if s(a, &["action"]) == Some("merge") || s(a, &["state"]) == Some("merged") {
                let iid = a.get("iid").map(|x| x.to_string()).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::PullRequest,
                    iid,
                    ts_at(a, &["updated_at"], now_ns),
                );
                sig.title = s(a, &["title"]).unwrap_or_default().to_owned();
                sig.body = excerpt(
                    s(a, &["description"]).unwrap_or_default(),
                    BODY_EXCERPT_CHARS,
                );
                sig.url = s(a, &["url"]).map(str::to_owned);
                sig.commit = s(a, &["merge_commit_sha"]).map(str::to_owned);
                sig.status = Some("merged".into());
                sig.repository = repo.clone();
                items.push(Item {
                    signal: sig,
                    hints: Hints {
                        repository: repo.clone(),
                        ..Hints::default()
                    },
                });
            }
        }
        "deployment" => {
            let id = v
                .get("deployment_id")
                .map(|x| x.to_string())
                .unwrap_or_default();
            let mut sig = base(
                tenant,
                source_name,
                SignalKind::Deploy,
                id,
                ts_at(v, &["status_changed_at"], now_ns),
            );
            let r = s(v, &["ref"]).unwrap_or_default();
            sig.title = format!(
                "deploy {r} to {}",
                s(v, &["environment"]).unwrap_or_default()
            );
            sig.version = Some(r.to_owned());
            sig.commit = s(v, &["short_sha"]).map(str::to_owned);
            sig.status = s(v, &["status"]).map(str::to_owned);
            sig.url = s(v, &["deployable_url"]).map(str::to_owned);
            sig.repository = repo.clone();
            items.push(Item {
                signal: sig,
                hints: Hints {
                    repository: repo.clone(),
                    ..Hints::default()
                },
            });
        }
        _ => {}
    }
    Ok(Parsed::Items(items))
}
