//! Jira webhooks: issues created or updated, with their fields.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use super::adf_text;
use crate::Item;
use crate::mapping::Hints;
use crate::webhook::{Parsed, WebhookError, base, s, ts_at};

/// Reads a verified Jira payload into records.
pub(crate) fn parse_webhook(
    v: &serde_json::Value,
    source_name: &str,
    tenant: &TenantId,
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let mut items = Vec::new();
    if let Some(issue) = v.get("issue") {
        let key =
            s(issue, &["key"]).ok_or_else(|| WebhookError::Payload("issue.key missing".into()))?;
        let f = issue.get("fields").cloned().unwrap_or_default();
        let mut sig = base(
            tenant,
            source_name,
            SignalKind::Ticket,
            key.to_owned(),
            ts_at(&f, &["created"], now_ns),
        );
        sig.updated_ns = ts_at(&f, &["updated"], sig.created_ns);
        sig.title = s(&f, &["summary"]).unwrap_or_default().to_owned();
        sig.body = excerpt(
            &f.get("description").map(adf_text).unwrap_or_default(),
            BODY_EXCERPT_CHARS,
        );
        sig.status = s(&f, &["status", "name"]).map(str::to_owned);
        let project = s(&f, &["project", "key"]).map(str::to_owned);
        sig.repository = project.clone();
        let names = |k: &str| -> Vec<String> {
            f.get(k)
                .and_then(|x| x.as_array())
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    c.get("name")
                        .and_then(|n| n.as_str())
                        .or(c.as_str())
                        .map(str::to_owned)
                })
                .collect()
        };
        let hints = Hints {
            components: names("components"),
            labels: names("labels"),
            project,
            ..Hints::default()
        };
        items.push(Item { signal: sig, hints });
    }
    Ok(Parsed::Items(items))
}
