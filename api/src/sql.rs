//! `POST /api/v1/query`: SQL over the caller's spans, RED cells and graph
//! edges.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use causeway_model::AuditOutcome;
use causeway_processor::SqlError;
use causeway_processor::sql::{to_arrow_ipc, to_json};
use serde::Deserialize;

use super::{ApiState, Caller, CallerActor, error, too_many};

/// Media type of an Arrow IPC stream.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Largest statement accepted, bytes.
const MAX_SQL_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    sql: String,
}

pub(super) async fn query(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Extension(CallerActor(actor)): Extension<CallerActor>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be JSON {{\"sql\": \"SELECT ...\"}}: {e}"),
            );
        }
    };
    if body.sql.len() > MAX_SQL_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the statement is longer than {MAX_SQL_BYTES} bytes"),
        );
    }
    let arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    // Held until the answer is computed: a tenant's statements beyond its
    // slots are turned away instead of queueing behind each other.
    let slot = match state.gate.limits().sql_slot(&tenant) {
        Ok(s) => s,
        Err(l) => return too_many(&l),
    };
    let started = std::time::Instant::now();
    let statement = body.sql.clone();
    let result = state.sql.query(tenant.clone(), body.sql).await;
    drop(slot);
    let took = started.elapsed();
    let (outcome, rows) = match &result {
        Ok(a) => (AuditOutcome::Success, a.rows()),
        Err(_) => (AuditOutcome::Failure, 0),
    };
    state.audit(
        &tenant,
        &actor,
        "sql.query",
        outcome,
        format!(
            "rows={rows} duration_ms={} sql={statement}",
            took.as_millis()
        ),
    );
    let answer = match result {
        Ok(a) => a,
        Err(e) => {
            let status = match &e {
                SqlError::Invalid(_) => StatusCode::BAD_REQUEST,
                // As Prometheus's API: a query that cannot finish within its
                // limits is unprocessable, not a server fault.
                SqlError::Limit(_) => StatusCode::UNPROCESSABLE_ENTITY,
                SqlError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                SqlError::Internal(_) => {
                    tracing::error!(%tenant, error = %e, "SQL query failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            return error(status, &e.to_string());
        }
    };
    let rendered = if arrow {
        to_arrow_ipc(&answer).map(|b| (ARROW_STREAM, b))
    } else {
        to_json(&answer).map(|b| ("application/json", b))
    };
    match rendered {
        Ok((media, bytes)) => {
            let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, media)], bytes).into_response();
            if answer.truncated {
                // Also visible to Arrow clients, whose body has no room for it.
                r.headers_mut().insert(
                    "x-causeway-truncated",
                    http::HeaderValue::from_static("true"),
                );
            }
            r
        }
        Err(e) => {
            tracing::error!(%tenant, error = %e, "cannot encode a SQL answer");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the answer: {e}"),
            )
        }
    }
}
