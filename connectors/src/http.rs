//! The HTTP layer every connector shares, read-only by construction.
//!
//! It sends GET, and POST only to read-only query endpoints (a GraphQL
//! query, never a mutation; a search; Azure DevOps' WIQL): there is no way to ask it for any
//! other method, and a POST anywhere else is refused before it is sent.
//!
//! Politeness: one request at a time per client (per token), `Retry-After`
//! honoured (seconds or an HTTP date), otherwise the system's reset header
//! (`x-ratelimit-reset` epoch seconds, `RateLimit-Reset`, Jira's ISO
//! `X-RateLimit-Reset`), otherwise exponential backoff with jitter; and a
//! pause before the next request when the remaining budget falls under a
//! tenth of the limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, Result, body_excerpt, display_url};
use crate::oauth::OAuthSession;
use crate::secret::Secret;

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User (an e-mail for Atlassian, Zendesk).
        user: String,
        /// Password or API token.
        password: Secret,
    },
    /// A header of the system's own (`PRIVATE-TOKEN`, Linear's raw key in
    /// `Authorization`).
    Header {
        /// Header name.
        name: HeaderName,
        /// Its value.
        value: Secret,
    },
    /// `Authorization: Bearer <token>` with an OAuth access token that is
    /// renewed before it expires and after a 401.
    OAuth(Arc<OAuthSession>),
}

/// Retry and wait limits.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff when the system names no wait.
    pub backoff: Duration,
    /// Longest single wait; a system asking for more gets
    /// [`Error::RateLimited`] and the next scheduled sync tries again.
    pub max_wait: Duration,
    /// Per request.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A response that was read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// Final URL.
    pub url: Url,
    /// Status (2xx: errors are returned as [`Error`]s).
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON, or an [`Error::Upstream`] naming what was wrong.
    pub fn json<T: serde::de::DeserializeOwned>(&self, system: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Upstream {
            system,
            url: display_url(&self.url),
            message: format!("{e} (body: {})", body_excerpt(&self.body)),
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `rel="next"` target of a `Link` header, verbatim.
    pub fn next_link(&self) -> Option<String> {
        self.headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
    }
}

/// The `rel="next"` URL of one `Link` header value. Targets are read
/// between `<` and `>`, so a URL with commas in it (ServiceNow's field
/// lists) is not cut.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let tail = &after[end + 1..];
        let params = tail.find('<').map_or(tail, |i| &tail[..i]);
        let is_next = params.split([';', ',']).any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = tail;
    }
    None
}

/// Read-only endpoints that are queried with POST. A POST to any other
/// path is refused.
fn is_query_endpoint(url: &Url) -> bool {
    let path = url.path().trim_end_matches('/');
    path.ends_with("/graphql")
        || path.ends_with("/search/jql")
        || path.ends_with("/search")
        || path.ends_with("/wit/wiql")
}

/// Whether a GraphQL document is a query (not a mutation or subscription):
/// its first operation keyword, after comments, is `query` or a bare `{`.
pub fn is_graphql_query(doc: &str) -> bool {
    let mut rest = doc;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix('#') {
            rest = comment.split_once('\n').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.starts_with('{')
        || rest
            .strip_prefix("query")
            .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '{' || c == '('))
}

/// The methods this layer can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadMethod {
    Get,
    /// POST of a query document to a query endpoint.
    Query,
}

/// The reqwest client every connector request goes through: causeway's
/// user agent, the policy's timeouts, and `redirect`.
pub(crate) fn http_client(
    policy: RetryPolicy,
    redirect: reqwest::redirect::Policy,
) -> std::result::Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default crypto provider; ring is the one
    // the receiver uses too. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!(
            "causeway/",
            env!("CARGO_PKG_VERSION"),
            " (read-only)"
        ))
        .timeout(policy.timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(redirect)
        .build()
}

