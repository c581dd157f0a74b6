//! Browser sessions for the dashboard: `POST /api/v1/session` trades an
//! API key for an HttpOnly, SameSite=Strict cookie and a CSRF token that
//! every state-changing request made with the cookie must echo in
//! `X-CSRF-Token`. Scripts and tools keep using the API key directly.
//!
//! Sessions live in memory (a restart signs everyone out), expire after
//! [`SESSION_TTL`], and are capped at [`MAX_SESSIONS`] (the oldest goes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use causeway_model::{Actor, AuditOutcome, TenantId};
use causeway_server::{Class, ClientAddr, key_fingerprint};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::json;

use super::{ApiState, Caller, CallerActor, error, too_many};

/// Name of the session cookie.
pub const COOKIE: &str = "causeway_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    tenant: TenantId,
    csrf: String,
    created: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

/// What a valid session cookie resolves to.
#[derive(Debug, Clone)]
pub(super) struct SessionInfo {
    pub(super) tenant: TenantId,
    pub(super) csrf: String,
}

fn random_hex(bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).ok()?;
    Some(hex::encode(buf))
}

impl Sessions {
    fn create(&self, tenant: TenantId) -> Option<(String, String)> {
        let token = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            Session {
                tenant,
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        Some((token, csrf))
    }

    /// The session of the request's cookie, if valid.
    pub(super) fn lookup(&self, headers: &HeaderMap) -> Option<SessionInfo> {
        let token = cookie(headers, COOKIE)?;
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get(token)?;
        if s.created.elapsed() >= SESSION_TTL {
            map.remove(token);
            return None;
        }
        Some(SessionInfo {
            tenant: s.tenant.clone(),
            csrf: s.csrf.clone(),
        })
    }

    fn remove(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            self.by_token
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token);
        }
    }

    /// Ends every session of `tenant` (its data was deleted, say).
    pub fn remove_tenant(&self, tenant: &TenantId) {
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| &s.tenant != tenant);
    }
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request carries the session's CSRF token (constant time).
pub(super) fn csrf_ok(headers: &HeaderMap, session: &SessionInfo) -> bool {
    use subtle::ConstantTimeEq as _;
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(session.csrf.as_bytes())))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    api_key: String,
}

/// `POST /api/v1/session`: the sign-in form. The client address's rate
/// and failed-authentication block apply before the key is looked at, so
/// a guessing loop is stopped before a right guess could get through.
pub(super) async fn create(
    State(state): State<Arc<ApiState>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = state
        .gate
        .limits()
        .client_ip(client.map(|Extension(c)| c), &headers);
    if let Err(l) = state.gate.limits().admit_client(Class::Api, ip) {
        return too_many(&l);
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json {\"api_key\": \"...\"}",
        );
    }
    let sign_in: SignIn = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be {{\"api_key\": \"...\"}}: {e}"),
            );
        }
    };
    let fingerprint = key_fingerprint(sign_in.api_key.as_bytes());
    let tenant = match state.gate.auth().tenant_for_key(sign_in.api_key.as_bytes()) {
        Ok(t) => t,
        Err(e) => {
            state.gate.auth_failed(Class::Api, ip, Some(fingerprint), e);
            return error(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    state.gate.limits().auth_succeeded(ip);
    let actor = Actor {
        client: ip,
        key_fingerprint: Some(fingerprint),
        via: "api_key".into(),
    };
    state.audit(
        &tenant,
        &actor,
        "session.create",
        AuditOutcome::Success,
        String::new(),
    );
    let Some((token, csrf)) = state.sessions.create(tenant.clone()) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness available for a session token",
        );
    };
    let mut r = Json(json!({"tenant": tenant.as_str(), "csrf_token": csrf})).into_response();
    if let Some(c) = set_cookie(&token, SESSION_TTL.as_secs(), state.secure_cookies) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /api/v1/session` (behind authentication). Without configured API
/// keys the API serves everyone as the `default` tenant, so the dashboard
/// does too: the answer says so (`"keyless": true`) instead of asking for
/// a key that cannot exist. There is no cookie then, hence no CSRF token.
pub(super) async fn current(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let body = match state.sessions.lookup(&headers) {
        Some(s) => json!({"tenant": s.tenant.as_str(), "csrf_token": s.csrf, "keyless": false}),
        None if !state.gate.auth().enabled() => json!({
            "tenant": TenantId::default_tenant().as_str(),
            "csrf_token": "",
            "keyless": true,
        }),
        None => return error(StatusCode::UNAUTHORIZED, "no session"),
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `DELETE /api/v1/session` (behind authentication and the CSRF check).
pub(super) async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Extension(CallerActor(actor)): Extension<CallerActor>,
    headers: HeaderMap,
) -> Response {
    state.sessions.remove(&headers);
    state.audit(
        &tenant,
        &actor,
        "session.delete",
        AuditOutcome::Success,
        String::new(),
    );
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = set_cookie("", 0, state.secure_cookies) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; causeway_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn sessions_expire_and_are_capped() {
        let s = Sessions::default();
        let t = TenantId::new("acme").expect("tenant");
        let (token, csrf) = s.create(t.clone()).expect("session");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={token}")).expect("header"),
        );
        let info = s.lookup(&h).expect("valid");
        assert_eq!(info.tenant, t);
        let mut with = h.clone();
        with.insert(
            "x-csrf-token",
            HeaderValue::from_str(&csrf).expect("header"),
        );
        assert!(csrf_ok(&with, &info));
        assert!(!csrf_ok(&h, &info));
        s.remove_tenant(&t);
        assert!(s.lookup(&h).is_none());
    }
}
