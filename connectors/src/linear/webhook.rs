//! Linear webhooks: issue events (`type: Issue`).

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use crate::Item;
use crate::mapping::Hints;
use crate::webhook::{Parsed, WebhookError, base, s, ts_at};

/// Reads a verified Linear payload into records.
pub(crate) fn parse_webhook(
    v: &serde_json::Value,
    source_name: &str,
    tenant: &TenantId,
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let mut items = Vec::new();
    if s(v, &["type"]) == Some("Issue") {
        let d = v
            .get("data")
            .ok_or_else(|| WebhookError::Payload("data missing".into()))?;
        let id = s(d, &["identifier"]).or(s(d, &["id"])).unwrap_or_default();
        let mut sig = base(
            tenant,
            source_name,
            SignalKind::Ticket,
            id.to_owned(),
            ts_at(d, &["createdAt"], now_ns),
        );
        sig.updated_ns = ts_at(d, &["updatedAt"], sig.created_ns);
        sig.title = s(d, &["title"]).unwrap_or_default().to_owned();
        sig.body = excerpt(
            s(d, &["description"]).unwrap_or_default(),
            BODY_EXCERPT_CHARS,
        );
        sig.url = s(v, &["url"]).or(s(d, &["url"])).map(str::to_owned);
        sig.status = s(d, &["state", "name"]).map(str::to_owned);
        let team = s(d, &["team", "key"]).map(str::to_owned);
        let labels = d
            .get("labels")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect();
        items.push(Item {
            signal: sig,
            hints: Hints {
                project: team,
                labels,
                ..Hints::default()
            },
        });
    }
    Ok(Parsed::Items(items))
}