/// The shared read-only client of one connector instance (one token).
#[derive(Debug)]
pub struct ReadOnlyClient {
    system: &'static str,
    http: reqwest::Client,
    auth: Option<Auth>,
    headers: HeaderMap,
    policy: RetryPolicy,
    /// One request at a time; holds the earliest time of the next one.
    pace: Mutex<Option<tokio::time::Instant>>,
    /// The only origin requests (next-page links, redirects) may go to,
    /// once pinned.
    origin: Option<url::Origin>,
}

impl ReadOnlyClient {
    /// A client for `system` authenticating with `auth`, sending `headers`
    /// on every request.
    pub fn new(
        system: &'static str,
        auth: Option<Auth>,
        headers: &[(&'static str, &str)],
        policy: RetryPolicy,
    ) -> Result<Self> {
        let http = http_client(policy, reqwest::redirect::Policy::limited(5)).map_err(|e| {
            Error::Config {
                connector: system.to_owned(),
                message: format!("HTTP client: {e}"),
            }
        })?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).map_err(|_| Error::Config {
                    connector: system.to_owned(),
                    message: format!("header {name} is not a valid header value"),
                })?,
            );
        }
        Ok(Self {
            system,
            http,
            auth,
            headers: map,
            policy,
            pace: Mutex::new(None),
            origin: None,
        })
    }

    /// Only ever sends to the origin of `base_url` (scheme, host, port):
    /// a next-page link or a redirect elsewhere is refused with
    /// [`Error::ForeignUrl`] instead of being sent with the credential.
    pub fn pinned_to(mut self, base_url: &str) -> Result<Self> {
        causeway_model::outbound::check(base_url).map_err(|message| Error::Config {
            connector: self.system.to_owned(),
            message,
        })?;
        let origin = Url::parse(base_url)
            .map_err(|e| Error::Config {
                connector: self.system.to_owned(),
                message: format!("base URL {base_url:?}: {e}"),
            })?
            .origin();
        let allowed = origin.clone();
        // Redirects stay on the origin too (reqwest drops `Authorization`
        // on a cross-host redirect, but not GitLab's `PRIVATE-TOKEN`).
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if attempt.url().origin() == allowed {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        self.http = http_client(self.policy, redirect).map_err(|e| Error::Config {
            connector: self.system.to_owned(),
            message: format!("HTTP client: {e}"),
        })?;
        self.origin = Some(origin);
        Ok(self)
    }

    /// The system this client talks to.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Response> {
        self.send(ReadMethod::Get, url, None).await
    }

    /// POST a read-only query document (`body`) to a query endpoint
    /// (`…/graphql`, `…/search`, `…/search/jql`). A GraphQL body must be a
    /// query, not a mutation.
    pub async fn query(&self, url: &str, body: &serde_json::Value) -> Result<Response> {
        let is_graphql = url
            .split('?')
            .next()
            .is_some_and(|p| p.trim_end_matches('/').ends_with("/graphql"));
        if is_graphql
            && !body
                .get("query")
                .and_then(|q| q.as_str())
                .is_some_and(is_graphql_query)
        {
            return Err(Error::ReadOnly {
                method: "POST (not a GraphQL query)".into(),
                url: url.split('?').next().unwrap_or(url).to_owned(),
            });
        }
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Config {
            connector: self.system.to_owned(),
            message: format!("query body: {e}"),
        })?;
        self.send(ReadMethod::Query, url, Some(bytes)).await
    }

    async fn send(&self, method: ReadMethod, url: &str, body: Option<Vec<u8>>) -> Result<Response> {
        let parsed = Url::parse(url).map_err(|e| Error::Config {
            connector: self.system.to_owned(),
            message: format!("bad URL {}: {e}", url.split('?').next().unwrap_or(url)),
        })?;
        if method == ReadMethod::Query && !is_query_endpoint(&parsed) {
            return Err(Error::ReadOnly {
                method: "POST".into(),
                url: display_url(&parsed),
            });
        }
        let shown = display_url(&parsed);
        if let Some(origin) = &self.origin
            && parsed.origin() != *origin
        {
            return Err(Error::ForeignUrl {
                system: self.system,
                url: shown,
                origin: origin.ascii_serialization(),
            });
        }
        // One request at a time per token, as the systems ask.
        let mut pace = self.pace.lock().await;
        let mut attempt = 0u32;
        // The OAuth token generation sent, and whether it was renewed
        // after a 401 already (once per request).
        let mut oauth_generation = None;
        let mut renewed = false;
        loop {
            attempt += 1;
            if let Some(at) = *pace {
                tokio::time::sleep_until(at).await;
            }
            let mut req = match method {
                ReadMethod::Get => self.http.get(parsed.clone()),
                ReadMethod::Query => self
                    .http
                    .post(parsed.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone().unwrap_or_default()),
            };
            req = req.headers(self.headers.clone());
            req = match &self.auth {
                Some(Auth::Bearer(t)) => req.bearer_auth(t.expose()),
                Some(Auth::Basic { user, password }) => {
                    req.basic_auth(user, Some(password.expose()))
                }
                Some(Auth::Header { name, value }) => {
                    let mut v =
                        HeaderValue::from_str(value.expose()).map_err(|_| Error::Credential {
                            name: name.to_string(),
                            message: "not a valid header value".into(),
                        })?;
                    v.set_sensitive(true);
                    req.header(name.clone(), v)
                }
                Some(Auth::OAuth(session)) => {
                    let (token, generation) = session.token().await?;
                    oauth_generation = Some(generation);
                    req.bearer_auth(token.expose())
                }
                None => req,
            };
            let transport = |e: reqwest::Error| Error::Transport {
                system: self.system,
                url: shown.clone(),
                // Without the URL: reqwest's message may repeat the query.
                message: e.without_url().to_string(),
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.policy.attempts && (e.is_timeout() || e.is_connect()) => {
                    *pace = Some(tokio::time::Instant::now() + self.backoff(attempt));
                    tracing::debug!(system = self.system, url = %shown, attempt, "transport error; retrying");
                    continue;
                }
                Err(e) => return Err(transport(e)),
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let final_url = resp.url().clone();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) if attempt < self.policy.attempts => {
                    *pace = Some(tokio::time::Instant::now() + self.backoff(attempt));
                    tracing::debug!(system = self.system, url = %shown, error = %e.without_url(), "body cut off; retrying");
                    continue;
                }
                Err(e) => return Err(transport(e)),
            };
            *pace = pause_for_budget(&headers, SystemTime::now())
                .map(|d| tokio::time::Instant::now() + d.min(self.policy.max_wait));
            if (200..300).contains(&status) {
                return Ok(Response {
                    url: final_url,
                    status,
                    headers,
                    body,
                });
            }
            let limited = status == 429
                || (status == 403 && is_rate_limit_403(&headers, &body))
                || (status == 503 && headers.contains_key(reqwest::header::RETRY_AFTER));
            if limited || (500..600).contains(&status) {
                let wait = wait_from_headers(&headers, SystemTime::now())
                    .unwrap_or_else(|| self.backoff(attempt));
                if wait > self.policy.max_wait || attempt >= self.policy.attempts {
                    if limited {
                        return Err(Error::RateLimited {
                            system: self.system,
                            url: shown,
                            retry_after_s: wait.as_secs().max(1),
                        });
                    }
                    return Err(Error::Upstream {
                        system: self.system,
                        url: shown,
                        message: format!(
                            "status {status} after {attempt} attempts: {}",
                            body_excerpt(&body)
                        ),
                    });
                }
                tracing::info!(system = self.system, url = %shown, status, wait_ms = wait.as_millis() as u64, "rate limited or unavailable; waiting");
                *pace = Some(tokio::time::Instant::now() + wait);
                continue;
            }
            if status == 401
                && !renewed
                && let (Some(Auth::OAuth(session)), Some(generation)) =
                    (&self.auth, oauth_generation)
            {
                // Revoked before its announced expiry, or issued without
                // one: renew once and try again.
                renewed = true;
                session.renew_after(generation).await?;
                attempt -= 1;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(Error::Unauthorized {
                    system: self.system,
                    status,
                    url: shown,
                    message: body_excerpt(&body),
                });
            }
            return Err(Error::Upstream {
                system: self.system,
                url: shown,
                message: format!("status {status}: {}", body_excerpt(&body)),
            });
        }
    }

    /// The shared schedule: base × 2^(attempt-1) × [0.5, 1.5), capped.
    fn backoff(&self, attempt: u32) -> Duration {
        causeway_model::retry::Backoff::new(self.policy.backoff, self.policy.max_wait)
            .delay(attempt)
    }
}

