//! Persistence for causeway.
//!
//! Entry points: [`Store`], the trait for series cells, the service
//! catalog and detection state, implemented by [`DuckDbStore`] (an embedded
//! DuckDB file, the default) and [`PgStore`] (PostgreSQL, for shared
//! deployments; the same contract tests run on both); [`SpanStore`], which keeps
//! spans as Parquet files per tenant and hour under the data directory;
//! [`SignalStore`] (connector signals, cursors, sealed credentials:
//! [`DuckDbSignals`], [`PgSignals`]);
//! [`ReportStore`] (RCA reports and feedback: [`DuckDbReports`],
//! [`PgReports`]); [`AuditStore`] (the append-only audit trail:
//! [`DuckDbAudit`], [`PgAudit`]); [`queue::DiskQueue`], the segment log that
//! forwarding queues and the write-ahead log are made of.
//!
//! ```text
//! processor ──cells, services──> Store (DuckDB file: <data_dir>/causeway.duckdb)
//!           ──span batches────> SpanStore (<data_dir>/spans/tenant=T/hour=YYYY-MM-DDTHH/*.parquet)
//! connectors ──signals, cursors, sealed credentials──> DuckDbSignals (<data_dir>/signals.duckdb)
//! every stage ──audit events──> DuckDbAudit (<data_dir>/audit.duckdb)
//! ```
//!
//! Every row and every file path carries the tenant; deleting a tenant
//! removes its rows and its directory.

mod audit;
mod duck;
mod error;
mod open;
pub mod pg;
pub mod queue;
mod reports;
mod signals;
mod spans;
pub mod wal;

#[cfg(test)]
mod contract;

pub use audit::{AuditEntry, DuckDbAudit};
pub use duck::DuckDbStore;
pub use error::{Error, Result};
pub use pg::{PgAudit, PgClient, PgReports, PgSettings, PgSignals, PgStore};
pub use reports::DuckDbReports;
pub use signals::{CursorUpdate, DuckDbSignals, SealedRow, SignalQuery};
pub use spans::{SpanStore, SpanStoreSettings, scan_files, writer_props as span_writer_props};

use causeway_model::TenantId;

/// A write-ahead log mark as the stores keep it (16 bytes).
pub(crate) fn mark_of(bytes: &[u8]) -> Result<queue::Position> {
    <[u8; 16]>::try_from(bytes)
        .map(queue::Position::from_bytes)
        .map_err(|_| Error::Corrupt(format!("a WAL mark of {} bytes", bytes.len())))
}

/// Which series family a cell belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// RED: a = service, b = operation, c = span kind, d = status code.
    Red,
    /// Graph edge: a = client, b = server, c = connection type, d = 0.
    Edge,
    /// Span self time, keyed like RED.
    SelfTime,
}

impl Family {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Red => "red",
            Family::Edge => "edge",
            Family::SelfTime => "self_time",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "red" => Some(Family::Red),
            "edge" => Some(Family::Edge),
            "self_time" => Some(Family::SelfTime),
            _ => None,
        }
    }
}

/// One window of one series, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRow {
    /// Whose.
    pub tenant: TenantId,
    /// RED or edge.
    pub family: Family,
    /// Service / client.
    pub a: String,
    /// Operation / server.
    pub b: String,
    /// Kind / connection type.
    pub c: i8,
    /// Status code / 0.
    pub d: i8,
    /// 0 base window, 1 minute, 2 hour.
    pub resolution: u8,
    /// Window start, unix ns.
    pub start_ns: i64,
    /// Spans.
    pub calls: u64,
    /// Error spans.
    pub errors: u64,
    /// HdrHistogram, V2 serialization.
    pub hist: Vec<u8>,
    /// Whether the window was already handed on (sealed).
    pub handed_on: bool,
}

/// One service of the catalog, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// Whose.
    pub tenant: TenantId,
    /// `service.name`.
    pub name: String,
    /// Spans.
    pub spans: u64,
    /// Error spans.
    pub errors: u64,
    /// Earliest span start, unix ns.
    pub first_ns: u64,
    /// Latest span end, unix ns.
    pub last_ns: u64,
}

/// A saved document of one tenant's state (e.g. detection), by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    /// Whose.
    pub tenant: TenantId,
    /// Which part of the state (`detection`).
    pub part: String,
    /// The document.
    pub state: Vec<u8>,
    /// When it was saved, unix ns.
    pub saved_ns: i64,
}

