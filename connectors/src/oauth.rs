//! OAuth 2.0 access tokens that renew themselves (RFC 6749 §6 refresh, or
//! §4.4 client credentials), for the systems whose OAuth tokens expire:
//! GitHub App user tokens (8 h), GitLab (2 h), Bitbucket, Microsoft Entra
//! for Azure DevOps, Atlassian 3LO (1 h, rotating refresh tokens), Linear,
//! Zendesk, ServiceNow, Slack token rotation (12 h) and Salesforce.
//!
//! The token endpoint is the one place a connector sends a POST that is not
//! a read query, so it has its own client, which can send exactly one kind
//! of request: the grant, to the configured token URL, with no redirects
//! (a client secret must not follow one), over HTTPS unless the host is
//! loopback. The read-only layer ([`crate::ReadOnlyClient`]) still refuses
//! every other write, and the session never talks to the system's API.
//!
//! A token is renewed a minute before it expires, and once after a 401
//! (revoked early, or an answer without `expires_in`). Systems that rotate
//! refresh tokens invalidate the old one at each renewal, so the new one is
//! sealed into the signal store (AES-256-GCM, [`crate::Vault`]) at once,
//! bound to the tenant and the connector; after a restart the stored one is
//! used, unless the configured refresh token changed since it was stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use causeway_model::TenantId;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result, display_url};
use crate::http::{RetryPolicy, wait_from_headers};
use crate::secret::Secret;

mod config;

pub use config::{
    BodyFormat, ClientAuth, Endpoint, OAuthConfig, TokenEndpoint, default_endpoint, settings,
    token_url_problem,
};

/// Renew this long before the announced expiry: a request that starts
/// with a token about to lapse would otherwise fail in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Attempts at the token endpoint when it is rate limited or unavailable.
const ATTEMPTS: u32 = 3;

/// Where renewed tokens are kept between restarts.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// The value stored under `name` for `tenant`, if any.
    async fn load(&self, tenant: &TenantId, name: &str) -> Result<Option<Secret>>;
    /// Stores `value` under `name` for `tenant`, replacing the old one.
    async fn save(&self, tenant: &TenantId, name: &str, value: &Secret) -> Result<()>;
}

/// The grant a session uses.
#[derive(Debug)]
enum Grant {
    RefreshToken,
    ClientCredentials,
}

/// What is sealed per connector: the tokens in use, and a fingerprint of
/// the configured refresh token they descend from.
#[derive(serde::Serialize, Deserialize)]
struct Stored {
    seed: String,
    refresh_token: Option<String>,
    access_token: Option<String>,
    /// Unix seconds.
    expires_at: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    access: Option<Secret>,
    expires_at: Option<SystemTime>,
    refresh: Option<Secret>,
    /// Bumped at each renewal, so that of several requests refused with
    /// the same old token only the first renews it.
    generation: u64,
}

/// One connector's OAuth tokens.
pub struct OAuthSession {
    system: &'static str,
    connector: String,
    tenant: TenantId,
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: Option<Secret>,
    grant: Grant,
    scope: Option<String>,
    client_auth: ClientAuth,
    body: BodyFormat,
    /// Fingerprint of the configured refresh token.
    seed: String,
    store: Option<Arc<dyn TokenStore>>,
    policy: RetryPolicy,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSession")
            .field("system", &self.system)
            .field("connector", &self.connector)
            .field("token_url", &display_url(&self.token_url))
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// Everything a session is made of, resolved.
#[derive(Debug)]
pub struct SessionSettings {
    /// Source system.
    pub system: &'static str,
    /// Connector instance name.
    pub connector: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Option<Secret>,
    /// Configured refresh token (absent: client credentials).
    pub refresh_token: Option<Secret>,
    /// Scope.
    pub scope: Option<String>,
    /// Client authentication.
    pub client_auth: ClientAuth,
    /// Body encoding.
    pub body: BodyFormat,
}

impl OAuthSession {
    /// A session; tokens are fetched (or restored from `store`) at the
    /// first request.
    pub fn new(
        s: SessionSettings,
        store: Option<Arc<dyn TokenStore>>,
        policy: RetryPolicy,
    ) -> Result<Self> {
        let config = |message: String| Error::Config {
            connector: s.connector.clone(),
            message,
        };
        if let Some(p) = token_url_problem(&s.token_url) {
            return Err(config(format!("oauth.token_url: {p}")));
        }
        let token_url = Url::parse(&s.token_url).map_err(|e| config(e.to_string()))?;
        if s.client_auth == ClientAuth::Basic && s.client_secret.is_none() {
            return Err(config(
                "oauth: client_auth basic needs a client_secret".into(),
            ));
        }
        // No redirects: the client secret must not follow one.
        let http = crate::http::http_client(policy, reqwest::redirect::Policy::none())
            .map_err(|e| config(format!("HTTP client: {e}")))?;
        let seed = fingerprint(s.refresh_token.as_ref());
        let grant = if s.refresh_token.is_some() {
            Grant::RefreshToken
        } else {
            Grant::ClientCredentials
        };
        Ok(Self {
            system: s.system,
            tenant: s.tenant,
            http,
            token_url,
            client_id: s.client_id,
            client_secret: s.client_secret,
            grant,
            scope: s.scope,
            client_auth: s.client_auth,
            body: s.body,
            seed,
            store,
            policy,
            state: tokio::sync::Mutex::new(State {
                refresh: s.refresh_token,
                ..State::default()
            }),
            connector: s.connector,
        })
    }

