//! `GET /metrics`: Prometheus text exposition.
//!
//! Series carry a `tenant` label; a caller sees only its own tenant's series
//! and those without a tenant (process-wide health), so one tenant cannot
//! learn another's names or volumes from the scrape.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiState, Caller, error};

pub(super) async fn scrape(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics: {e}"),
        );
    }
    let own = format!("tenant=\"{}\"", tenant.as_str());
    let filtered: String = text
        .lines()
        .filter(|line| line.starts_with('#') || !line.contains("tenant=\"") || line.contains(&own))
        .flat_map(|line| [line, "\n"])
        .collect();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        filtered,
    )
        .into_response()
}