/// GitHub answers its rate limits with 403 too: it is one when the
/// remaining budget is zero, a `retry-after` is given, or the message says
/// so (secondary limits). Salesforce's daily allocation is a 403 with
/// `REQUEST_LIMIT_EXCEEDED`.
fn is_rate_limit_403(headers: &HeaderMap, body: &[u8]) -> bool {
    headers.contains_key(reqwest::header::RETRY_AFTER)
        || header_u64(headers, "x-ratelimit-remaining") == Some(0)
        || {
            let text = String::from_utf8_lossy(body).to_ascii_lowercase();
            text.contains("rate limit") || text.contains("request_limit_exceeded")
        }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

/// How long the system asks us to wait: `Retry-After` (seconds or an HTTP
/// date), else a reset time (`x-ratelimit-reset` / `RateLimit-Reset` as
/// epoch seconds, or Jira's ISO `X-RateLimit-Reset`).
pub fn wait_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(v) = header_str(headers, "retry-after") {
        if let Ok(s) = v.parse::<u64>() {
            return Some(Duration::from_secs(s));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            return Some(until(at.timestamp(), now));
        }
    }
    for name in ["x-ratelimit-reset", "ratelimit-reset"] {
        if let Some(v) = header_str(headers, name) {
            if let Ok(s) = v.parse::<i64>() {
                // Epoch seconds, except for the draft standard's
                // delta-seconds (small numbers).
                return Some(if s > 1_000_000_000 {
                    until(s, now)
                } else {
                    Duration::from_secs(s.max(0) as u64)
                });
            }
            if let Some(ns) = crate::time::parse_ns(v) {
                return Some(until(ns / 1_000_000_000, now));
            }
        }
    }
    None
}