    /// The name the tokens are sealed under.
    pub fn store_name(&self) -> String {
        format!("oauth:{}", self.connector)
    }

    /// A valid access token and its generation (for [`Self::renew_after`]).
    pub async fn token(&self) -> Result<(Secret, u64)> {
        let mut st = self.state.lock().await;
        if !st.loaded {
            self.restore(&mut st).await;
        }
        let fresh = st.access.is_some()
            && st
                .expires_at
                .is_none_or(|at| SystemTime::now() + EXPIRY_MARGIN < at);
        if !fresh {
            self.renew(&mut st).await?;
        }
        match &st.access {
            Some(a) => Ok((a.clone(), st.generation)),
            None => Err(self.refused("no access token".into())),
        }
    }

    /// The system refused the token of `generation`: renew it, unless
    /// another request already did.
    pub async fn renew_after(&self, generation: u64) -> Result<()> {
        let mut st = self.state.lock().await;
        if st.generation == generation {
            self.renew(&mut st).await?;
        }
        Ok(())
    }

    /// Tokens stored by an earlier run, if they descend from the refresh
    /// token configured now (a new one in the config wins).
    async fn restore(&self, st: &mut State) {
        st.loaded = true;
        let Some(store) = &self.store else { return };
        let stored = match store.load(&self.tenant, &self.store_name()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(connector = %self.connector, tenant = %self.tenant, error = %e, "stored OAuth tokens unreadable; starting from the configured ones");
                return;
            }
        };
        let Ok(stored) = serde_json::from_str::<Stored>(stored.expose()) else {
            tracing::warn!(connector = %self.connector, tenant = %self.tenant, "stored OAuth tokens malformed; starting from the configured ones");
            return;
        };
        if stored.seed != self.seed {
            return;
        }
        if let Some(r) = stored.refresh_token {
            st.refresh = Some(Secret::new(r));
        }
        st.access = stored.access_token.map(Secret::new);
        st.expires_at = stored
            .expires_at
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    }

