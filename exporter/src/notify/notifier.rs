//! The notifier: reports become chat messages, pages and webhook calls,
//! sent from a bounded queue with retries, and written to a dead-letter
//! file when a destination refuses them for good.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_model::rca::RcaReport;
use causeway_model::retry::Backoff;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{NotifierKind, NotifyConfig};
use causeway_correlator::{ReportEvent, ReportSink};

/// Undeliverable messages kept at most.
pub const DEAD_LETTERS: usize = 1000;
/// Messages waiting to be sent at most; beyond, they go straight to the
/// dead-letter store.
pub(super) const PENDING: usize = 1024;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Label {
    pub(super) notifier: String,
}

/// Notification counters.
#[derive(Debug, Clone, Default)]
pub struct NotifyMetrics {
    pub(super) sent: Family<Label, Counter>,
    pub(super) failed: Family<Label, Counter>,
    pub(super) retries: Family<Label, Counter>,
}

impl NotifyMetrics {
    /// Creates the counters and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "causeway_notifications_sent",
            "Notifications the destination accepted",
            m.sent.clone(),
        );
        registry.register(
            "causeway_notifications_failed",
            "Notifications given up on (kept in the dead-letter store)",
            m.failed.clone(),
        );
        registry.register(
            "causeway_notifications_retries",
            "Notification attempts that failed and were retried",
            m.retries.clone(),
        );
        m
    }
}

/// Why notifications could not start.
#[derive(Debug, thiserror::Error)]
#[error("exporters.notifications {name}: {message}")]
pub struct NotifyError {
    pub(super) name: String,
    pub(super) message: String,
}

/// One resolved destination.
pub(super) struct Destination {
    pub(super) config: NotifyConfig,
    pub(super) url: String,
    pub(super) key: Option<hmac::Key>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is a credential.
        f.debug_struct("Destination")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind)
            .finish_non_exhaustive()
    }
}

/// A message on its way.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) destination: usize,
    pub(super) event: &'static str,
    pub(super) body: Vec<u8>,
    pub(super) tenant: String,
    pub(super) report: u64,
}

/// Sends notifications; a [`ReportSink`].
#[derive(Debug)]
pub struct Notifier {
    pub(super) destinations: Arc<Vec<Destination>>,
    pub(super) tx: mpsc::Sender<Pending>,
    pub(super) rx: Mutex<Option<mpsc::Receiver<Pending>>>,
    pub(super) public_url: Option<String>,
    pub(super) dead: Arc<DeadLetters>,
    pub(super) metrics: NotifyMetrics,
    pub(super) http: reqwest::Client,
}