fn until(epoch_s: i64, now: SystemTime) -> Duration {
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // Checked: both come from a response header, any i64 is possible.
    let ahead = u64::try_from(epoch_s.saturating_sub(now_s)).unwrap_or(0);
    Duration::from_secs(ahead.saturating_add(1))
}

/// When the remaining budget is under a tenth of the limit, spread what is
/// left over the time to the reset.
pub fn pause_for_budget(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let pairs = [
        ("x-ratelimit-limit", "x-ratelimit-remaining"),
        ("ratelimit-limit", "ratelimit-remaining"),
        (
            "x-ratelimit-requests-limit",
            "x-ratelimit-requests-remaining",
        ),
    ];
    let (limit, remaining) = pairs
        .iter()
        .find_map(|(l, r)| Some((header_u64(headers, l)?, header_u64(headers, r)?)))?;
    if limit == 0 || remaining.saturating_mul(10) >= limit {
        return None;
    }
    let reset = [
        "x-ratelimit-reset",
        "ratelimit-reset",
        "x-ratelimit-requests-reset",
    ]
    .iter()
    .find_map(|n| header_str(headers, n))
    .and_then(|v| v.parse::<i64>().ok())?;
    // Linear's reset is in milliseconds.
    let reset_s = if reset > 100_000_000_000 {
        reset / 1000
    } else {
        reset
    };
    let left = until(reset_s, now);
    // A remaining budget over u32::MAX would truncate to 0 and divide by
    // zero: the header is the system's, not ours.
    Some(left / u32::try_from(remaining).unwrap_or(u32::MAX).max(1))
}

#[cfg(test)]
mod tests;
