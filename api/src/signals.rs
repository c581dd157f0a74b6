//! `GET /api/v1/signals`, `POST /api/v1/events/deploy` (API key), and
//! `POST /api/v1/webhooks/{tenant}/{source}` (verified by the source's own
//! signature, not by API key: GitHub or Slack cannot send one).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use causeway_connectors::{HookError, WebhookOutcome};
use causeway_model::{Signal, SignalKind, TenantId};
use causeway_store::SignalQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use super::red::{parse_time, rfc3339};
use super::{ApiState, Caller, PageParams, Q, encode_cursor, error};

/// Signals returned at most per call.
const MAX_SIGNALS: usize = 1_000;

#[derive(Debug, Deserialize)]
pub(super) struct SignalParams {
    kind: Option<String>,
    service: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub(super) fn signal_json(s: &Signal) -> Value {
    json!({
        "kind": s.kind.as_str(),
        "source": s.source,
        "id": s.external_id,
        "url": s.url,
        "title": s.title,
        "body": s.body,
        "author": s.author,
        "created": rfc3339(s.created_ns),
        "updated": rfc3339(s.updated_ns),
        "repository": s.repository,
        "changed_paths": s.changed_paths,
        "services": s.services,
        "status": s.status,
        "version": s.version,
        "commit": s.commit,
    })
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "signals are not enabled on this server",
    )
}

pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(p): Q<SignalParams>,
    Q(pp): Q<PageParams>,
) -> Response {
    let Some(hub) = &state.signals else {
        return unavailable();
    };
    let kind = match p.kind.as_deref().map(|k| SignalKind::parse(k).ok_or(k)) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(k)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "kind {k:?}: one of commit, deploy, release, pull_request, ticket, message"
                ),
            );
        }
    };
    let time = |name: &str, v: Option<&str>| v.map(|t| parse_time(name, t)).transpose();
    let (from_ns, to_ns) = match (time("from", p.from.as_deref()), time("to", p.to.as_deref())) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if let (Some(f), Some(t)) = (from_ns, to_ns)
        && f >= t
    {
        return error(StatusCode::BAD_REQUEST, "from must be before to");
    }
    let page = match pp.page() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    // Signals are ordered newest first with a stable tie-break; the cursor
    // is (created time of the last one shown, how many with that time were
    // shown), so a page starts at that time and skips those.
    let (to_ns, skip) = match page.after {
        Some((t, seen)) => (
            Some(t.saturating_add(1)),
            usize::try_from(seen).unwrap_or(usize::MAX),
        ),
        None => (to_ns, 0),
    };
    let q = SignalQuery {
        kind,
        service: p.service,
        from_ns,
        to_ns,
        limit: (page.limit + 1).saturating_add(skip).min(MAX_SIGNALS * 10),
    };
    match hub.signals(&tenant, &q).await {
        Ok(list) => {
            let list: Vec<_> = list.into_iter().skip(skip).collect();
            let more = list.len() > page.limit;
            let shown = &list[..list.len().min(page.limit)];
            let next = match (more, shown.last()) {
                (true, Some(last)) => {
                    let same = shown
                        .iter()
                        .filter(|s| s.created_ns == last.created_ns)
                        .count();
                    // Continuing within the same time, add what earlier
                    // pages showed at it.
                    let before = if page.after.is_some_and(|(t, _)| t == last.created_ns) {
                        skip
                    } else {
                        0
                    };
                    Some(encode_cursor((last.created_ns, (same + before) as u64)))
                }
                _ => None,
            };
            Json(json!({
                "signals": shown.iter().map(signal_json).collect::<Vec<_>>(),
                "next_cursor": next,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn hook_error(e: &HookError) -> Response {
    use causeway_connectors::webhook::WebhookError;
    match e {
        HookError::Unknown => error(StatusCode::NOT_FOUND, "no such endpoint"),
        HookError::Refused(WebhookError::Payload(m)) => error(StatusCode::BAD_REQUEST, m),
        HookError::Refused(r) => error(StatusCode::UNAUTHORIZED, &r.to_string()),
        HookError::Store(s) => error(StatusCode::SERVICE_UNAVAILABLE, &s.to_string()),
    }
}

pub(super) async fn deploy(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(hub) = &state.signals else {
        return unavailable();
    };
    match hub
        .deploy_event(&tenant, &headers, &body, state.known.as_ref())
        .await
    {
        Ok(s) => (StatusCode::ACCEPTED, Json(signal_json(&s))).into_response(),
        Err(e) => hook_error(&e),
    }
}

pub(super) async fn webhook(
    State(state): State<Arc<ApiState>>,
    client: Option<Extension<causeway_server::ClientAddr>>,
    Path((tenant, source)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = state
        .gate
        .limits()
        .client_ip(client.map(|Extension(c)| c), &headers);
    if let Err(l) = state
        .gate
        .limits()
        .admit_client(causeway_server::Class::Webhook, ip)
    {
        return super::too_many(&l);
    }
    let Some(hub) = &state.signals else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let Ok(tenant) = TenantId::new(&tenant) else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    match hub
        .webhook(&tenant, &source, &headers, &body, state.known.as_ref())
        .await
    {
        Ok(WebhookOutcome::Stored(n)) => {
            (StatusCode::ACCEPTED, Json(json!({ "stored": n }))).into_response()
        }
        // Slack wants the challenge back as the body.
        Ok(WebhookOutcome::Challenge(c)) => {
            (StatusCode::OK, Json(json!({ "challenge": c }))).into_response()
        }
        Err(e) => {
            tracing::warn!(%tenant, source, error = %e, "webhook refused");
            hook_error(&e)
        }
    }
}
