//! Slack Events API: messages in channels, and the `url_verification`
//! handshake.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use crate::mapping::Hints;
use crate::webhook::{Parsed, WebhookError, base, s};
use crate::{Item, time};

/// Reads a verified Slack payload into records.
pub(crate) fn parse_webhook(
    v: &serde_json::Value,
    source_name: &str,
    tenant: &TenantId,
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let mut items = Vec::new();
    match s(v, &["type"]) {
        Some("url_verification") => {
            return Ok(Parsed::Challenge(
                s(v, &["challenge"]).unwrap_or_default().to_owned(),
            ));
        }
        Some("event_callback") => {
            let e = v
                .get("event")
                .ok_or_else(|| WebhookError::Payload("event missing".into()))?;
            if s(e, &["type"]) == Some("message") && s(e, &["subtype"]).is_none() {
                let channel = s(e, &["channel"]).unwrap_or_default();
                let ts = s(e, &["ts"]).unwrap_or_default();
                let at = time::slack_ts_ns(ts).unwrap_or(now_ns);
                let text = s(e, &["text"]).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::Message,
                    format!("{channel}:{ts}"),
                    at,
                );
                sig.title = excerpt(text.lines().next().unwrap_or(""), 300);
                sig.body = excerpt(text, BODY_EXCERPT_CHARS);
                sig.author = s(e, &["user"]).map(str::to_owned);
                items.push(Item {
                    signal: sig,
                    hints: Hints {
                        channel: Some(channel.to_owned()),
                        ..Hints::default()
                    },
                });
            }
        }
        _ => return Err(WebhookError::Payload("not a Slack event".into())),
    }
    Ok(Parsed::Items(items))
}
