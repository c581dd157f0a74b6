//! `exporters.notifications`: where a message goes when an RCA is ready.

use std::time::Duration;

use causeway_connectors::secret::SecretRef;
use causeway_server::Problem;
use serde::Deserialize;

/// One destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Names the destination in metrics and logs.
    pub name: String,
    /// What speaks at `url`.
    #[serde(rename = "type")]
    pub kind: NotifierKind,
    /// The webhook URL: a secret (whoever has it can post).
    pub url: SecretRef,
    /// `webhook` only: the HMAC-SHA256 key that signs each body.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Only these tenants' reports (default: every tenant's).
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// Send only when the top hypothesis is at least this confident.
    #[serde(default)]
    pub min_confidence: f64,
    /// Per attempt.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts before a message goes to the dead-letter store.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First wait after a failed attempt; doubles each time.
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Longest wait between attempts.
    #[serde(default = "default_max", with = "humantime_serde")]
    pub max_interval: Duration,
}

/// The destination's message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// Slack incoming webhook (Block Kit message).
    Slack,
    /// Microsoft Teams incoming webhook or workflow (Adaptive Card).
    Teams,
    /// Any HTTP endpoint: the report as JSON, signed with HMAC-SHA256.
    Webhook,
}

impl NotifierKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Slack => "slack",
            NotifierKind::Teams => "teams",
            NotifierKind::Webhook => "webhook",
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_attempts() -> u32 {
    6
}
fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max() -> Duration {
    Duration::from_secs(60)
}

impl NotifyConfig {
    /// Appends the problems of this entry.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            problems.push(Problem::new(
                format!("{path}.name"),
                "must be non-empty and only letters, digits, _ and -",
            ));
        }
        match (self.kind, &self.secret) {
            (NotifierKind::Webhook, None) => problems.push(Problem::new(
                format!("{path}.secret"),
                "a webhook needs a secret to sign its bodies with",
            )),
            (NotifierKind::Slack | NotifierKind::Teams, Some(_)) => problems.push(Problem::new(
                format!("{path}.secret"),
                "only type webhook signs its bodies",
            )),
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            problems.push(Problem::new(
                format!("{path}.min_confidence"),
                "must be between 0 and 1",
            ));
        }
        if self.max_attempts == 0 {
            problems.push(Problem::new(
                format!("{path}.max_attempts"),
                "must be at least 1",
            ));
        }
        if self.timeout.is_zero()
            || self.initial_interval.is_zero()
            || self.max_interval < self.initial_interval
        {
            problems.push(Problem::new(
                path.to_owned(),
                "timeout and initial_interval must be positive, max_interval at least initial_interval",
            ));
        }
    }

    /// Whether `tenant`'s reports go here.
    pub fn wants(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|list| list.iter().any(|t| t == tenant))
    }
}

/// Appends the problems of the whole list (names must be unique).
pub fn validate_all(list: &[NotifyConfig], path: &str, problems: &mut Vec<Problem>) {
    crate::config::validate_named(
        list,
        path,
        problems,
        |e| e.name.as_str(),
        NotifyConfig::validate,
    );
}
