//! Per-tenant span processing.
//!
//! Entry point: [`ProcessorStage`], which owns all per-tenant state, consumes
//! the bounded queue the receiver fills, answers [`Query`]s sent through
//! a [`QueryHandle`] and sends each [`IncidentChange`] on to the
//! correlator. State is owned by the stage's task and mutated through
//! `&mut self`: no locks, and a query sees exactly the batches queued
//! before it was asked, because the stage drains its input before
//! answering.
//!
//! ```text
//! receiver ──QueuedBatch──> ProcessorStage ──IncidentChange──> correlator
//!                                ^
//! API, correlator ──Query (oneshot)
//! ```

mod catalog;
mod changes;
pub mod config;
pub mod detect;
mod error;
pub mod graph;
pub mod kernels;
mod metrics;
pub mod persist;
mod query;
pub mod red;
pub mod series;
pub mod sql;
mod stage;

pub use catalog::{Catalog, MAX_SERVICES_PER_TENANT, OVERFLOW_SERVICE, ServiceStats};
pub use changes::IncidentChange;
pub use error::{Error, Result};
pub use metrics::ProcessorMetrics;
pub use query::{
    CellRange, EdgeRow, MetricsSnapshot, Query, QueryHandle, RedQuery, RedRow, Snapshot,
    SnapshotCell, SnapshotRequest,
};
pub use sql::{SqlAnswer, SqlConfig, SqlEngine, SqlError};
pub use stage::ProcessorStage;

/// Component name, used in config and metrics.
pub const NAME: &str = "processor";