impl Notifier {
    /// Resolves the destinations' secrets; dead letters go under `data_dir`.
    pub fn new(
        configs: &[NotifyConfig],
        public_url: Option<String>,
        data_dir: &Path,
        metrics: NotifyMetrics,
    ) -> Result<Self, NotifyError> {
        let mut destinations = Vec::new();
        for c in configs {
            let fail = |message: String| NotifyError {
                name: c.name.clone(),
                message,
            };
            let url = c
                .url
                .resolve()
                .map_err(|e| fail(format!("url: {e}")))?
                .expose()
                .trim()
                .to_owned();
            // The URL is a secret: the message names where it came from,
            // never the URL.
            if causeway_model::outbound::check(&url).is_err() {
                return Err(fail(format!(
                    "url ({}) must be an https URL (plain http only to loopback)",
                    c.url.describe()
                )));
            }
            let key = match &c.secret {
                Some(r) => {
                    let s = r.resolve().map_err(|e| fail(format!("secret: {e}")))?;
                    Some(hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes()))
                }
                None => None,
            };
            destinations.push(Destination {
                config: c.clone(),
                url,
                key,
            });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("causeway/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError {
                name: "*".into(),
                message: format!("HTTP client: {e}"),
            })?;
        let (tx, rx) = mpsc::channel(PENDING);
        Ok(Self {
            destinations: Arc::new(destinations),
            tx,
            rx: Mutex::new(Some(rx)),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            dead: Arc::new(DeadLetters::open(
                &data_dir.join("notifications").join("dead_letters.jsonl"),
                DEAD_LETTERS,
            )),
            metrics,
            http,
        })
    }

    /// Whether any destination is configured.
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// The dead-letter store.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead
    }

    /// Sends until `cancel`; messages still pending then are dead-lettered
    /// so that none is lost silently.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        loop {
            let msg = tokio::select! {
                () = cancel.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            self.deliver(msg, &cancel).await;
        }
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            self.give_up(&msg, "shut down before it was sent");
        }
    }

    async fn deliver(&self, msg: Pending, cancel: &CancellationToken) {
        let Some(dest) = self.destinations.get(msg.destination) else {
            return;
        };
        let label = Label {
            notifier: dest.config.name.clone(),
        };
        let schedule = Backoff::new(dest.config.initial_interval, dest.config.max_interval);
        for attempt in 1..=dest.config.max_attempts {
            let outcome = self.attempt(dest, &msg).await;
            let (retry_after, error) = match outcome {
                Ok(()) => {
                    self.metrics.sent.get_or_create(&label).inc();
                    tracing::info!(
                        notifier = %dest.config.name,
                        tenant = %msg.tenant,
                        report = msg.report,
                        "notification sent"
                    );
                    return;
                }
                Err(Attempt::Permanent(e)) => {
                    self.metrics.failed.get_or_create(&label).inc();
                    self.give_up(&msg, &e);
                    return;
                }
                Err(Attempt::Retry(after, e)) => (after, e),
            };
            if attempt == dest.config.max_attempts {
                self.metrics.failed.get_or_create(&label).inc();
                self.give_up(&msg, &format!("{attempt} attempts failed; last: {error}"));
                return;
            }
            self.metrics.retries.get_or_create(&label).inc();
            let delay = schedule.wait(attempt, retry_after);
            tracing::warn!(notifier = %dest.config.name, attempt, error = %error, retry_in = ?delay, "notification failed; will retry");
            tokio::select! {
                () = cancel.cancelled() => {
                    self.give_up(&msg, &format!("shut down while retrying; last: {error}"));
                    return;
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn attempt(&self, dest: &Destination, msg: &Pending) -> Result<(), Attempt> {
        let mut req = self
            .http
            .post(&dest.url)
            .timeout(dest.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(msg.body.clone());
        if let Some(key) = &dest.key {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            req = req
                .header("X-Causeway-Event", msg.event)
                .header("X-Causeway-Timestamp", ts.to_string())
                .header("X-Causeway-Signature", sign(key, ts, &msg.body));
        }
        let resp = req.send().await.map_err(|e| {
            // The URL is a secret: keep it out of the message.
            Attempt::Retry(None, format!("sending: {}", e.without_url()))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let e = format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        );
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(Attempt::Retry(after, e))
        } else {
            Err(Attempt::Permanent(e))
        }
    }

    fn give_up(&self, msg: &Pending, error: &str) {
        let name = self
            .destinations
            .get(msg.destination)
            .map_or("?", |d| d.config.name.as_str());
        tracing::error!(notifier = name, tenant = %msg.tenant, report = msg.report, error, "notification not delivered; kept in the dead-letter store");
        self.dead.push(json!({
            "notifier": name,
            "tenant": msg.tenant,
            "report": msg.report,
            "event": msg.event,
            "error": error,
            "at_unix_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            "body": String::from_utf8_lossy(&msg.body),
        }));
    }

    /// The link to a report in the dashboard, when a public URL is set.
    fn link(&self, report: &RcaReport) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/#/incidents/{}", report.incident))
    }
}

pub(super) enum Attempt {
    Retry(Option<Duration>, String),
    Permanent(String),
}

/// `v` with every string redacted: no field can carry an e-mail address
/// or a token out (span attributes and exception messages in evidence
/// can quote them).
fn redacted(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(causeway_model::redact::redact_owned(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(redacted).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, redacted(v))).collect()),
        other => other,
    }
}

impl causeway_model::TenantPurge for Notifier {
    fn what(&self) -> &'static str {
        "notification dead letters"
    }

    fn purge(&self, tenant: &causeway_model::TenantId) -> Result<u64, String> {
        Ok(self.dead.retain(0, Some(tenant.as_str())) as u64)
    }
}