    async fn renew(&self, st: &mut State) -> Result<()> {
        let granted = self.request(st.refresh.as_ref()).await?;
        st.access = Some(Secret::new(granted.access_token));
        st.expires_at = granted
            .expires_in
            .map(|s| SystemTime::now() + Duration::from_secs(s));
        // Rotation: the old refresh token is void once a new one is issued.
        if let Some(r) = granted.refresh_token {
            st.refresh = Some(Secret::new(r));
        }
        st.generation += 1;
        tracing::info!(connector = %self.connector, tenant = %self.tenant, expires_in_s = granted.expires_in, "OAuth access token renewed");
        if let Some(store) = &self.store {
            let stored = Stored {
                seed: self.seed.clone(),
                refresh_token: st.refresh.as_ref().map(|s| s.expose().to_owned()),
                access_token: st.access.as_ref().map(|s| s.expose().to_owned()),
                expires_at: st.expires_at.and_then(|t| {
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs())
                }),
            };
            let value = serde_json::to_string(&stored).map(Secret::new);
            let saved = match value {
                Ok(v) => store.save(&self.tenant, &self.store_name(), &v).await,
                Err(e) => Err(Error::Seal(e.to_string())),
            };
            if let Err(e) = saved {
                // The tokens work; only a restart would need a new
                // authorization if the refresh token was rotated.
                tracing::error!(connector = %self.connector, tenant = %self.tenant, error = %e, "renewed OAuth tokens could not be stored");
            }
        }
        Ok(())
    }

    /// The grant request, retried while the endpoint is rate limited or
    /// unavailable.
    async fn request(&self, refresh: Option<&Secret>) -> Result<Granted> {
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(6);
        match (&self.grant, refresh) {
            (Grant::RefreshToken, Some(r)) => {
                params.push(("grant_type", "refresh_token"));
                params.push(("refresh_token", r.expose()));
            }
            (Grant::RefreshToken, None) => {
                return Err(self.refused("no refresh token".into()));
            }
            (Grant::ClientCredentials, _) => params.push(("grant_type", "client_credentials")),
        }
        if self.client_auth == ClientAuth::Body {
            params.push(("client_id", &self.client_id));
            if let Some(s) = &self.client_secret {
                params.push(("client_secret", s.expose()));
            }
        }
        if let Some(s) = &self.scope {
            params.push(("scope", s));
        }
        let (content_type, body) = match self.body {
            BodyFormat::Form => {
                let mut f = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in &params {
                    f.append_pair(k, v);
                }
                ("application/x-www-form-urlencoded", f.finish().into_bytes())
            }
            BodyFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                    .collect();
                let bytes = serde_json::to_vec(&map)
                    .map_err(|e| self.refused(format!("request body: {e}")))?;
                ("application/json", bytes)
            }
        };
        let shown = display_url(&self.token_url);
        let mut attempt = 0;
        let schedule =
            causeway_model::retry::Backoff::new(self.policy.backoff, self.policy.max_wait);
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(self.token_url.clone())
                .header(CONTENT_TYPE, content_type)
                // GitHub answers form-encoded unless asked for JSON.
                .header(ACCEPT, "application/json")
                .body(body.clone());
            if self.client_auth == ClientAuth::Basic {
                req = req.basic_auth(
                    &self.client_id,
                    self.client_secret.as_ref().map(Secret::expose),
                );
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(schedule.delay(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Transport {
                        system: self.system,
                        url: shown,
                        message: e.without_url().to_string(),
                    });
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| Error::Transport {
                system: self.system,
                url: shown.clone(),
                message: e.without_url().to_string(),
            })?;
            if status == 429 || (500..600).contains(&status) {
                let wait = retry_wait(&headers, schedule.delay(attempt));
                if attempt < ATTEMPTS && wait <= self.policy.max_wait {
                    tracing::info!(connector = %self.connector, status, wait_ms = wait.as_millis() as u64, "token endpoint busy; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(self.refused(format!("token endpoint answered {status}")));
            }
            return self.read_grant(status, &bytes);
        }
    }

    /// The token endpoint's answer. Error details come only from the
    /// standard `error`/`error_description` fields (and Slack's `error`),
    /// never from the body at large, which could hold a token.
    fn read_grant(&self, status: u16, body: &[u8]) -> Result<Granted> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| {
            self.refused(format!(
                "status {status}, not a JSON token response ({:?})",
                e.classify()
            ))
        })?;
        let error = answer
            .error
            .as_deref()
            .or((answer.ok == Some(false)).then_some("ok: false"));
        if let Some(error) = error {
            let detail = answer
                .error_description
                .as_deref()
                .map(|d| format!(": {}", short(d)))
                .unwrap_or_default();
            return Err(self.refused(format!("{}{detail}", short(error))));
        }
        if !(200..300).contains(&status) {
            return Err(self.refused(format!("status {status}")));
        }
        let Some(access_token) = answer.access_token.filter(|t| !t.is_empty()) else {
            return Err(self.refused("the answer has no access_token".into()));
        };
        Ok(Granted {
            access_token,
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
            expires_in: answer.expires_in.and_then(|v| v.seconds()),
        })
    }

    fn refused(&self, message: String) -> Error {
        Error::OAuth {
            system: self.system,
            connector: self.connector.clone(),
            url: display_url(&self.token_url),
            message,
        }
    }
}

fn retry_wait(headers: &HeaderMap, fallback: Duration) -> Duration {
    wait_from_headers(headers, SystemTime::now()).unwrap_or(fallback)
}

/// At most 120 characters of a server's words, on one line.
fn short(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    causeway_model::signal::excerpt(&one_line, 120)
}

/// A stable, non-reversible name for the configured refresh token.
fn fingerprint(token: Option<&Secret>) -> String {
    let Some(t) = token else {
        return "client_credentials".into();
    };
    let d = ring::digest::digest(&ring::digest::SHA256, t.expose().as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// RFC 6749 §5.1/§5.2, plus Slack's `ok` and GitHub's errors in a 200.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<Seconds>,
    error: Option<String>,
    error_description: Option<String>,
    ok: Option<bool>,
}

/// `expires_in` as a number, or as a string of digits (some servers).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn seconds(&self) -> Option<u64> {
        match self {
            Seconds::Number(n) => Some(*n),
            Seconds::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests;
