//! The API router and its shared state.

mod incidents;
mod metrics;
mod rca;
mod red;
mod services;
mod signals;
mod sql;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use causeway_connectors::{KnownServices, SignalHub};
use causeway_model::TenantId;
use causeway_processor::{QueryHandle, SqlEngine};
use causeway_receiver::Authenticator;
use prometheus_client::registry::Registry;

/// Whether the process is ready to take traffic: set once every listener is
/// bound and cleared when shutdown begins.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Marks ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the API handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// Resolves callers to tenants.
    pub auth: Arc<Authenticator>,
    /// Asks the processor.
    pub processor: QueryHandle,
    /// Runs SQL statements.
    pub sql: Arc<SqlEngine>,
    /// Every component's metrics (read-only once serving).
    pub registry: Arc<Registry>,
    /// Readiness flag.
    pub ready: Arc<Readiness>,
    /// Signals (connectors, webhooks), when enabled.
    pub signals: Option<Arc<SignalHub>>,
    /// Service names seen in traces, for mapping signals to services.
    pub known: Arc<dyn KnownServices>,
    /// RCA reports, when the correlator runs.
    pub rca: Option<Arc<crate::rca::RcaService>>,
}

/// The processor's catalog as the connectors' list of known services.
#[derive(Debug, Clone)]
pub struct CatalogServices(pub QueryHandle);

#[async_trait::async_trait]
impl KnownServices for CatalogServices {
    async fn services(&self, tenant: &TenantId) -> Vec<String> {
        self.0
            .services(tenant.clone())
            .await
            .map(|list| list.into_iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }
}

/// The caller's tenant, put into request extensions by the auth middleware.
#[derive(Debug, Clone)]
struct Caller(TenantId);

/// The API router.
pub fn router(state: Arc<ApiState>) -> Router {
    let authed = Router::new()
        .route("/api/v1/services", get(services::list))
        .route("/api/v1/red", get(red::red))
        .route("/api/v1/graph", get(red::graph))
        .route("/api/v1/query", post(sql::query))
        .route("/api/v1/anomalies", get(incidents::anomalies))
        .route("/api/v1/incidents", get(incidents::incidents))
        .route("/api/v1/incidents/{id}", get(incidents::incident))
        .route("/api/v1/rca", get(rca::list))
        .route("/api/v1/rca/{id}", get(rca::get))
        .route("/api/v1/rca/{id}/feedback", post(rca::feedback))
        .route("/api/v1/data", delete(services::delete_data))
        .route("/api/v1/signals", get(signals::list))
        .route("/api/v1/events/deploy", post(signals::deploy))
        .route("/metrics", get(metrics::scrape))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        // Verified by each source's own signature scheme instead.
        .route("/api/v1/webhooks/{tenant}/{source}", post(signals::webhook))
        .merge(authed)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.get() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    match state.auth.authenticate(req.headers()) {
        Ok(tenant) => {
            req.extensions_mut().insert(Caller(tenant));
            next.run(req).await
        }
        Err(e) => {
            let mut r = error(StatusCode::UNAUTHORIZED, &e.to_string());
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

/// The API's error body: `{"error": "..."}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}
