//! `GET /api/v1/rca`, `GET /api/v1/rca/{id}` (JSON or Markdown),
//! `POST /api/v1/rca/{id}/feedback`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use causeway_model::rca::{Feedback, RcaReport};
use serde::Deserialize;
use serde_json::{Value, json};

use super::red::{parse_time, rfc3339};
use super::{ApiState, Caller, CallerActor, PageParams, Q, error, paginate};

/// Reports are listed from this long ago when `from` is not given.
const DEFAULT_RANGE_NS: i64 = 7 * 24 * 3_600_000_000_000;

#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    from: Option<String>,
    to: Option<String>,
}

/// Reports of one range read at most before paging (one per incident).
const MAX_LISTED: usize = 10_000;

/// The report as the API shows it: ids as strings (JavaScript cannot hold
/// every u64), times as RFC 3339 next to the nanoseconds.
fn report_json(r: &RcaReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["id"] = json!(r.id.to_string());
    v["incident"] = json!(r.incident.to_string());
    v["window_start"] = json!(rfc3339(r.window_start_ns));
    v["window_end"] = json!(rfc3339(r.window_end_ns));
    v["computed"] = json!(rfc3339(r.computed_ns));
    v
}

fn not_running() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "RCA is not running in this process",
    )
}

pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(p): Q<ListParams>,
    Q(pp): Q<PageParams>,
) -> Response {
    let Some(rca) = &state.rca else {
        return not_running();
    };
    let to = match p.to.as_deref().map(|t| parse_time("to", t)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        None => i64::MAX,
    };
    let from = match p.from.as_deref().map(|t| parse_time("from", t)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        // A week before `to` (or now).
        None => to
            .min(super::red::now_ns())
            .saturating_sub(DEFAULT_RANGE_NS),
    };
    if from >= to {
        return error(StatusCode::BAD_REQUEST, "from must be before to");
    }
    let page = match pp.page() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match rca.list(&tenant, from, to, MAX_LISTED).await {
        Ok(list) => {
            let (list, next) = paginate(list, |r| (r.window_start_ns, r.id), page);
            Json(json!({
                "reports": list.iter().map(report_json).collect::<Vec<_>>(),
                "next_cursor": next,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn wants_markdown(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/markdown"))
}

pub(super) async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(rca) = &state.rca else {
        return not_running();
    };
    // Unknown, malformed and other tenants' ids all read alike.
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, "no such report");
    };
    match rca.get(&tenant, id).await {
        Ok(Some(r)) if wants_markdown(&headers) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            causeway_correlator::report::markdown(&r),
        )
            .into_response(),
        Ok(Some(r)) => Json(report_json(&r)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such report"),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedbackBody {
    /// The hypothesis's rank.
    rank: u32,
    /// Confirmed (true) or rejected.
    confirmed: bool,
    /// Free text.
    comment: Option<String>,
    /// Who gives it (free text; the tenant comes from the key).
    by: Option<String>,
}

pub(super) async fn feedback(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Extension(CallerActor(actor)): Extension<CallerActor>,
    Path(id): Path<String>,
    body: Result<Json<FeedbackBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(rca) = &state.rca else {
        return not_running();
    };
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, "no such report");
    };
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let report = match rca.get(&tenant, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such report"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(h) = report.hypotheses.iter().find(|h| h.rank == body.rank) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the report has no hypothesis of rank {}", body.rank),
        );
    };
    let fb = Feedback {
        rank: body.rank,
        service: h.service.clone(),
        confirmed: body.confirmed,
        by: body
            .by
            .map(|b| b.chars().take(200).collect())
            .unwrap_or_else(|| "api".to_owned()),
        comment: body.comment.map(|c| c.chars().take(2000).collect()),
        at_ns: super::red::now_ns(),
    };
    match rca.feedback(&tenant, id, fb.clone()).await {
        Ok(true) => {
            state.audit(
                &tenant,
                &actor,
                "rca.feedback",
                causeway_model::AuditOutcome::Success,
                format!(
                    "report={id} rank={} service={} confirmed={}",
                    fb.rank, fb.service, fb.confirmed
                ),
            );
            (StatusCode::CREATED, Json(json!({"feedback": fb}))).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such report"),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
