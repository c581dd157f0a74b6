//! Persistence for causeway.
//!
//! Entry points: [`Store`], the trait for series cells, the service
//! catalog and detection state, implemented by [`DuckDbStore`] (an embedded
//! DuckDB file, the default) and [`PgStore`] (PostgreSQL, for shared
//! deployments; the same contract tests run on both); [`SpanStore`], which keeps
//! spans as Parquet files per tenant and hour under the data directory;
//! [`DuckDbSignals`] (connector signals, cursors, sealed credentials) and
//! [`DuckDbReports`] (RCA reports and feedback); [`DuckDbAudit`] (the
//! append-only audit trail); [`queue::DiskQueue`], the segment log that
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
pub use pg::{PgSettings, PgStore};
pub use reports::DuckDbReports;
pub use signals::{CursorUpdate, DuckDbSignals, SealedRow, SignalQuery};
pub use spans::{SpanStore, SpanStoreSettings, scan_files, writer_props as span_writer_props};

use causeway_model::TenantId;

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
