//! The typed sections of `causeway.yaml` (receivers, processors,
//! exporters, auth, storage, service, connectors), their defaults, and the
//! checks that run before anything starts.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use causeway_api::config::ApiConfig;
use causeway_processor::config::SpansConfig;
use causeway_receiver::config::{OtlpReceiverConfig, QueueConfig};
use causeway_server::config::{AuthConfig, Problem};
use serde::Deserialize;

use super::storage::StorageConfig;
use super::{env, locate};

/// The root of `causeway.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where data comes in.
    #[serde(default)]
    pub receivers: Receivers,
    /// What happens between receiving and storing.
    #[serde(default)]
    pub processors: Processors,
    /// Where results go out.
    #[serde(default)]
    pub exporters: Exporters,
    /// API keys → tenants.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where data is kept.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Process-wide settings.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Read-only connectors, webhooks and the signal store.
    #[serde(default)]
    pub connectors: causeway_connectors::config::ConnectorsConfig,
    /// Rate limits, connection caps and read timeouts.
    #[serde(default)]
    pub limits: causeway_server::LimitsConfig,
    /// This instance among several sharing one PostgreSQL database.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Allow listening beyond loopback without API keys or without TLS.
    /// Anyone who can reach the ports can then read what is sent in clear
    /// (or, without keys, write and read the `default` tenant's data).
    #[serde(default)]
    pub insecure: bool,
}

/// `receivers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receivers {
    /// `receivers.otlp`; absent means gRPC and HTTP on their default ports.
    #[serde(default)]
    pub otlp: OtlpReceiverConfig,
}

/// `processors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processors {
    /// The bounded queue between receivers and processing.
    #[serde(default)]
    pub queue: QueueConfig,
    /// RED series and service graph.
    #[serde(default)]
    pub spans: SpansConfig,
    /// Root-cause analysis of incidents.
    #[serde(default)]
    pub correlator: causeway_correlator::CorrelatorConfig,
}

/// `exporters`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exporters {
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Downstream OTLP endpoints every accepted span is forwarded to.
    #[serde(default)]
    pub otlp: Vec<causeway_exporter::forward::ForwardConfig>,
    /// Where a message goes when an RCA is ready.
    #[serde(default)]
    pub notifications: Vec<causeway_exporter::notify::NotifyConfig>,
}

/// `cluster`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's name: its series cells and write-ahead log mark in
    /// a shared database are its own. Default: the host name (a pod's name
    /// in Kubernetes, stable across restarts in a StatefulSet).
    #[serde(default)]
    pub instance_id: Option<String>,
}

impl ClusterConfig {
    /// The configured name, else the host name, else `causeway`.
    pub fn instance(&self) -> String {
        if let Some(id) = self.instance_id.as_ref().filter(|s| !s.trim().is_empty()) {
            return id.trim().to_owned();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "causeway".into())
    }
}

/// `service`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// causeway's own telemetry.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            telemetry: TelemetryConfig::default(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

pub(super) fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Logs.
    #[serde(default)]
    pub logs: LogsConfig,
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `error`, `warn`, `info`, `debug` or a `tracing` filter; `RUST_LOG`
    /// overrides it.
    #[serde(default = "default_level")]
    pub level: String,
    /// `console` or `json`.
    #[serde(default)]
    pub encoding: LogEncoding,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            encoding: LogEncoding::default(),
        }
    }
}

