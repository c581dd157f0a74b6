//! The vocabulary every causeway stage shares.
//!
//! Nothing here does I/O. The entry points are [`TenantId`], which every
//! record, query and cache key carries, and [`TraceBatch`], the unit that
//! flows from the receiver to the processor:
//!
//! ```text
//! receiver ──TraceBatch (OTLP protobuf bytes + per-service counts)──> processor
//! ```

pub mod anomaly;
pub mod audit;
mod batch;
pub mod outbound;
pub mod purge;
pub mod rca;
pub mod redact;
pub mod retry;
pub mod schema;
pub mod signal;
pub mod template;
mod tenant;
pub mod time;
pub mod wire;

pub use anomaly::{Anomaly, Incident, IncidentState, Severity, Subject};
pub use audit::{Actor, AuditEvent, AuditOutcome, AuditSink, NoAudit};
pub use batch::{
    AcceptLog, AcceptLogError, Lease, LogPosition, QueuedBatch, ServiceCount, TraceBatch, Transport,
};
pub use purge::TenantPurge;
pub use rca::{CauseKind, Evidence, Hypothesis, Precedent, RcaReport};
pub use signal::{Signal, SignalKind};
pub use tenant::{TenantId, TenantIdError};
