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

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use http::HeaderMap;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::jira::adf_text;
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Item, time};

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

fn base(tenant: &TenantId, source: &str, kind: SignalKind, id: String, at: i64) -> Signal {
    Signal::new(tenant, kind, source, id, at)
}

fn s<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Paths a push payload's commit added, modified and removed (GitHub and
/// GitLab write them alike).
fn pushed_paths(commit: &serde_json::Value) -> Vec<String> {
    ["added", "modified", "removed"]
        .iter()
        .filter_map(|key| commit.get(key).and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

fn ts_at(v: &serde_json::Value, path: &[&str], fallback: i64) -> i64 {
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
        let e: DeployEvent = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Payload(format!("deploy event: {e}")))?;
        if e.service.trim().is_empty() || e.version.trim().is_empty() {
            return Err(WebhookError::Payload(
                "service and version are required".into(),
            ));
        }
        let at = match &e.time {
            Some(t) => time::parse_ns(t)
                .ok_or_else(|| WebhookError::Payload(format!("time {t:?} is not RFC 3339")))?,
            None => now_ns,
        };
        let mut sig = base(
            tenant,
            source_name,
            SignalKind::Deploy,
            format!("{}@{}@{at}", e.service, e.version),
            at,
        );
        sig.title = format!(
            "deploy {} {}{}",
            e.service,
            e.version,
            e.environment
                .as_deref()
                .map(|x| format!(" to {x}"))
                .unwrap_or_default()
        );
        sig.body = excerpt(e.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS);
        sig.author = e.author;
        sig.url = e.url;
        sig.version = Some(e.version);
        sig.commit = e.commit;
        sig.status = Some("success".into());
        return Ok(Parsed::Items(vec![Item {
            signal: sig,
            hints: Hints {
                services: vec![e.service],
                ..Hints::default()
            },
        }]));
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Payload(format!("not JSON: {e}")))?;
    let mut items = Vec::new();
    match source {
        Source::GitHub => {
            let repo = s(&v, &["repository", "full_name"]).map(str::to_owned);
            let hints = || Hints {
                repository: repo.clone(),
                ..Hints::default()
            };
            match event.unwrap_or_default() {
                "push" => {
                    for c in v
                        .get("commits")
                        .and_then(|c| c.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let Some(id) = s(c, &["id"]) else { continue };
                        let at = ts_at(c, &["timestamp"], now_ns);
                        let msg = s(c, &["message"]).unwrap_or_default();
                        let mut sig =
                            base(tenant, source_name, SignalKind::Commit, id.to_owned(), at);
                        sig.title = excerpt(msg.lines().next().unwrap_or(""), 300);
                        sig.body =
                            excerpt(msg.split_once('\n').map_or("", |x| x.1), BODY_EXCERPT_CHARS);
                        sig.url = s(c, &["url"]).map(str::to_owned);
                        sig.author = s(c, &["author", "username"])
                            .or(s(c, &["author", "name"]))
                            .map(str::to_owned);
                        sig.repository = repo.clone();
                        sig.commit = Some(id.to_owned());
                        sig.changed_paths = pushed_paths(c);
                        let mut h = hints();
                        h.paths = sig.changed_paths.clone();
                        items.push(Item {
                            signal: sig,
                            hints: h,
                        });
                    }
                }
                "deployment_status" | "deployment" => {
                    let d = v
                        .get("deployment")
                        .ok_or_else(|| WebhookError::Payload("deployment missing".into()))?;
                    let id = d.get("id").map(|i| i.to_string()).unwrap_or_default();
                    let at = ts_at(d, &["created_at"], now_ns);
                    let mut sig = base(tenant, source_name, SignalKind::Deploy, id, at);
                    sig.updated_ns = ts_at(&v, &["deployment_status", "created_at"], at);
                    let r = s(d, &["ref"]).unwrap_or_default();
                    sig.title = format!(
                        "deploy {r} to {}",
                        s(d, &["environment"]).unwrap_or_default()
                    );
                    sig.version = Some(r.to_owned());
                    sig.commit = s(d, &["sha"]).map(str::to_owned);
                    sig.status = s(&v, &["deployment_status", "state"]).map(str::to_owned);
                    sig.author = s(d, &["creator", "login"]).map(str::to_owned);
                    sig.repository = repo.clone();
                    items.push(Item {
                        signal: sig,
                        hints: hints(),
                    });
                }
                "release" => {
                    let r = v
                        .get("release")
                        .ok_or_else(|| WebhookError::Payload("release missing".into()))?;
                    if s(&v, &["action"]) == Some("published") {
                        let id = r.get("id").map(|i| i.to_string()).unwrap_or_default();
                        let mut sig = base(
                            tenant,
                            source_name,
                            SignalKind::Release,
                            id,
                            ts_at(r, &["published_at"], now_ns),
                        );
                        let tag = s(r, &["tag_name"]).unwrap_or_default();
                        sig.title = s(r, &["name"])
                            .filter(|n| !n.is_empty())
                            .unwrap_or(tag)
                            .to_owned();
                        sig.body = excerpt(s(r, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
                        sig.version = Some(tag.to_owned());
                        sig.url = s(r, &["html_url"]).map(str::to_owned);
                        sig.repository = repo.clone();
                        items.push(Item {
                            signal: sig,
                            hints: hints(),
                        });
                    }
                }
                "pull_request" => {
                    let p = v
                        .get("pull_request")
                        .ok_or_else(|| WebhookError::Payload("pull_request missing".into()))?;
                    if s(&v, &["action"]) == Some("closed")
                        && p.get("merged").and_then(|m| m.as_bool()) == Some(true)
                    {
                        let n = p.get("number").map(|i| i.to_string()).unwrap_or_default();
                        let mut sig = base(
                            tenant,
                            source_name,
                            SignalKind::PullRequest,
                            n,
                            ts_at(p, &["merged_at"], now_ns),
                        );
                        sig.updated_ns = ts_at(p, &["updated_at"], sig.created_ns);
                        sig.title = s(p, &["title"]).unwrap_or_default().to_owned();
                        sig.body = excerpt(s(p, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
                        sig.url = s(p, &["html_url"]).map(str::to_owned);
                        sig.author = s(p, &["user", "login"]).map(str::to_owned);
                        sig.commit = s(p, &["merge_commit_sha"]).map(str::to_owned);
                        sig.status = Some("merged".into());
                        sig.repository = repo.clone();
                        items.push(Item {
                            signal: sig,
                            hints: hints(),
                        });
                    }
                }
                "issues" => {
                    let i = v
                        .get("issue")
                        .ok_or_else(|| WebhookError::Payload("issue missing".into()))?;
                    let n = i.get("number").map(|x| x.to_string()).unwrap_or_default();
                    let id = format!("{}#{n}", repo.clone().unwrap_or_default());
                    let mut sig = base(
                        tenant,
                        source_name,
                        SignalKind::Ticket,
                        id,
                        ts_at(i, &["created_at"], now_ns),
                    );
                    sig.updated_ns = ts_at(i, &["updated_at"], sig.created_ns);
                    sig.title = s(i, &["title"]).unwrap_or_default().to_owned();
                    sig.body = excerpt(s(i, &["body"]).unwrap_or_default(), BODY_EXCERPT_CHARS);
                    sig.url = s(i, &["html_url"]).map(str::to_owned);
                    sig.status = s(i, &["state"]).map(str::to_owned);
                    sig.repository = repo.clone();
                    items.push(Item {
                        signal: sig,
                        hints: hints(),
                    });
                }
                // ping and the events this tool does not read.
                _ => {}
            }
        }
        Source::GitLab => {
            let repo = s(&v, &["project", "path_with_namespace"]).map(str::to_owned);
            match s(&v, &["object_kind"]).unwrap_or_default() {
                "push" => {
                    for c in v
                        .get("commits")
                        .and_then(|c| c.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let Some(id) = s(c, &["id"]) else { continue };
                        let msg = s(c, &["message"]).unwrap_or_default();
                        let mut sig = base(
                            tenant,
                            source_name,
                            SignalKind::Commit,
                            id.to_owned(),
                            ts_at(c, &["timestamp"], now_ns),
                        );
                        sig.title = excerpt(msg.lines().next().unwrap_or(""), 300);
                        sig.url = s(c, &["url"]).map(str::to_owned);
                        sig.author = s(c, &["author", "name"]).map(str::to_owned);
                        sig.repository = repo.clone();
                        sig.commit = Some(id.to_owned());
                        sig.changed_paths = pushed_paths(c);
                        let h = Hints {
                            repository: repo.clone(),
                            paths: sig.changed_paths.clone(),
                            ..Hints::default()
                        };
                        items.push(Item {
                            signal: sig,
                            hints: h,
                        });
                    }
                }
                "merge_request" => {
                    let a = v
                        .get("object_attributes")
                        .ok_or_else(|| WebhookError::Payload("object_attributes missing".into()))?;
                    if s(a, &["action"]) == Some("merge") || s(a, &["state"]) == Some("merged") {
                        let iid = a.get("iid").map(|x| x.to_string()).unwrap_or_default();
                        let mut sig = base(
                            tenant,
                            source_name,
                            SignalKind::PullRequest,
                            iid,
                            ts_at(a, &["updated_at"], now_ns),
                        );
                        sig.title = s(a, &["title"]).unwrap_or_default().to_owned();
                        sig.body = excerpt(
                            s(a, &["description"]).unwrap_or_default(),
                            BODY_EXCERPT_CHARS,
                        );
                        sig.url = s(a, &["url"]).map(str::to_owned);
                        sig.commit = s(a, &["merge_commit_sha"]).map(str::to_owned);
                        sig.status = Some("merged".into());
                        sig.repository = repo.clone();
                        items.push(Item {
                            signal: sig,
                            hints: Hints {
                                repository: repo.clone(),
                                ..Hints::default()
                            },
                        });
                    }
                }
                "deployment" => {
                    let id = v
                        .get("deployment_id")
                        .map(|x| x.to_string())
                        .unwrap_or_default();
                    let mut sig = base(
                        tenant,
                        source_name,
                        SignalKind::Deploy,
                        id,
                        ts_at(&v, &["status_changed_at"], now_ns),
                    );
                    let r = s(&v, &["ref"]).unwrap_or_default();
                    sig.title = format!(
                        "deploy {r} to {}",
                        s(&v, &["environment"]).unwrap_or_default()
                    );
                    sig.version = Some(r.to_owned());
                    sig.commit = s(&v, &["short_sha"]).map(str::to_owned);
                    sig.status = s(&v, &["status"]).map(str::to_owned);
                    sig.url = s(&v, &["deployable_url"]).map(str::to_owned);
                    sig.repository = repo.clone();
                    items.push(Item {
                        signal: sig,
                        hints: Hints {
                            repository: repo.clone(),
                            ..Hints::default()
                        },
                    });
                }
                _ => {}
            }
        }
        Source::Jira => {
            if let Some(issue) = v.get("issue") {
                let key = s(issue, &["key"])
                    .ok_or_else(|| WebhookError::Payload("issue.key missing".into()))?;
                let f = issue.get("fields").cloned().unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::Ticket,
                    key.to_owned(),
                    ts_at(&f, &["created"], now_ns),
                );
                sig.updated_ns = ts_at(&f, &["updated"], sig.created_ns);
                sig.title = s(&f, &["summary"]).unwrap_or_default().to_owned();
                sig.body = excerpt(
                    &f.get("description").map(adf_text).unwrap_or_default(),
                    BODY_EXCERPT_CHARS,
                );
                sig.status = s(&f, &["status", "name"]).map(str::to_owned);
                let project = s(&f, &["project", "key"]).map(str::to_owned);
                sig.repository = project.clone();
                let names = |k: &str| -> Vec<String> {
                    f.get(k)
                        .and_then(|x| x.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|c| {
                            c.get("name")
                                .and_then(|n| n.as_str())
                                .or(c.as_str())
                                .map(str::to_owned)
                        })
                        .collect()
                };
                let hints = Hints {
                    components: names("components"),
                    labels: names("labels"),
                    project,
                    ..Hints::default()
                };
                items.push(Item { signal: sig, hints });
            }
        }
        Source::Linear => {
            if s(&v, &["type"]) == Some("Issue") {
                let d = v
                    .get("data")
                    .ok_or_else(|| WebhookError::Payload("data missing".into()))?;
                let id = s(d, &["identifier"]).or(s(d, &["id"])).unwrap_or_default();
                let mut sig = base(
                    tenant,
                    source_name,
                    SignalKind::Ticket,
                    id.to_owned(),
                    ts_at(d, &["createdAt"], now_ns),
                );
                sig.updated_ns = ts_at(d, &["updatedAt"], sig.created_ns);
                sig.title = s(d, &["title"]).unwrap_or_default().to_owned();
                sig.body = excerpt(
                    s(d, &["description"]).unwrap_or_default(),
                    BODY_EXCERPT_CHARS,
                );
                sig.url = s(&v, &["url"]).or(s(d, &["url"])).map(str::to_owned);
                sig.status = s(d, &["state", "name"]).map(str::to_owned);
                let team = s(d, &["team", "key"]).map(str::to_owned);
                let labels = d
                    .get("labels")
                    .and_then(|x| x.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .collect();
                items.push(Item {
                    signal: sig,
                    hints: Hints {
                        project: team,
                        labels,
                        ..Hints::default()
                    },
                });
            }
        }
        Source::Slack => match s(&v, &["type"]) {
            Some("url_verification") => {
                return Ok(Parsed::Challenge(
                    s(&v, &["challenge"]).unwrap_or_default().to_owned(),
                ));
            }
            Some("event_callback") => {
                let e = v
                    .get("event")
                    .ok_or_else(|| WebhookError::Payload("event missing".into()))?;
                if s(e, &["type"]) == Some("message") && s(e, &["subtype"]).is_none() {
                    let channel = s(e, &["channel"]).unwrap_or_default();
                    let ts = s(e, &["ts"]).unwrap_or_default();
                    let at = time::slack_ts_ns(ts).unwrap_or(now_ns);
                    let text = s(e, &["text"]).unwrap_or_default();
                    let mut sig = base(
                        tenant,
                        source_name,
                        SignalKind::Message,
                        format!("{channel}:{ts}"),
                        at,
                    );
                    sig.title = excerpt(text.lines().next().unwrap_or(""), 300);
                    sig.body = excerpt(text, BODY_EXCERPT_CHARS);
                    sig.author = s(e, &["user"]).map(str::to_owned);
                    items.push(Item {
                        signal: sig,
                        hints: Hints {
                            channel: Some(channel.to_owned()),
                            ..Hints::default()
                        },
                    });
                }
            }
            _ => return Err(WebhookError::Payload("not a Slack event".into())),
        },
        Source::Deploy => {}
    }
    Ok(Parsed::Items(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    /// The vendors' published vectors and the reference's computed ones
    /// (docs/connectors.md, Appendix A).
    #[test]
    fn published_test_vectors_verify() {
        let gh = Secret::new("It's a Secret to Everybody");
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(verify(Source::GitHub, &gh, &h, b"Hello, World!", 0), Ok(()));
        assert!(verify(Source::GitHub, &gh, &h, b"Hello, World?", 0).is_err());

        let slack = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let h = headers(&[
            ("x-slack-request-timestamp", "1531420618"),
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        assert_eq!(
            verify(Source::Slack, &slack, &h, body, 1_531_420_618 + 10),
            Ok(())
        );
        assert_eq!(
            verify(Source::Slack, &slack, &h, body, 1_531_420_618 + 301),
            Err(WebhookError::Replay),
            "an old signature replayed"
        );

        let linear = Secret::new("linear-test-secret");
        assert_eq!(
            hmac_hex(&linear, &[br#"{"action":"update","type":"Issue"}"#]),
            "cfe596a5025253cc7a33b688f6903d542346cd15a2ba428d1bc568a9a316e958"
        );
        let jira = Secret::new("jira-test-secret");
        let h = headers(&[(
            "x-hub-signature",
            "sha256=20192d641294a4aaa3ddce49e253323967e5463de05139a4c257e6812e4a3c1f",
        )]);
        assert_eq!(
            verify(
                Source::Jira,
                &jira,
                &h,
                br#"{"webhookEvent":"jira:issue_updated"}"#,
                0
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_or_wrong_signatures_are_refused() {
        let secret = Secret::new("s3cret");
        for source in [
            Source::GitHub,
            Source::GitLab,
            Source::Jira,
            Source::Linear,
            Source::Slack,
            Source::Deploy,
        ] {
            assert!(
                matches!(
                    verify(source, &secret, &HeaderMap::new(), b"{}", 0),
                    Err(WebhookError::Signature(_))
                ),
                "{source:?}"
            );
        }
        let h = headers(&[("x-gitlab-token", "s3cret")]);
        assert_eq!(verify(Source::GitLab, &secret, &h, b"{}", 0), Ok(()));
        let h = headers(&[("x-gitlab-token", "s3cre")]);
        assert!(verify(Source::GitLab, &secret, &h, b"{}", 0).is_err());
        // Linear: the signed body's timestamp decides replays.
        let body =
            br#"{"type":"Issue","action":"create","webhookTimestamp":1714557600000,"data":{}}"#;
        let sig = hmac_hex(&secret, &[body]);
        let h = headers(&[("linear-signature", sig.as_str())]);
        assert_eq!(
            verify(Source::Linear, &secret, &h, body, 1_714_557_630),
            Ok(())
        );
        assert_eq!(
            verify(Source::Linear, &secret, &h, body, 1_714_558_600),
            Err(WebhookError::Replay)
        );
    }

    #[test]
    fn deploy_events_verify_and_become_deploy_signals() {
        let secret = Secret::new("deploy-secret");
        let body = br#"{"service":"checkout","version":"v2.3.1","commit":"6dcb09b","time":"2024-05-01T10:00:00Z","environment":"production"}"#;
        let sig = format!("sha256={}", hmac_hex(&secret, &[b"1714557600", b".", body]));
        let h = headers(&[
            ("x-causeway-timestamp", "1714557600"),
            ("x-causeway-signature", sig.as_str()),
        ]);
        assert_eq!(
            verify(Source::Deploy, &secret, &h, body, 1_714_557_650),
            Ok(())
        );
        let tenant = TenantId::new("acme").expect("tenant");
        let Ok(Parsed::Items(items)) = parse(Source::Deploy, "deploys", &tenant, None, body, 0)
        else {
            panic!("parsed");
        };
        let s = &items[0].signal;
        assert_eq!(s.kind, SignalKind::Deploy);
        assert_eq!(s.version.as_deref(), Some("v2.3.1"));
        assert_eq!(s.created_ns, 1_714_557_600_000_000_000);
        assert_eq!(items[0].hints.services, ["checkout"]);
        assert!(matches!(
            parse(
                Source::Deploy,
                "deploys",
                &tenant,
                None,
                br#"{"service":"x"}"#,
                0
            ),
            Err(WebhookError::Payload(_))
        ));
        assert!(matches!(
            parse(
                Source::Deploy,
                "deploys",
                &tenant,
                None,
                br#"{"service":"x","version":"1","extra":1}"#,
                0
            ),
            Err(WebhookError::Payload(_))
        ));
    }

    #[test]
    fn vendor_payloads_become_signals() {
        let tenant = TenantId::new("acme").expect("tenant");
        let push = serde_json::json!({
            "ref": "refs/heads/main",
            "repository": {"id": 1, "full_name": "acme/checkout-service"},
            "commits": [{"id": "6dcb09b5", "message": "Raise timeout\n\nbecause", "timestamp": "2024-05-01T10:00:00+02:00",
                         "url": "https://github.com/acme/checkout-service/commit/6dcb09b5",
                         "author": {"name": "Mona", "username": "octocat"},
                         "added": ["a.rs"], "removed": [], "modified": ["src/pay.rs"]}]
        });
        let Ok(Parsed::Items(items)) = parse(
            Source::GitHub,
            "github",
            &tenant,
            Some("push"),
            push.to_string().as_bytes(),
            0,
        ) else {
            panic!("push");
        };
        assert_eq!(items[0].signal.changed_paths, ["a.rs", "src/pay.rs"]);
        assert_eq!(items[0].signal.created_ns, 1_714_550_400_000_000_000);
        assert_eq!(
            items[0].hints.repository.as_deref(),
            Some("acme/checkout-service")
        );

        let slack = serde_json::json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "token": "x"});
        assert_eq!(
            parse(
                Source::Slack,
                "slack",
                &tenant,
                None,
                slack.to_string().as_bytes(),
                0
            ),
            Ok(Parsed::Challenge(
                "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
            ))
        );
        let jira = serde_json::json!({"webhookEvent": "jira:issue_created", "timestamp": 1714557600000i64,
            "issue": {"key": "OPS-7", "fields": {"summary": "Checkout down", "created": "2024-05-01T09:45:12.000+0000",
                      "components": [{"name": "Checkout"}], "labels": ["sev1"], "project": {"key": "OPS"}}}});
        let Ok(Parsed::Items(items)) = parse(
            Source::Jira,
            "jira",
            &tenant,
            None,
            jira.to_string().as_bytes(),
            0,
        ) else {
            panic!("jira");
        };
        assert_eq!(items[0].signal.external_id, "OPS-7");
        assert_eq!(items[0].hints.components, ["Checkout"]);
        assert!(matches!(
            parse(
                Source::GitHub,
                "github",
                &tenant,
                Some("push"),
                b"{not json",
                0
            ),
            Err(WebhookError::Payload(_))
        ));
    }
}
