//! Webhooks: systems push what changed instead of waiting for a poll.
//! Each request is verified with its system's own scheme over the raw body
//! bytes (constant-time comparison) and, where a timestamp is signed, a
//! replay window; only then is the payload read into signals. A request
//! that fails verification stores nothing.
//!
//! | system | header | scheme |
//! |---|---|---|
//! | GitHub | `X-Hub-Signature-256` | `sha256=` hex HMAC-SHA256(secret, body) |
//! | GitLab | `X-Gitlab-Token` | the secret itself |
//! | Jira | `X-Hub-Signature` | `sha256=` hex HMAC-SHA256(secret, body) |
//! | Linear | `Linear-Signature` | hex HMAC-SHA256(secret, body); `webhookTimestamp` (ms) in the body within the window |
//! | Slack | `X-Slack-Signature`, `X-Slack-Request-Timestamp` | `v0=` hex HMAC-SHA256(secret, `v0:{ts}:{body}`); ts within the window |
//! | deploy | `X-Causeway-Signature`, `X-Causeway-Timestamp` | `sha256=` hex HMAC-SHA256(secret, `{ts}.{body}`); ts within the window |

use causeway_model::{Signal, SignalKind, TenantId};
use http::HeaderMap;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::{Item, time};

mod deploy;

/// Signed timestamps older or newer than this are refused (replays).
pub const REPLAY_WINDOW_S: i64 = 300;

/// Why a webhook was refused or not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Signature header missing or wrong (401).
    #[error("signature: {0}")]
    Signature(String),
    /// The signed timestamp is outside the replay window (401).
    #[error("timestamp outside the {REPLAY_WINDOW_S} s replay window")]
    Replay,
    /// Verified, but the body is not a payload this system sends (400).
    #[error("payload: {0}")]
    Payload(String),
}

/// The systems that can push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// GitHub.
    GitHub,
    /// GitLab.
    GitLab,
    /// Jira Cloud.
    Jira,
    /// Linear.
    Linear,
    /// Slack Events API.
    Slack,
    /// causeway's generic deploy event.
    Deploy,
}

impl Source {
    /// Every system that can push.
    pub const ALL: [Source; 6] = [
        Source::GitHub,
        Source::GitLab,
        Source::Jira,
        Source::Linear,
        Source::Slack,
        Source::Deploy,
    ];

    /// By path segment name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "github" => Source::GitHub,
            "gitlab" => Source::GitLab,
            "jira" => Source::Jira,
            "linear" => Source::Linear,
            "slack" => Source::Slack,
            "deploy" => Source::Deploy,
            _ => return None,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex HMAC-SHA256 of `parts` concatenated.
pub fn hmac_hex(secret: &Secret, parts: &[&[u8]]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    hex(ctx.sign().as_ref())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| WebhookError::Signature(format!("{name} missing")))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn check_ts(ts_s: i64, now_s: i64) -> Result<(), WebhookError> {
    if (now_s - ts_s).abs() > REPLAY_WINDOW_S {
        return Err(WebhookError::Replay);
    }
    Ok(())
}

/// Verifies a request of `source` signed with `secret`; `now_s` is the
/// current unix time.
pub fn verify(
    source: Source,
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), WebhookError> {
    let bad = || WebhookError::Signature("does not match".into());
    match source {
        Source::GitHub | Source::Jira => {
            let name = if source == Source::GitHub {
                "x-hub-signature-256"
            } else {
                "x-hub-signature"
            };
            let got = header(headers, name)?;
            let want = format!("sha256={}", hmac_hex(secret, &[body]));
            same(got, &want).then_some(()).ok_or_else(bad)
        }
        Source::GitLab => {
            let got = header(headers, "x-gitlab-token")?;
            same(got, secret.expose()).then_some(()).ok_or_else(bad)
        }
        Source::Linear => {
            let got = header(headers, "linear-signature")?;
            if !same(got, &hmac_hex(secret, &[body])) {
                return Err(bad());
            }
            // Signed inside the body: milliseconds.
            let ts = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("webhookTimestamp")
                        .and_then(serde_json::Value::as_i64)
                })
                .ok_or_else(|| WebhookError::Payload("webhookTimestamp missing".into()))?;
            check_ts(ts / 1000, now_s)
        }
        Source::Slack => {
            let ts = header(headers, "x-slack-request-timestamp")?;
            let got = header(headers, "x-slack-signature")?;
            let want = format!(
                "v0={}",
                hmac_hex(secret, &[b"v0:", ts.as_bytes(), b":", body])
            );
            if !same(got, &want) {
                return Err(bad());
            }
            check_ts(ts.parse().map_err(|_| WebhookError::Replay)?, now_s)
        }
        Source::Deploy => {
            let ts = header(headers, "x-causeway-timestamp")?;
            let got = header(headers, "x-causeway-signature")?;
            let want = format!("sha256={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]));
            if !same(got, &want) {
                return Err(bad());
            }
            check_ts(ts.parse().map_err(|_| WebhookError::Replay)?, now_s)
        }
    }
}

/// The generic deploy event's body.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeployEvent {
    /// The service deployed.
    pub service: String,
    /// Its new version.
    pub version: String,
    /// The commit it was built from.
    #[serde(default)]
    pub commit: Option<String>,
    /// When (RFC 3339); default: when received.
    #[serde(default)]
    pub time: Option<String>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Who or what deployed.
    #[serde(default)]
    pub author: Option<String>,
    /// A link (pipeline run, change record).
    #[serde(default)]
    pub url: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// What a verified request carries: signals, or for Slack's URL
/// verification the challenge to echo.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Records to store.
    Items(Vec<Item>),
    /// Slack's `url_verification`: answer with this.
    Challenge(String),
}

pub(crate) fn base(
    tenant: &TenantId,
    source: &str,
    kind: SignalKind,
    id: String,
    at: i64,
) -> Signal {
    Signal::new(tenant, kind, source, id, at)
}

pub(crate) fn s<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Paths a push payload's commit added, modified and removed (GitHub and
/// GitLab write them alike).
pub(crate) fn pushed_paths(commit: &serde_json::Value) -> Vec<String> {
    ["added", "modified", "removed"]
        .iter()
        .filter_map(|key| commit.get(key).and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

pub(crate) fn ts_at(v: &serde_json::Value, path: &[&str], fallback: i64) -> i64 {
    s(v, path).and_then(time::parse_ns).unwrap_or(fallback)
}

/// Reads a verified payload into records. `source_name` is the connector
/// name given to the signals; `event` the system's event header if any
/// (`X-GitHub-Event`, `X-Gitlab-Event`).
pub fn parse(
    source: Source,
    source_name: &str,
    tenant: &TenantId,
    event: Option<&str>,
    body: &[u8],
    now_ns: i64,
) -> Result<Parsed, WebhookError> {
    if source == Source::Deploy {
        return deploy::parse(source_name, tenant, body, now_ns);
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Payload(format!("not JSON: {e}")))?;
    match source {
        Source::GitHub => {
            crate::github::webhook::parse_webhook(&v, source_name, tenant, event, now_ns)
        }
        Source::GitLab => crate::gitlab::webhook::parse_webhook(&v, source_name, tenant, now_ns),
        Source::Jira => crate::jira::webhook::parse_webhook(&v, source_name, tenant, now_ns),
        Source::Linear => crate::linear::webhook::parse_webhook(&v, source_name, tenant, now_ns),
        Source::Slack => crate::slack::webhook::parse_webhook(&v, source_name, tenant, now_ns),
        Source::Deploy => Ok(Parsed::Items(Vec::new())),
    }
}

#[cfg(test)]
mod tests;
