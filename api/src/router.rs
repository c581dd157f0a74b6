//! The API's router: every route with its method, the shared state, and
//! the middleware that authenticates each request and scopes it to its
//! tenant.

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
use causeway_model::{Actor, AuditEvent, AuditOutcome};
use causeway_processor::{QueryHandle, SqlEngine};
use causeway_server::{Class, ClientAddr, Denied, Gate, Limited};
use prometheus_client::registry::Registry;

use super::{
    audit, events, incidents, metrics, rca, red, services, session, signals, sql, traces, ui,
};

/// Whether the process is ready to take traffic: set once every listener is
/// bound and cleared when shutdown begins.
#[derive(Debug, Default)]
pub struct Readiness(pub(super) AtomicBool);

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
    /// Rate limits and authentication of callers.
    pub gate: Gate,
    /// The audit trail, when the process keeps one.
    pub audit: Option<Arc<audit::AuditLog>>,
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
    pub rca: Option<Arc<causeway_correlator::RcaService>>,
    /// Dashboard sessions.
    pub sessions: session::Sessions,
    /// What else holds tenant data and must forget it on deletion.
    pub purges: Vec<Arc<dyn causeway_model::TenantPurge>>,
    /// Whether session cookies are marked `Secure` (the API serves TLS).
    pub secure_cookies: bool,
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
pub(super) struct Caller(pub(super) TenantId);

/// Who the caller is, for the audit trail (put next to [`Caller`]).
#[derive(Debug, Clone)]
pub(super) struct CallerActor(pub(super) Actor);

impl ApiState {
    /// Records an audit event of `tenant` done by `actor`.
    pub(super) fn audit(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        outcome: AuditOutcome,
        detail: String,
    ) {
        self.gate.audit().record(AuditEvent {
            at_ns: causeway_model::time::now_ns(),
            tenant: Some(tenant.clone()),
            action: action.to_owned(),
            outcome,
            actor: actor.clone(),
            detail,
        });
    }
}

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
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/traces/{trace_id}", get(traces::get))
        .route(
            "/api/v1/session",
            get(session::current).delete(session::delete),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/metrics", get(metrics::scrape))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        // Verified by each source's own signature scheme instead.
        .route("/api/v1/webhooks/{tenant}/{source}", post(signals::webhook))
        .route("/api/v1/session", post(session::create))
        .route("/api/v1/openapi.json", get(ui::openapi))
        .merge(authed)
        .layer(middleware::map_response(json_errors))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/app.css", get(ui::app_css))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

/// Every error the API answers has the `{"error": ...}` body, also those
/// axum's extractors produce as plain text (a malformed path, an oversized
/// body).
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut r = error(status, &message);
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            r.headers_mut().insert(name.clone(), value.clone());
        }
    }
    r
}

pub(super) async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.get() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

pub(super) async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = req.extensions().get::<ClientAddr>().copied();
    let ip = state.gate.limits().client_ip(client, req.headers());
    // A key in the request wins over a cookie; a cookie session must echo
    // its CSRF token on anything that changes state.
    let has_key = req.headers().contains_key(http::header::AUTHORIZATION)
        || req.headers().contains_key("x-api-key");
    if !has_key && let Some(s) = state.sessions.lookup(req.headers()) {
        let limits = state.gate.limits();
        if let Err(l) = limits
            .admit_client(Class::Api, ip)
            .and_then(|()| limits.admit_tenant(Class::Api, &s.tenant))
        {
            return too_many(&l);
        }
        let safe = matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if !safe && !session::csrf_ok(req.headers(), &s) {
            return error(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token for a cookie session",
            );
        }
        req.extensions_mut().insert(Caller(s.tenant));
        req.extensions_mut().insert(CallerActor(Actor {
            client: ip,
            key_fingerprint: None,
            via: "session".into(),
        }));
        return next.run(req).await;
    }
    match state.gate.admit(Class::Api, client, req.headers()) {
        Ok(tenant) => {
            let actor = Actor {
                client: ip,
                key_fingerprint: causeway_server::Authenticator::fingerprint(req.headers()),
                via: "api_key".into(),
            };
            req.extensions_mut().insert(Caller(tenant));
            req.extensions_mut().insert(CallerActor(actor));
            next.run(req).await
        }
        Err(Denied::Limited(l)) => too_many(&l),
        Err(Denied::Unauthenticated(e)) => {
            let mut r = error(StatusCode::UNAUTHORIZED, &e.to_string());
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

/// 429 with `Retry-After` for a request a limit turned away.
pub(super) fn too_many(limited: &Limited) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, &limited.to_string());
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(limited.retry_after_secs()),
    );
    r
}

/// An OTLP span kind as the API writes it everywhere (RED series, traces,
/// anomaly subjects): lowercase, without the `SPAN_KIND_` prefix that
/// `/metrics` keeps for the Collector's spanmetrics label.
pub(super) fn kind_name(kind: i8) -> &'static str {
    use causeway_model::schema::kind;
    match kind {
        kind::INTERNAL => "internal",
        kind::SERVER => "server",
        kind::CLIENT => "client",
        kind::PRODUCER => "producer",
        kind::CONSUMER => "consumer",
        _ => "unspecified",
    }
}

/// The API's error body: `{"error": "..."}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `?x=` parameters, with a malformed query answered in the API's error
/// body (axum's own rejection is plain text).
#[derive(Debug)]
pub(super) struct Q<T>(pub(super) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, &e.body_text())),
        }
    }
}

/// `limit` and `cursor` of the list endpoints.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PageParams {
    pub(super) limit: Option<usize>,
    pub(super) cursor: Option<String>,
}

/// A page request: at most `limit` items after `after`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    pub(super) limit: usize,
    /// The sort key of the last item of the previous page.
    pub(super) after: Option<(i64, u64)>,
}

/// Items per page when `limit` is not given, and at most.
pub(super) const DEFAULT_PAGE: usize = 100;
pub(super) const MAX_PAGE: usize = 1000;

impl PageParams {
    /// The page, or the error to answer.
    pub(super) fn page(&self) -> Result<Page, String> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(format!("limit must be between 1 and {MAX_PAGE}"));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                decode_cursor(c).ok_or_else(|| "cursor is not one this API returned".to_owned())?,
            ),
        };
        Ok(Page { limit, after })
    }
}

/// Cursors are opaque to clients: the previous page's last sort key.
pub(super) fn encode_cursor(key: (i64, u64)) -> String {
    format!("{:016x}{:016x}", key.0 as u64, key.1)
}

pub(super) fn decode_cursor(c: &str) -> Option<(i64, u64)> {
    if c.len() != 32 || !c.is_ascii() {
        return None;
    }
    let t = u64::from_str_radix(&c[..16], 16).ok()?;
    let n = u64::from_str_radix(&c[16..], 16).ok()?;
    Some((t as i64, n))
}

/// One page of `items` ordered by `key` descending (newest first), and the
/// cursor of the next page (`None` on the last).
pub(super) fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (i64, u64),
    page: Page,
) -> (Vec<T>, Option<String>) {
    items.sort_by_key(|i| std::cmp::Reverse(key(i)));
    if let Some(after) = page.after {
        items.retain(|i| key(i) < after);
    }
    let more = items.len() > page.limit;
    items.truncate(page.limit);
    let next = if more {
        items.last().map(|i| encode_cursor(key(i)))
    } else {
        None
    };
    (items, next)
}
