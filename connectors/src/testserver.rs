//! A local HTTP server for connector tests: every request is recorded
//! (method, path, query, headers, body) and answered by the test's own
//! function, which speaks the system's wire format.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Seen {
    pub(crate) fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    pub(crate) fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
}

/// An answer: status, headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

type Handler = dyn Fn(&Seen, &str) -> Answer + Send + Sync;

#[derive(Clone)]
struct Shared {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
}

/// A running server.
pub(crate) struct TestServer {
    pub(crate) base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Starts a server answering with `handler(request, base_url)`.
    pub(crate) async fn start(
        handler: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            base: base.clone(),
            seen: Arc::clone(&seen),
            handler: Arc::new(handler),
        };
        let app = axum::Router::new().fallback(answer).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, seen }
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn answer(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        headers,
        body,
    };
    let (status, hdrs, body) = (s.handler)(&seen, &s.base);
    s.seen.lock().expect("lock").push(seen);
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    for (k, v) in hdrs {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Methods every connector test may see: GET, and POST only to a query
/// endpoint. Panics naming the first other request.
pub(crate) fn assert_read_only(seen: &[Seen]) {
    for s in seen {
        let query_endpoint = s.path.ends_with("/graphql")
            || s.path.ends_with("/search")
            || s.path.ends_with("/search/jql")
            || s.path.ends_with("/wit/wiql");
        assert!(
            s.method == "GET" || (s.method == "POST" && query_endpoint),
            "a connector sent {} {}",
            s.method,
            s.path
        );
    }
}
