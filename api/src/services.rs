//! `GET /api/v1/services`.

use std::sync::Arc;

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
    (ns != 0).then(|| causeway_model::time::rfc3339_millis(i64::try_from(ns).unwrap_or(i64::MAX)))
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

#[derive(Debug, serde::Deserialize)]
pub(super) struct DeleteParams {
    confirm: Option<String>,
}

/// `DELETE /api/v1/data?confirm=<tenant>`: deletes every record of the
/// caller's tenant (series, graph, catalog, spans). The tenant's name must be
/// repeated in `confirm`, so a stray request cannot do it.
pub(super) async fn delete_data(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Extension(super::CallerActor(actor)): Extension<super::CallerActor>,
    super::Q(params): super::Q<DeleteParams>,
) -> Response {
    if params.confirm.as_deref() != Some(tenant.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "deleting a tenant's data needs ?confirm=<tenant name>",
        );
    }
    if let Some(hub) = &state.signals
        && let Err(e) = hub.delete_tenant(&tenant).await
    {
        tracing::error!(%tenant, error = %e, "deleting the tenant's signals failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("deleting signals failed: {e}; retry"),
        );
    }
    if let Some(rca) = &state.rca
        && let Err(e) = rca.delete_tenant(&tenant).await
    {
        tracing::error!(%tenant, error = %e, "deleting the tenant's RCA reports failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("deleting RCA reports failed: {e}; retry"),
        );
    }
    match state.processor.delete_tenant(tenant.clone()).await {
        Ok(Ok(())) => {
            // Signed-in dashboards of the tenant end with its data.
            state.sessions.remove_tenant(&tenant);
            for p in &state.purges {
                // Purges block (a queue rewrite waits for its sender).
                let (purge, who) = (Arc::clone(p), tenant.clone());
                let outcome = tokio::task::spawn_blocking(move || purge.purge(&who))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                if let Err(e) = outcome {
                    tracing::error!(%tenant, what = p.what(), error = %e, "tenant purge failed");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("deleting {} failed: {e}; retry", p.what()),
                    );
                }
            }
            if let Some(audit) = &state.audit
                && let Err(e) = audit.purge_tenant(&tenant)
            {
                tracing::error!(%tenant, error = %e, "purging the tenant's old audit entries failed");
            }
            state.audit(
                &tenant,
                &actor,
                "data.delete",
                causeway_model::AuditOutcome::Success,
                String::new(),
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(%tenant, error = %e, "tenant delete failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("deleting failed part-way: {e}; retry"),
            )
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
