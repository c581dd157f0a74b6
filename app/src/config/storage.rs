//! `storage`: where causeway keeps what it holds, how long, and the
//! write-ahead log that makes an acknowledgement durable.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `storage`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for everything causeway keeps.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where series, catalog and detection state live: `duckdb` (a file in
    /// `data_dir`) or `postgres` (shared by several instances).
    #[serde(default)]
    pub backend: BackendKind,
    /// `storage.postgres`, for `backend: postgres`.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
    /// How often changed series and catalog rows are written.
    #[serde(default = "default_checkpoint", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Span files.
    #[serde(default)]
    pub spans: SpanStorageConfig,
    /// The write-ahead log of accepted requests.
    #[serde(default)]
    pub wal: WalConfig,
    /// How long signals, reports, dead letters and the audit trail are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Per-tenant overrides.
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<causeway_model::TenantId, TenantStorageConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            backend: BackendKind::default(),
            postgres: None,
            checkpoint_interval: default_checkpoint(),
            spans: SpanStorageConfig::default(),
            wal: WalConfig::default(),
            retention: RetentionConfig::default(),
            tenants: Default::default(),
        }
    }
}

pub(super) fn default_checkpoint() -> Duration {
    Duration::from_secs(10)
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// An embedded DuckDB file: nothing to install.
    #[default]
    Duckdb,
    /// PostgreSQL at `storage.postgres.url`.
    Postgres,
}

/// `storage.postgres`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:5432/database?sslmode=verify-full`;
    /// put the password in an environment variable
    /// (`${env:CAUSEWAY_PG_URL}`).
    pub url: String,
    /// A schema other than the user's default (created if missing).
    #[serde(default)]
    pub schema: Option<String>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &causeway_model::redact::redact(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

/// `storage.wal`: every accepted request is written here before the client
/// hears it was accepted, and replayed at start if the processor's stores
/// had not saved it (a crash, a kill -9, a power loss).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Off trades the guarantee for one sequential write per request less:
    /// a crash then loses up to a checkpoint interval of series and spans.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When records are forced to disk: `always` (before each
    /// acknowledgement: survives power loss, one fsync per request),
    /// `interval` (every `fsync_interval`: a process crash loses nothing, a
    /// power loss at most that interval) or `never` (the kernel's own
    /// write-back, about 30 s).
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// The `interval` policy's period.
    #[serde(default = "default_fsync_interval", with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Most bytes of records not yet released by a checkpoint; beyond it
    /// requests are refused (503/UNAVAILABLE, retryable), not acknowledged
    /// unsaved.
    #[serde(default = "default_wal_mib")]
    pub max_size_mib: u32,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fsync: FsyncPolicy::default(),
            fsync_interval: default_fsync_interval(),
            max_size_mib: default_wal_mib(),
        }
    }
}

/// `storage.wal.fsync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Before each acknowledgement.
    Always,
    /// Every `fsync_interval`.
    #[default]
    Interval,
    /// Left to the kernel.
    Never,
}

fn default_true() -> bool {
    true
}
// One second, as Redis's `appendfsync everysec`: a process crash loses
// nothing (the page cache outlives the process), and a power loss at most
// one second of acknowledged requests, for one fsync a second instead of
// one per request.
pub(super) fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}
// A checkpoint (every 10 s by default) releases the log; 1 GiB holds ten
// seconds of requests at 100 MiB/s, above what the receiver takes on a
// two-core machine (docs/performance.md), so a healthy processor never
// fills it and a stuck one is refused within seconds to minutes.
pub(super) fn default_wal_mib() -> u32 {
    1024
}

impl WalConfig {
    /// The store's fsync policy.
    pub fn fsync(&self) -> causeway_store::wal::Fsync {
        match self.fsync {
            FsyncPolicy::Always => causeway_store::wal::Fsync::Always,
            FsyncPolicy::Interval => causeway_store::wal::Fsync::Interval(self.fsync_interval),
            FsyncPolicy::Never => causeway_store::wal::Fsync::Never,
        }
    }
}

/// `storage.spans`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanStorageConfig {
    /// How long spans are kept (whole hours are deleted).
    #[serde(default = "default_span_retention", with = "humantime_serde")]
    pub retention: Duration,
    /// How often buffered spans are written even if few.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Spans buffered per tenant before a file is written.
    #[serde(default = "default_flush_rows")]
    pub flush_rows: usize,
}

impl Default for SpanStorageConfig {
    fn default() -> Self {
        Self {
            retention: default_span_retention(),
            flush_interval: default_flush_interval(),
            flush_rows: default_flush_rows(),
        }
    }
}

pub(super) fn default_span_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
pub(super) fn default_flush_interval() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn default_flush_rows() -> usize {
    65_536
}

/// `storage.retention`: how long each kind of record is kept (spans have
/// `storage.spans.retention`, series `processors.spans.retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Signals (commits, deploys, tickets, messages), by their last change.
    #[serde(default = "default_signal_retention", with = "humantime_serde")]
    pub signals: Duration,
    /// RCA reports and their feedback, by when each was last computed.
    #[serde(default = "default_report_retention", with = "humantime_serde")]
    pub reports: Duration,
    /// Notifications that could not be delivered.
    #[serde(default = "default_dead_letter_retention", with = "humantime_serde")]
    pub dead_letters: Duration,
    /// The audit trail.
    #[serde(default = "default_audit_retention", with = "humantime_serde")]
    pub audit: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            signals: default_signal_retention(),
            reports: default_report_retention(),
            dead_letters: default_dead_letter_retention(),
            audit: default_audit_retention(),
        }
    }
}

// Ninety days: the correlator looks back hours to days for the changes
// behind an incident (correlator.change_half_life), and a quarter covers
// the incident reviews that read signals after the fact.
pub(super) fn default_signal_retention() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
// A year: reports are what post-incident reviews and the precedent search
// read, and are small (kilobytes each).
pub(super) fn default_report_retention() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}
// Thirty days: long enough for an operator to notice the
// causeway_notifications_failed_total alert and replay by hand.
pub(super) fn default_dead_letter_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
// A year: what SOC 2 and ISO 27001 auditors ask to see, and PCI DSS's
// minimum for audit logs (requirement 10.5.1).
pub(super) fn default_audit_retention() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

/// `storage.tenants.<tenant>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantStorageConfig {
    /// This tenant's span retention.
    #[serde(with = "humantime_serde")]
    pub span_retention: Duration,
}

impl StorageConfig {
    /// The processor's view of this section; `instance` names this
    /// process among those sharing a PostgreSQL database.
    pub fn settings(&self, instance: &str) -> causeway_processor::config::StorageSettings {
        let mut s = causeway_processor::config::StorageSettings::new(self.data_dir.clone());
        if self.backend == BackendKind::Postgres
            && let Some(pg) = &self.postgres
        {
            s.postgres = Some(causeway_store::PgSettings {
                url: pg.url.clone(),
                instance: instance.to_owned(),
                schema: pg.schema.clone(),
            });
        }
        s.checkpoint_interval = self.checkpoint_interval;
        s.span_retention = self.spans.retention;
        s.span_flush_interval = self.spans.flush_interval;
        s.span_flush_rows = self.spans.flush_rows;
        s.tenant_span_retention = self
            .tenants
            .iter()
            .map(|(t, c)| (t.clone(), c.span_retention))
            .collect();
        s
    }
}

pub(super) fn default_data_dir() -> PathBuf {
    PathBuf::from("./causeway-data")
}