pub(super) fn default_level() -> String {
    "info".into()
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEncoding {
    /// Human-readable.
    #[default]
    Console,
    /// One JSON object per line.
    Json,
}

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Located>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Every listener: its config path, address and whether it has TLS.
    pub fn listeners(&self) -> Vec<(&'static str, std::net::SocketAddr, bool)> {
        let otlp = &self.receivers.otlp;
        let mut listeners = Vec::new();
        if let Some(g) = &otlp.protocols.grpc {
            listeners.push((
                "receivers.otlp.protocols.grpc.endpoint",
                g.endpoint,
                g.tls.is_some(),
            ));
        }
        if let Some(h) = &otlp.protocols.http {
            listeners.push((
                "receivers.otlp.protocols.http.endpoint",
                h.endpoint,
                h.tls.is_some(),
            ));
        }
        listeners.push((
            "exporters.api.endpoint",
            self.exporters.api.endpoint,
            self.exporters.api.tls.is_some(),
        ));
        listeners
    }

    /// Listeners reachable from other machines that speak plaintext:
    /// refused unless `insecure: true`, and named in a warning at start
    /// when it is.
    pub fn plaintext_public_listeners(&self) -> Vec<(&'static str, std::net::SocketAddr, bool)> {
        self.listeners()
            .into_iter()
            .filter(|(_, addr, tls)| !tls && !addr.ip().is_loopback())
            .collect()
    }

    /// Reads, substitutes, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![Located {
                file: file.clone(),
                line: None,
                column: None,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(&file, &text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates config text; `env` resolves `${env:VAR}`.
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let at = |line, column, field: String, message: String| Located {
            file: file.to_owned(),
            line,
            column,
            field,
            message,
        };
        let text = env::substitute(text, env).map_err(|errs| {
            ConfigErrors(
                errs.into_iter()
                    .map(|e| at(Some(e.line), Some(e.column), String::new(), e.message))
                    .collect(),
            )
        })?;
        // An empty file is a valid config: all defaults.
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            let config = Config::default();
            return config.checked(file, &text);
        }
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner();
            let (line, column) = inner
                .location()
                .map_or((None, None), |l| (Some(l.line()), Some(l.column())));
            let field = if path == "." { String::new() } else { path };
            // serde_yaml_ng appends " at line X column Y"; we print it in front.
            let msg = inner.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) if line.is_some() => msg[..i].to_owned(),
                _ => msg,
            };
            ConfigErrors(vec![at(line, column, field, msg)])
        })?;
        config.checked(file, &text)
    }

    fn checked(self, file: &str, text: &str) -> Result<Self, ConfigErrors> {
        let problems = self.validate();
        if problems.is_empty() {
            return Ok(self);
        }
        let index = locate::index(text);
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|p| Located {
                    file: file.to_owned(),
                    line: index.line_of(&p.path),
                    column: None,
                    field: p.path,
                    message: p.message,
                })
                .collect(),
        ))
    }

    /// Every semantic problem (types and unknown keys were checked by
    /// parsing).
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let otlp = &self.receivers.otlp;
        otlp.validate("receivers.otlp", &mut problems);
        self.processors
            .queue
            .validate("processors.queue", otlp.largest_request(), &mut problems);
        self.exporters.api.validate("exporters.api", &mut problems);
        self.limits.validate("limits", &mut problems);
        let r = &self.storage.retention;
        for (field, d) in [
            ("signals", r.signals),
            ("reports", r.reports),
            ("dead_letters", r.dead_letters),
            ("audit", r.audit),
        ] {
            if d.is_zero() {
                problems.push(Problem::new(
                    format!("storage.retention.{field}"),
                    "must be positive",
                ));
            }
        }
        causeway_exporter::forward::config::validate_all(
            &self.exporters.otlp,
            "exporters.otlp",
            &mut problems,
        );
        causeway_exporter::notify::config::validate_all(
            &self.exporters.notifications,
            "exporters.notifications",
            &mut problems,
        );
        for (field, message) in self.processors.spans.problems() {
            problems.push(Problem::new(format!("processors.spans.{field}"), message));
        }
        for message in self.processors.correlator.problems() {
            problems.push(Problem::new("processors.correlator", message));
        }
        for (field, message) in self.connectors.problems() {
            problems.push(Problem::new(field, message));
        }

        let listeners = self.listeners();
        for (i, (path, addr, _)) in listeners.iter().enumerate() {
            if listeners[..i]
                .iter()
                .any(|(_, a, _)| a == addr && addr.port() != 0)
            {
                problems.push(Problem::new(
                    *path,
                    format!("{addr} is used by another listener"),
                ));
            }
        }
        if !self.insecure {
            for (path, addr, _) in self.plaintext_public_listeners() {
                problems.push(Problem::new(
                    path,
                    format!(
                        "{addr} is reachable from other machines without TLS: API keys and data would \
                         cross the network in clear. Configure tls (cert_file, key_file) on this \
                         listener, bind a loopback address, or set `insecure: true` to accept the risk \
                         (a TLS-terminating proxy or mesh in front, say)"
                    ),
                ));
            }
        }
        if self.auth.api_keys.is_empty() && !self.insecure {
            for (path, addr, _) in &listeners {
                if !addr.ip().is_loopback() {
                    problems.push(Problem::new(
                        *path,
                        format!(
                            "{addr} is reachable from other machines, but no auth.api_keys are configured: \
                             anyone could write and read data. Configure auth.api_keys, bind a loopback \
                             address, or set `insecure: true` to accept the risk"
                        ),
                    ));
                }
            }
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            if self.auth.api_keys[..i]
                .iter()
                .any(|o| o.key_sha256 == k.key_sha256)
            {
                problems.push(Problem::new(
                    format!("auth.api_keys[{i}].key_sha256"),
                    "the same key is listed twice; a key maps to exactly one tenant",
                ));
            }
        }
        let level = &self.service.telemetry.logs.level;
        let plain_level = matches!(
            level.to_ascii_lowercase().as_str(),
            "off" | "error" | "warn" | "info" | "debug" | "trace"
        );
        let directive = level.contains('=') || level.contains(',');
        if !(plain_level || directive && tracing_subscriber::EnvFilter::try_new(level).is_ok()) {
            problems.push(Problem::new(
                "service.telemetry.logs.level",
                format!("{level:?} is not a log level (error, warn, info, debug, trace) or filter"),
            ));
        }
        if self.storage.checkpoint_interval.is_zero() || self.storage.spans.flush_interval.is_zero()
        {
            problems.push(Problem::new(
                "storage.checkpoint_interval",
                "checkpoint_interval and spans.flush_interval must be positive",
            ));
        }
        match (self.storage.backend, &self.storage.postgres) {
            (crate::config::BackendKind::Postgres, None) => problems.push(Problem::new(
                "storage.postgres.url",
                "backend: postgres needs storage.postgres.url",
            )),
            (_, Some(pg)) => {
                if let Err(e) = pg.url.parse::<causeway_store::pg::ConnectOptions>() {
                    problems.push(Problem::new(
                        "storage.postgres.url",
                        causeway_model::redact::redact_owned(format!("not a PostgreSQL URL: {e}")),
                    ));
                }
            }
            _ => {}
        }
        if self.storage.wal.max_size_mib == 0 || self.storage.wal.fsync_interval.is_zero() {
            problems.push(Problem::new(
                "storage.wal",
                "max_size_mib and fsync_interval must be positive",
            ));
        }
        if self.storage.spans.flush_rows == 0 {
            problems.push(Problem::new(
                "storage.spans.flush_rows",
                "must be at least 1",
            ));
        }
        if self.service.shutdown_timeout.is_zero() {
            problems.push(Problem::new("service.shutdown_timeout", "must be positive"));
        }
        problems
    }
}