/// Storage of the audit trail: append-only; entries leave only by age or
/// with their tenant's purge. [`DuckDbAudit`] and [`PgAudit`].
pub trait AuditStore: Send + std::fmt::Debug {
    /// Appends `events` in order, in one transaction.
    fn append(&mut self, events: &[causeway_model::AuditEvent]) -> Result<()>;
    /// `tenant`'s entries (`None`: the operator's), newest first: at most
    /// `limit` whose `(at_ns, seq)` is below `before` (the previous page's
    /// last).
    fn list(
        &self,
        tenant: Option<&TenantId>,
        before: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;
    /// Deletes entries older than `before_ns` (retention); returns how many.
    fn prune_before(&mut self, before_ns: i64) -> Result<u64>;
    /// Deletes `tenant`'s entries older than `before_ns` (its purge keeps
    /// the entries within the audit retention, the purge's own included).
    fn purge_tenant(&mut self, tenant: &TenantId, before_ns: i64) -> Result<u64>;
}

/// Storage of connector signals, sync cursors and sealed credentials.
/// [`DuckDbSignals`] and [`PgSignals`].
pub trait SignalStore: Send + std::fmt::Debug {
    /// Inserts or replaces `signals` (stored redacted) and, in the same
    /// transaction, moves `cursor` of `tenant` forward. Returns how many
    /// signals were new.
    fn commit_page(
        &mut self,
        tenant: &TenantId,
        signals: &[causeway_model::Signal],
        cursor: Option<CursorUpdate<'_>>,
    ) -> Result<usize>;
    /// The stored cursor of one stream of a connector.
    fn cursor(&self, tenant: &TenantId, connector: &str, stream: &str) -> Result<Option<String>>;
    /// Signals of `tenant` matching `q`, newest first.
    fn signals(&self, tenant: &TenantId, q: &SignalQuery) -> Result<Vec<causeway_model::Signal>>;
    /// Stores a sealed credential (replacing one of the same name).
    fn put_sealed(&mut self, row: &SealedRow) -> Result<()>;
    /// One sealed credential.
    fn sealed(&self, tenant: &TenantId, name: &str) -> Result<Option<SealedRow>>;
    /// Every sealed credential (key rotation re-seals them all).
    fn all_sealed(&self) -> Result<Vec<SealedRow>>;
    /// Replaces every sealed credential in one transaction (rotation: all
    /// are under the new key, or none is).
    fn replace_all_sealed(&mut self, rows: &[SealedRow]) -> Result<()>;
    /// Deletes signals not changed since `before_ns` (retention) with their
    /// service links; returns how many signals.
    fn prune_before(&mut self, before_ns: i64) -> Result<u64>;
    /// Deletes everything of one tenant.
    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()>;
}

/// Storage of RCA reports and their feedback. [`DuckDbReports`] and
/// [`PgReports`].
pub trait ReportStore: Send + std::fmt::Debug {
    /// Inserts or replaces `report` (keyed by tenant and id). Feedback
    /// already given stays attached.
    fn put(&mut self, tenant: &TenantId, report: &causeway_model::RcaReport) -> Result<()>;
    /// One report of `tenant`.
    fn get(&self, tenant: &TenantId, id: u64) -> Result<Option<causeway_model::RcaReport>>;
    /// Reports of `tenant` whose incident began in `[from_ns, to_ns)`,
    /// newest first, at most `limit` (0: no limit).
    fn list(
        &self,
        tenant: &TenantId,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<causeway_model::RcaReport>>;
    /// Records feedback on report `id`; `false` when there is no such
    /// report of `tenant`.
    fn add_feedback(
        &mut self,
        tenant: &TenantId,
        id: u64,
        feedback: &causeway_model::rca::Feedback,
    ) -> Result<bool>;
    /// Every feedback of `tenant` (for ranking).
    fn all_feedback(&self, tenant: &TenantId) -> Result<Vec<(u64, causeway_model::rca::Feedback)>>;
    /// Deletes reports last computed before `before_ns` (retention) and
    /// their feedback; returns how many reports.
    fn prune_before(&mut self, before_ns: i64) -> Result<u64>;
    /// Deletes every report and feedback of `tenant`.
    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()>;
}

/// Persistence of everything but raw spans.
pub trait Store: Send {
    /// Inserts or replaces cells (by tenant, family, key, resolution, start).
    fn save_cells(&mut self, rows: &[CellRow]) -> Result<()>;
    /// Every stored cell.
    fn load_cells(&self) -> Result<Vec<CellRow>>;
    /// Inserts or replaces catalog rows.
    fn save_services(&mut self, rows: &[ServiceRow]) -> Result<()>;
    /// Cells and catalog rows together, atomically, with the write-ahead
    /// log position whose requests they hold, when there is a log: a crash
    /// leaves all of a checkpoint or none of it.
    fn save_checkpoint(
        &mut self,
        cells: &[CellRow],
        services: &[ServiceRow],
        wal: Option<queue::Position>,
    ) -> Result<()>;
    /// The write-ahead log position of the last checkpoint that had one.
    fn wal_mark(&self) -> Result<Option<queue::Position>>;
    /// The whole catalog.
    fn load_services(&self) -> Result<Vec<ServiceRow>>;
    /// Deletes each listed tenant's cells that start before its
    /// `before_ns[resolution]`; returns how many. Per tenant: one idle
    /// tenant's horizon must not hold back everyone else's retention.
    fn prune_cells(&mut self, horizons: &[(TenantId, [i64; 3])]) -> Result<u64>;
    /// Inserts or replaces state documents (by tenant and part).
    fn save_state(&mut self, rows: &[StateRow]) -> Result<()>;
    /// Every state document.
    fn load_state(&self) -> Result<Vec<StateRow>>;
    /// Deletes everything of one tenant.
    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()>;
}