impl ReportSink for Notifier {
    fn report(&self, event: &ReportEvent) {
        if !event.is_news() {
            return;
        }
        let confidence = event
            .report
            .hypotheses
            .first()
            .map_or(0.0, |h| h.confidence);
        let kind = if event.previous.is_some() {
            "rca.updated"
        } else {
            "rca.created"
        };
        for (i, dest) in self.destinations.iter().enumerate() {
            if !dest.config.wants(event.tenant.as_str()) || confidence < dest.config.min_confidence
            {
                continue;
            }
            let body = match dest.config.kind {
                NotifierKind::Slack => slack_message(&event.report, self.link(&event.report)),
                NotifierKind::Teams => teams_message(&event.report, self.link(&event.report)),
                NotifierKind::Webhook => json!({
                    "event": kind,
                    "tenant": event.tenant.as_str(),
                    "link": self.link(&event.report),
                    "report": event.report,
                }),
            };
            let msg = Pending {
                destination: i,
                event: kind,
                body: serde_json::to_vec(&redacted(body)).unwrap_or_default(),
                tenant: event.tenant.as_str().to_owned(),
                report: event.report.id,
            };
            if let Err(e) = self.tx.try_send(msg) {
                let msg = match e {
                    mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
                };
                self.metrics
                    .failed
                    .get_or_create(&Label {
                        notifier: dest.config.name.clone(),
                    })
                    .inc();
                self.give_up(&msg, "too many notifications pending");
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`: the timestamp is
/// signed too, so a receiver can refuse replays outside its window.
pub fn sign(key: &hmac::Key, timestamp: u64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

pub(super) fn headline(report: &RcaReport) -> String {
    match report.hypotheses.first() {
        Some(h) => format!(
            "{}{}: {}",
            h.service,
            h.operation
                .as_ref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default(),
            h.cause.describe()
        ),
        None => "No culprit identified".to_owned(),
    }
}

/// Escapes Slack mrkdwn control characters.
pub(super) fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A Slack Block Kit message (incoming webhook).
pub fn slack_message(report: &RcaReport, link: Option<String>) -> Value {
    let top = report.hypotheses.first();
    let mut fields = Vec::new();
    if let Some(h) = top {
        fields
            .push(json!({"type": "mrkdwn", "text": format!("*Culprit*\n{}", mrkdwn(&h.service))}));
        if let Some(op) = &h.operation {
            fields.push(json!({"type": "mrkdwn", "text": format!("*Operation*\n{}", mrkdwn(op))}));
        }
        fields.push(json!({"type": "mrkdwn", "text": format!("*Cause*\n{}", h.cause.as_str())}));
        fields.push(json!({"type": "mrkdwn", "text": format!("*Confidence*\n{:.0}%", h.confidence * 100.0)}));
    }
    if !report.impacted_services.is_empty() {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Impacted*\n{}", mrkdwn(&report.impacted_services.join(", ")))}));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("RCA: {}", headline(report)), 150), "emoji": false}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&mrkdwn(&report.summary), 3000)}}),
    ];
    if !fields.is_empty() {
        fields.truncate(10);
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(step) = report.next_steps.first() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*Next step:* {}", mrkdwn(step)), 3000)}}));
    }
    if let Some(url) = &link {
        blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open RCA"}, "url": url}]}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("causeway · tenant {} · incident {}", mrkdwn(&report.tenant), report.incident)}]}));
    json!({"text": truncate(&report.summary, 3000), "blocks": blocks})
}

/// A Microsoft Teams message with an Adaptive Card (incoming webhooks and
/// Workflows accept this shape).
pub fn teams_message(report: &RcaReport, link: Option<String>) -> Value {
    let mut facts = Vec::new();
    if let Some(h) = report.hypotheses.first() {
        facts.push(json!({"title": "Culprit", "value": h.service}));
        if let Some(op) = &h.operation {
            facts.push(json!({"title": "Operation", "value": op}));
        }
        facts.push(json!({"title": "Cause", "value": h.cause.as_str()}));
        facts
            .push(json!({"title": "Confidence", "value": format!("{:.0}%", h.confidence * 100.0)}));
    }
    if !report.impacted_services.is_empty() {
        facts.push(json!({"title": "Impacted", "value": report.impacted_services.join(", ")}));
    }
    facts.push(json!({"title": "Tenant", "value": report.tenant}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "text": format!("RCA: {}", headline(report))},
            {"type": "TextBlock", "wrap": true, "text": report.summary},
            {"type": "FactSet", "facts": facts},
        ],
    });
    if let Some(url) = link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open RCA", "url": url}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Undeliverable messages, newest [`DEAD_LETTERS`] kept, one JSON object per
/// line.
#[derive(Debug)]
pub struct DeadLetters {
    pub(super) path: PathBuf,
    pub(super) max: usize,
    pub(super) entries: Mutex<VecDeque<String>>,
}

impl DeadLetters {
    /// Loads what an earlier run left.
    pub fn open(path: &Path, max: usize) -> Self {
        let entries: VecDeque<String> = std::fs::read_to_string(path)
            .map(|t| {
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut entries = entries;
        while entries.len() > max {
            entries.pop_front();
        }
        Self {
            path: path.to_path_buf(),
            max,
            entries: Mutex::new(entries),
        }
    }

    /// Keeps one, evicting the oldest beyond the limit.
    pub fn push(&self, entry: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push_back(entry.to_string());
        let evicted = entries.len() > self.max;
        while entries.len() > self.max {
            entries.pop_front();
        }
        let result = if evicted {
            self.rewrite(&entries)
        } else {
            self.append(entries.back().map_or("", String::as_str))
        };
        if let Err(e) = result {
            tracing::error!(file = %self.path.display(), error = %e, "cannot write the dead-letter store");
        }
    }

    /// Drops entries older than `before_unix_ms` (retention) and, when
    /// given, every entry of `tenant` (its purge); returns how many went.
    pub fn retain(&self, before_unix_ms: u64, tenant: Option<&str>) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let n = entries.len();
        entries.retain(|line| {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                // Unreadable lines hold nothing anyone can use.
                return false;
            };
            let old = v["at_unix_ms"].as_u64().unwrap_or(0) < before_unix_ms;
            let theirs = tenant.is_some_and(|t| v["tenant"].as_str() == Some(t));
            !old && !theirs
        });
        let gone = n - entries.len();
        if gone > 0
            && let Err(e) = self.rewrite(&entries)
        {
            tracing::error!(file = %self.path.display(), error = %e, "cannot rewrite the dead-letter store");
        }
        gone
    }

    /// What is kept, oldest first.
    pub fn list(&self) -> Vec<Value> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{line}")
    }

    fn rewrite(&self, entries: &VecDeque<String>) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        for l in entries {
            writeln!(f, "{l}")?;
        }
        f.sync_data()?;
        std::fs::rename(tmp, &self.path)
    }
}
