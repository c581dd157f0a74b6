//! `GET /api/v1/services`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiState, Caller, error};

#[derive(Debug, Serialize)]
struct ServicesBody {
    services: Vec<ServiceJson>,
}

#[derive(Debug, Serialize)]
struct ServiceJson {
    name: String,
    spans: u64,
    errors: u64,
    /// RFC 3339, or null when no span carried a timestamp.
    first_seen: Option<String>,
    last_seen: Option<String>,
}

fn rfc3339(ns: u64) -> Option<String> {
    (ns != 0).then(|| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
    })
}

pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
) -> Response {
    match state.processor.services(tenant).await {
        Ok(services) => Json(ServicesBody {
            services: services
                .into_iter()
                .map(|s| ServiceJson {
                    first_seen: rfc3339(s.first_seen_ns),
                    last_seen: rfc3339(s.last_seen_ns),
                    name: s.name,
                    spans: s.spans,
                    errors: s.errors,
                })
                .collect(),
        })
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
