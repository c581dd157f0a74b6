//! `exporters.otlp`: downstream OTLP endpoints every accepted span is
//! forwarded to (the sidecar / gateway tee).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use causeway_connectors::secret::SecretRef;
use causeway_server::Problem;
use serde::Deserialize;

/// One downstream endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Names the on-disk queue (`data_dir/forward/<name>/`) and the metrics
    /// label; `[a-z0-9_-]+`.
    pub name: String,
    /// `http://host:4317` (gRPC) or the OTLP/HTTP base URL
    /// (`https://host:4318`; `/v1/traces` and `/v1/logs` are appended).
    pub endpoint: String,
    /// Wire protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Request compression.
    #[serde(default)]
    pub compression: Compression,
    /// Headers sent with every request (API keys, tenant ids).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValueRef>,
    /// Per request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// TLS options for `https://` endpoints.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// The on-disk retry queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Backoff between attempts while the endpoint fails.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Also send each new or updated RCA report as an OTLP log record.
    #[serde(default)]
    pub rca_logs: bool,
    /// Also send each audit event (of the tenants this endpoint takes) as
    /// an OTLP log record, for a SIEM or a log store.
    #[serde(default)]
    pub audit_logs: bool,
    /// Only these tenants' spans (default: every tenant's).
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, as the OpenTelemetry Collector's exporters default to.
    #[default]
    Gzip,
    /// None.
    None,
}

/// A header value: literal, or a secret reference (`{env: VAR}`,
/// `{file: PATH}`) for credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeaderValueRef {
    /// Written in the config.
    Plain(String),
    /// Read at start-up; never logged.
    Secret(SecretRef),
}

/// Client TLS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file of extra trusted roots (a private CA); the system's roots
    /// are trusted otherwise.
    pub ca_file: Option<PathBuf>,
}

/// `queue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Bytes of unsent requests kept on disk; beyond this, see `when_full`.
    #[serde(default = "default_queue_mib")]
    pub max_size_mib: u64,
    /// What happens to new requests when the queue is full.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Requests in flight at once (the OpenTelemetry Collector's
    /// `sending_queue.num_consumers`). One at a time drains no faster than
    /// one round trip per request; the queue is still acknowledged in
    /// order, so a restart resends from the oldest unanswered request.
    #[serde(default = "default_consumers")]
    pub num_consumers: usize,
}

/// `queue.when_full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// causeway still accepts and analyses the request; the copy for this
    /// endpoint is dropped and counted
    /// (`causeway_forward_dropped_spans_total{reason="queue_full"}`). A
    /// slow or absent downstream never slows causeway's own ingest.
    #[default]
    Drop,
    /// causeway refuses the request (HTTP 503 / gRPC UNAVAILABLE with a
    /// retry delay, as the Collector's exporters push back), so that
    /// nothing causeway acknowledges is lost downstream; the sender
    /// retries. Its analysis then slows with the downstream.
    Refuse,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_size_mib: default_queue_mib(),
            when_full: WhenFull::default(),
            num_consumers: default_consumers(),
        }
    }
}

/// `retry`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait after a failure.
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Longest wait between attempts.
    #[serde(default = "default_max", with = "humantime_serde")]
    pub max_interval: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_interval: default_initial(),
            max_interval: default_max(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_mib() -> u64 {
    1024
}
fn default_consumers() -> usize {
    4
}
fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max() -> Duration {
    Duration::from_secs(30)
}

impl ForwardConfig {
    /// Appends the problems of this entry.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            problems.push(Problem::new(
                format!("{path}.name"),
                "must be non-empty and only a-z, 0-9, _ and -",
            ));
        }
        match self.endpoint.parse::<http::Uri>() {
            Ok(uri) => {
                let scheme = uri.scheme_str().unwrap_or("");
                if scheme != "http" && scheme != "https" {
                    problems.push(Problem::new(
                        format!("{path}.endpoint"),
                        "must start with http:// or https://",
                    ));
                }
                if uri.host().is_none() {
                    problems.push(Problem::new(format!("{path}.endpoint"), "has no host"));
                }
            }
            Err(e) => problems.push(Problem::new(
                format!("{path}.endpoint"),
                format!("not a URL: {e}"),
            )),
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(Problem::new(
                    format!("{path}.headers"),
                    format!("{name:?} is not a valid header name"),
                ));
            }
            if let HeaderValueRef::Plain(v) = value
                && http::HeaderValue::from_str(v).is_err()
            {
                problems.push(Problem::new(
                    format!("{path}.headers.{name}"),
                    "is not a valid header value",
                ));
            }
        }
        if self.timeout.is_zero() {
            problems.push(Problem::new(format!("{path}.timeout"), "must be positive"));
        }
        if self.queue.max_size_mib == 0 {
            problems.push(Problem::new(
                format!("{path}.queue.max_size_mib"),
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.queue.num_consumers) {
            problems.push(Problem::new(
                format!("{path}.queue.num_consumers"),
                "must be between 1 and 64",
            ));
        }
        if self.retry.initial_interval.is_zero()
            || self.retry.max_interval < self.retry.initial_interval
        {
            problems.push(Problem::new(
                format!("{path}.retry"),
                "initial_interval must be positive and at most max_interval",
            ));
        }
        if let Some(tls) = &self.tls
            && let Some(ca) = &tls.ca_file
            && !ca.is_file()
        {
            problems.push(Problem::new(
                format!("{path}.tls.ca_file"),
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }

    /// Whether `tenant`'s data goes to this endpoint.
    pub fn wants(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|list| list.iter().any(|t| t == tenant))
    }
}

/// Appends the problems of the whole list (names must be unique).
pub fn validate_all(list: &[ForwardConfig], path: &str, problems: &mut Vec<Problem>) {
    crate::config::validate_named(
        list,
        path,
        problems,
        |e| e.name.as_str(),
        ForwardConfig::validate,
    );
}
