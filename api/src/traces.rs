//! `GET /api/v1/traces/{trace_id}`: every span of one trace of the caller's
//! tenant, for the dashboard's waterfall. Runs as a SQL statement on the
//! SQL runtime, so its time and memory limits apply.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use causeway_model::schema::{col, kind, status};
use causeway_processor::SqlError;
use causeway_processor::sql::to_json;
use serde_json::{Value, json};

use super::{ApiState, Caller, error, kind_name};

/// Spans of one trace returned at most.
const MAX_SPANS: usize = 10_000;

fn status_name(s: i64) -> &'static str {
    match i8::try_from(s).unwrap_or(status::UNSET) {
        status::OK => "ok",
        status::ERROR => "error",
        _ => "unset",
    }
}

pub(super) async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let id = id.to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id == "0".repeat(32) {
        return error(
            StatusCode::BAD_REQUEST,
            "a trace id is 32 hexadecimal digits, not all zero",
        );
    }
    // `id` is validated hex: safe to put in the statement.
    let sql = format!(
        "SELECT encode({span}, 'hex') AS span_id, \
         coalesce(encode({parent}, 'hex'), '') AS parent_span_id, \
         CAST({service} AS VARCHAR) AS service, CAST({name} AS VARCHAR) AS name, \
         CAST({kind} AS BIGINT) AS kind, \
         CAST(CAST({start} AS BIGINT) AS VARCHAR) AS start_unix_nano, \
         {duration} AS duration_ns, CAST({status} AS BIGINT) AS status, \
         coalesce({message}, '') AS status_message \
         FROM spans WHERE encode({trace}, 'hex') = '{id}' \
         ORDER BY {start} LIMIT {MAX_SPANS}",
        span = col::SPAN_ID,
        parent = col::PARENT_SPAN_ID,
        service = col::SERVICE_NAME,
        name = col::SPAN_NAME,
        kind = col::SPAN_KIND,
        start = col::START_TIME,
        duration = col::DURATION_NS,
        status = col::STATUS_CODE,
        message = col::STATUS_MESSAGE,
        trace = col::TRACE_ID,
    );
    let answer = match state.sql.query(tenant.clone(), sql).await {
        Ok(a) => a,
        Err(SqlError::Limit(e)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("the trace lookup hit a limit: {e}"),
            );
        }
        Err(SqlError::Stopped) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the processor is not running",
            );
        }
        Err(e) => {
            tracing::error!(%tenant, error = %e, "trace lookup failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the trace lookup failed");
        }
    };
    let rows: Vec<Value> = match to_json(&answer)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("rows").cloned())
    {
        Some(Value::Array(rows)) => rows,
        _ => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the trace lookup's answer",
            );
        }
    };
    if rows.is_empty() {
        return error(StatusCode::NOT_FOUND, "no such trace");
    }
    let str_of = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let int_of = |r: &Value, k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
    let spans: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "span_id": str_of(r, "span_id"),
                "parent_span_id": str_of(r, "parent_span_id"),
                "service": str_of(r, "service"),
                "name": str_of(r, "name"),
                "kind": kind_name(i8::try_from(int_of(r, "kind")).unwrap_or(kind::UNSPECIFIED)),
                "start_unix_nano": str_of(r, "start_unix_nano"),
                "duration_ms": int_of(r, "duration_ns") as f64 / 1e6,
                "status": status_name(int_of(r, "status")),
                "status_message": str_of(r, "status_message"),
            })
        })
        .collect();
    Json(json!({"trace_id": id, "spans": spans})).into_response()
}
