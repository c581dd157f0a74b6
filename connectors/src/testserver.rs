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

/// Faults a [`faulty`] server injects into a system's answers.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Requests seen.
    count: std::sync::atomic::AtomicUsize,
    /// Answer this request (1-based) with a 429 and `Retry-After: 1`.
    limit_at: std::sync::atomic::AtomicUsize,
    /// 429s sent.
    limited: std::sync::atomic::AtomicUsize,
    /// Cut every successful body in half.
    garble: std::sync::atomic::AtomicBool,
}

/// `handler` with [`Faults`] injected.
pub(crate) fn faulty(
    handler: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static,
    faults: Arc<Faults>,
) -> impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static {
    use std::sync::atomic::Ordering::SeqCst;
    move |r, base| {
        let n = faults.count.fetch_add(1, SeqCst) + 1;
        if faults.limit_at.load(SeqCst) == n {
            faults.limited.fetch_add(1, SeqCst);
            return (
                429,
                vec![
                    ("retry-after", "1".to_owned()),
                    ("content-type", "application/json".to_owned()),
                ],
                r#"{"message":"rate limit exceeded"}"#.to_owned(),
            );
        }
        let (status, headers, body) = handler(r, base);
        if faults.garble.load(SeqCst) && status == 200 {
            let cut = body.len() / 2;
            let mut end = cut;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            return (status, headers, body[..end].to_owned());
        }
        (status, headers, body)
    }
}

/// What every connector must do against its system's wire format: sync
/// through a 429 with `Retry-After` mid-sync, keep every cursor when a
/// page is malformed, fetch nothing new on a second sync, and refuse bad
/// credentials with an error naming the system and the read scopes it
/// needs, never the credential. Only GET and query POSTs are sent.
pub(crate) async fn conformance(
    handler: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static,
    good: impl Fn(&str) -> Box<dyn crate::Connector>,
    bad: impl Fn(&str) -> Box<dyn crate::Connector>,
    bad_secret: &str,
) {
    use std::sync::atomic::Ordering::SeqCst;

    use causeway_model::TenantId;
    use causeway_store::{DuckDbSignals, SignalStore};

    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};

    let faults = Arc::new(Faults::default());
    let server = TestServer::start(faulty(handler, Arc::clone(&faults))).await;
    let connector = good(&server.base);
    let system = connector.system();
    let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
    let mapper = ServiceMapper::default();
    let tenant = TenantId::new("acme").expect("tenant");
    // Far enough back for the fixtures' dates.
    let settings = SyncSettings {
        lookback_ns: 30 * 365 * 86_400_000_000_000,
        ..SyncSettings::default()
    };

    faults.limit_at.store(2, SeqCst);
    let first = sync_connector(connector.as_ref(), &tenant, &store, &mapper, settings).await;
    assert!(first.failed.is_empty(), "{system}: {first:?}");
    assert!(first.records > 0, "{system}: {first:?}");
    assert_eq!(
        faults.limited.load(SeqCst),
        1,
        "{system}: the 429 was answered"
    );
    assert!(
        first.stream_pages.iter().any(|(_, n)| *n >= 3),
        "{system}: a stream of at least three pages: {first:?}"
    );
    let cursors = |store: &DuckDbSignals| {
        connector
            .streams()
            .iter()
            .map(|s| store.cursor(&tenant, connector.name(), s).expect("cursor"))
            .collect::<Vec<_>>()
    };
    let before = cursors(&*store.lock().await);
    assert!(before.iter().all(Option::is_some), "{system}: {before:?}");

    faults.garble.store(true, SeqCst);
    let garbled = sync_connector(connector.as_ref(), &tenant, &store, &mapper, settings).await;
    assert_eq!(
        garbled.failed.len(),
        connector.streams().len(),
        "{system}: every stream refuses a malformed page: {garbled:?}"
    );
    assert!(
        garbled
            .failed
            .iter()
            .all(|(_, e)| e.contains("unexpected answer")),
        "{system}: {garbled:?}"
    );
    assert_eq!(
        cursors(&*store.lock().await),
        before,
        "{system}: cursors kept"
    );
    faults.garble.store(false, SeqCst);

    let again = sync_connector(connector.as_ref(), &tenant, &store, &mapper, settings).await;
    assert!(again.failed.is_empty(), "{system}: {again:?}");
    assert_eq!(
        again.new, 0,
        "{system}: nothing changed, nothing new: {again:?}"
    );

    let refused = sync_connector(
        bad(&server.base).as_ref(),
        &tenant,
        &store,
        &mapper,
        settings,
    )
    .await;
    assert!(!refused.failed.is_empty(), "{system}: {refused:?}");
    for (_, e) in &refused.failed {
        assert!(
            e.starts_with(&format!("{system}: credentials refused")),
            "{e}"
        );
        assert!(
            e.contains(crate::read_scopes(system)),
            "{system} names the scopes it needs: {e}"
        );
        assert!(
            !e.contains(bad_secret),
            "{system}: the credential leaked: {e}"
        );
    }
    assert_read_only(&server.seen());
}
