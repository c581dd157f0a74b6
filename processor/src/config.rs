//! `processors.spans`: windows, lateness, cardinality and retention of the
//! RED series and the service graph.

use std::time::Duration;

use serde::Deserialize;

use crate::graph::GraphSettings;
use crate::series::SeriesSettings;

/// `processors.spans`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpansConfig {
    /// Base window of RED series and graph edges.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// How long after its end (in event time) a window stays open before it
    /// is handed to anomaly detection. Later spans still merge into it.
    #[serde(default = "default_lateness", with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// RED series per tenant before new ones go to the overflow series.
    #[serde(default = "default_max_series")]
    pub max_series_per_tenant: usize,
    /// Graph edges per tenant before new ones go to the overflow edge.
    #[serde(default = "default_max_edges")]
    pub max_edges_per_tenant: usize,
    /// How long windows are kept in memory, per resolution.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Span pairing for the service graph.
    #[serde(default)]
    pub graph: GraphConfig,
    /// Limits of `POST /api/v1/query`.
    #[serde(default)]
    pub sql: crate::sql::SqlConfig,
    /// Requests converted to Arrow at once, each on a thread of its own,
    /// ahead of the stage that aggregates them (default: one per core, at
    /// most 8).
    #[serde(default = "default_convert_threads")]
    pub convert_threads: usize,
}

/// `processors.spans.retention`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Base windows.
    #[serde(default = "default_ret_base", with = "humantime_serde")]
    pub window: Duration,
    /// One-minute roll-ups.
    #[serde(default = "default_ret_minute", with = "humantime_serde")]
    pub minute: Duration,
    /// One-hour roll-ups.
    #[serde(default = "default_ret_hour", with = "humantime_serde")]
    pub hour: Duration,
}

/// `processors.spans.graph`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// How long (event time) a span waits for its partner.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// Spans waiting per tenant, at most; beyond, the oldest are dropped
    /// (and counted).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

impl Default for SpansConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
            allowed_lateness: default_lateness(),
            max_series_per_tenant: default_max_series(),
            max_edges_per_tenant: default_max_edges(),
            retention: RetentionConfig::default(),
            graph: GraphConfig::default(),
            sql: crate::sql::SqlConfig::default(),
            convert_threads: default_convert_threads(),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            window: default_ret_base(),
            minute: default_ret_minute(),
            hour: default_ret_hour(),
        }
    }
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            max_pending: default_max_pending(),
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(10)
}
fn default_lateness() -> Duration {
    Duration::from_secs(30)
}
fn default_max_series() -> usize {
    10_000
}
fn default_max_edges() -> usize {
    2_000
}
fn default_ret_base() -> Duration {
    Duration::from_secs(3600)
}
fn default_ret_minute() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_ret_hour() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_convert_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}
fn default_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_max_pending() -> usize {
    200_000
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl SpansConfig {
    /// Problems of this section, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let w = self.window;
        if w < Duration::from_secs(1) || w > Duration::from_secs(3600) {
            p.push(("window", "must be between 1s and 1h".into()));
        } else if w.subsec_nanos() != 0
            || !(60u64.is_multiple_of(w.as_secs().max(1)) || w.as_secs().is_multiple_of(60))
        {
            p.push(("window", "must divide a minute evenly (1s, 2s, 5s, 10s, 15s, 30s, 1m, ...) so windows roll up into minutes".into()));
        }
        if self.max_series_per_tenant == 0 {
            p.push(("max_series_per_tenant", "must be at least 1".into()));
        }
        if self.max_edges_per_tenant == 0 {
            p.push(("max_edges_per_tenant", "must be at least 1".into()));
        }
        if self.retention.window < w {
            p.push(("retention.window", "must be at least one window".into()));
        }
        if !(1..=64).contains(&self.convert_threads) {
            p.push(("convert_threads", "must be between 1 and 64".into()));
        }
        if self.graph.max_pending == 0 {
            p.push(("graph.max_pending", "must be at least 1".into()));
        }
        p.extend(self.sql.problems());
        p
    }

    /// Settings of the RED series set.
    pub fn red_settings(&self) -> SeriesSettings {
        SeriesSettings {
            max_keys: self.max_series_per_tenant,
            ..self.edge_settings()
        }
    }

    /// Settings of the edge series set.
    pub fn edge_settings(&self) -> SeriesSettings {
        SeriesSettings {
            window_ns: ns(self.window),
            lateness_ns: ns(self.allowed_lateness),
            max_keys: self.max_edges_per_tenant,
            retention_ns: [
                ns(self.retention.window),
                ns(self.retention.minute),
                ns(self.retention.hour),
            ],
        }
    }

    /// Settings of span pairing.
    pub fn graph_settings(&self) -> GraphSettings {
        GraphSettings {
            ttl_ns: ns(self.graph.ttl),
            max_pending: self.graph.max_pending,
        }
    }
}

/// Where and how long the processor keeps what it computes.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The data directory (DuckDB file and span Parquet files).
    pub data_dir: std::path::PathBuf,
    /// How often changed series and catalog rows are written.
    pub checkpoint_interval: Duration,
    /// How long spans are kept, unless the tenant has its own.
    pub span_retention: Duration,
    /// Per-tenant span retention.
    pub tenant_span_retention: std::collections::HashMap<causeway_model::TenantId, Duration>,
    /// How often buffered spans are written even if few.
    pub span_flush_interval: Duration,
    /// Spans buffered per tenant before a file is written.
    pub span_flush_rows: usize,
    /// Series, catalog and state in PostgreSQL instead of the DuckDB file.
    pub postgres: Option<causeway_store::PgSettings>,
}

impl StorageSettings {
    /// Defaults under `data_dir`.
    pub fn new(data_dir: std::path::PathBuf) -> Self {
        Self {
            data_dir,
            checkpoint_interval: Duration::from_secs(10),
            span_retention: Duration::from_secs(7 * 24 * 3600),
            tenant_span_retention: Default::default(),
            span_flush_interval: Duration::from_secs(30),
            span_flush_rows: 65_536,
            postgres: None,
        }
    }

    /// Span retention of one tenant.
    pub fn retention_of(&self, tenant: &causeway_model::TenantId) -> Duration {
        self.tenant_span_retention
            .get(tenant)
            .copied()
            .unwrap_or(self.span_retention)
    }
}
