//! causeway's own deploy event (`POST /webhooks/deploy`): what a CI job
//! sends when it ships, for systems without a deploy API.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{SignalKind, TenantId};

use super::{DeployEvent, Parsed, WebhookError, base};
use crate::mapping::Hints;
use crate::{Item, time};

/// Reads a verified deploy event into its record.
pub(super) fn parse(
    source_name: &str,
    tenant: &TenantId,
    body: &[u8],
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    let e: DeployEvent = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Payload(format!("deploy event: {e}")))?;
    if e.service.trim().is_empty() || e.version.trim().is_empty() {
        return Err(WebhookError::Payload(
            "service and version are required".into(),
        ));
    }
    let at = match &e.time {
        Some(t) => time::parse_ns(t)
            .ok_or_else(|| WebhookError::Payload(format!("time {t:?} is not RFC 3339")))?,
        None => now_ns,
    };
    let mut sig = base(
        tenant,
        source_name,
        SignalKind::Deploy,
        format!("{}@{}@{at}", e.service, e.version),
        at,
    );
    sig.title = format!(
        "deploy {} {}{}",
        e.service,
        e.version,
        e.environment
            .as_deref()
            .map(|x| format!(" to {x}"))
            .unwrap_or_default()
    );
    sig.body = excerpt(e.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
    sig.author = e.author;
    sig.url = e.url;
    sig.version = Some(e.version);
    sig.commit = e.commit;
    sig.status = Some("success".into());
    Ok(Parsed::Items(vec![Item {
        signal: sig,
        hints: Hints {
            services: vec![e.service],
            ..Hints::default()
        },
    }]))
}
