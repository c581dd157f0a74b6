//! Questions the API asks the processor, and the answers' shapes.

use causeway_model::{Anomaly, Incident, TenantId};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::ServiceStats;
use crate::error::{Error, Result};
use crate::graph::ConnectionType;
use crate::graph::EdgeKey;
use crate::red::RedKey;
use crate::series::{Cell, CellStats, Resolution, Totals};
use arrow_array::RecordBatch;
use std::path::PathBuf;

/// A RED query: filters and a time range (unix ns, `[from, to)`).
#[derive(Debug, Clone, Default)]
pub struct RedQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this operation (span name).
    pub operation: Option<String>,
    /// Range start.
    pub from_ns: i64,
    /// Range end.
    pub to_ns: i64,
    /// Return points of this width too.
    pub step_ns: Option<i64>,
}

/// One RED series over a range, all status codes merged.
#[derive(Debug, Clone, PartialEq)]
pub struct RedRow {
    /// `service.name`.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// OTLP span kind.
    pub kind: i8,
    /// Over the whole range.
    pub total: CellStats,
    /// Per step, when asked: (step start ns, stats).
    pub points: Vec<(i64, CellStats)>,
    /// Self time (duration minus time in children) over the whole range,
    /// of the spans whose self time is final (it is once a span has waited
    /// the pairing TTL for late children).
    pub self_total: Option<CellStats>,
    /// Self time per step, when asked.
    pub self_points: Vec<(i64, CellStats)>,
}

/// One graph edge over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRow {
    /// Calling service.
    pub client: String,
    /// Called service or virtual node.
    pub server: String,
    /// How they connect.
    pub connection: ConnectionType,
    /// Calls, failed calls, latency.
    pub stats: CellStats,
}

/// A question for the [`ProcessorStage`](crate::ProcessorStage), answered on
/// its oneshot.
#[derive(Debug)]
pub enum Query {
    /// The services of a tenant.
    Services {
        /// Whose.
        tenant: TenantId,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<ServiceStats>>,
    },
    /// RED series of a tenant.
    Red {
        /// Whose.
        tenant: TenantId,
        /// What.
        query: RedQuery,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<RedRow>>,
    },
    /// Graph edges of a tenant over `[from, to)`.
    Graph {
        /// Whose.
        tenant: TenantId,
        /// Range start, ns.
        from_ns: i64,
        /// Range end, ns.
        to_ns: i64,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<EdgeRow>>,
    },
    /// Cumulative span metrics and service graph metrics of a tenant.
    Metrics {
        /// Whose.
        tenant: TenantId,
        /// Where the answer goes.
        reply: oneshot::Sender<MetricsSnapshot>,
    },
    /// Anomalies of a tenant active in `[from, to)`, newest first.
    Anomalies {
        /// Whose.
        tenant: TenantId,
        /// Range start, ns.
        from_ns: i64,
        /// Range end, ns.
        to_ns: i64,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<Anomaly>>,
    },
    /// Tenants with data in the processor.
    Tenants {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<TenantId>>,
    },
    /// Incidents of a tenant, newest first.
    Incidents {
        /// Whose.
        tenant: TenantId,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<Incident>>,
    },
    /// One incident of a tenant with its anomalies.
    Incident {
        /// Whose.
        tenant: TenantId,
        /// Which.
        id: u64,
        /// Where the answer goes (None: no such incident for this tenant).
        reply: oneshot::Sender<Option<(Incident, Vec<Anomaly>)>>,
    },
    /// The tenant's input is over (the end of a replay): every window it
    /// has is complete, so each is sealed and judged now, and spans still
    /// waiting for their pair are settled.
    EndOfInput {
        /// Whose.
        tenant: TenantId,
        /// Answered once done.
        reply: oneshot::Sender<()>,
    },
    /// Deletes everything of a tenant: series, graph, catalog, spans.
    DeleteTenant {
        /// Whose.
        tenant: TenantId,
        /// Where the outcome goes.
        reply: oneshot::Sender<causeway_store::Result<()>>,
    },
    /// What a SQL query over a tenant reads.
    Snapshot {
        /// Whose.
        tenant: TenantId,
        /// Which tables.
        want: SnapshotRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Snapshot>,
    },
}

/// Cumulative counts per RED series and per edge, since the process
/// started (Prometheus counters and histograms).
#[derive(Debug, Default)]
pub struct MetricsSnapshot {
    /// Per RED series (overflow included).
    pub red: Vec<(RedKey, Totals)>,
    /// Per graph edge, the client's view.
    pub edges: Vec<(EdgeKey, Totals)>,
    /// Per graph edge with an instrumented server, the server's view.
    pub edges_server: Vec<(EdgeKey, Totals)>,
}

/// Which tables a SQL statement reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotRequest {
    /// `spans`: stored files and buffered batches.
    pub spans: bool,
    /// `red`: RED cells.
    pub red: bool,
    /// `edges`: graph edge cells.
    pub edges: bool,
    /// Which cells.
    pub range: CellRange,
    /// Cells at most (0: no limit); beyond, `cells_cut` is set.
    pub max_cells: usize,
}

/// Cells whose window starts in `[from_ns, to_ns)`, of one resolution or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRange {
    /// Earliest window start.
    pub from_ns: i64,
    /// Window starts before this.
    pub to_ns: i64,
    /// `None`: every resolution; `Some(None)`: none; `Some(Some(r))`: only `r`.
    pub resolution: Option<Option<Resolution>>,
}

impl Default for CellRange {
    fn default() -> Self {
        Self {
            from_ns: i64::MIN,
            to_ns: i64::MAX,
            resolution: None,
        }
    }
}

impl CellRange {
    /// Whether a cell is in the range.
    pub fn contains(&self, resolution: Resolution, start_ns: i64) -> bool {
        (self.from_ns..self.to_ns).contains(&start_ns)
            && self.resolution.is_none_or(|r| r == Some(resolution))
    }
}

/// One cell of a series as the SQL tables show it.
pub type SnapshotCell<K> = (K, Resolution, i64, Cell);

/// A consistent view of one tenant's data at the moment of asking:
/// everything acknowledged before is in it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Parquet files of the tenant's spans.
    pub span_files: Vec<PathBuf>,
    /// Spans not written to a file yet.
    pub buffered: Vec<RecordBatch>,
    /// RED cells (service, operation, kind, status).
    pub red: Vec<SnapshotCell<RedKey>>,
    /// Graph edge cells.
    pub edges: Vec<SnapshotCell<EdgeKey>>,
    /// Base window length, ns.
    pub window_ns: i64,
    /// More cells matched than `max_cells`.
    pub cells_cut: bool,
}

/// The API's handle on the processor.
#[derive(Debug, Clone)]
pub struct QueryHandle {
    tx: mpsc::Sender<Query>,
}

impl QueryHandle {
    /// Wraps the sending half of the query channel.
    pub fn new(tx: mpsc::Sender<Query>) -> Self {
        Self { tx }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The services of `tenant`, including every span acknowledged before
    /// this call.
    pub async fn services(&self, tenant: TenantId) -> Result<Vec<ServiceStats>> {
        self.ask(|reply| Query::Services { tenant, reply }).await
    }

    /// RED series of `tenant`.
    pub async fn red(&self, tenant: TenantId, query: RedQuery) -> Result<Vec<RedRow>> {
        self.ask(|reply| Query::Red {
            tenant,
            query,
            reply,
        })
        .await
    }

    /// Graph edges of `tenant`.
    pub async fn graph(&self, tenant: TenantId, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeRow>> {
        self.ask(|reply| Query::Graph {
            tenant,
            from_ns,
            to_ns,
            reply,
        })
        .await
    }

    /// What a SQL statement over `tenant` reads.
    pub async fn snapshot(&self, tenant: TenantId, want: SnapshotRequest) -> Result<Snapshot> {
        self.ask(|reply| Query::Snapshot {
            tenant,
            want,
            reply,
        })
        .await
    }

    /// Cumulative span and service graph metrics of `tenant`.
    pub async fn metrics(&self, tenant: TenantId) -> Result<MetricsSnapshot> {
        self.ask(|reply| Query::Metrics { tenant, reply }).await
    }

    /// Deletes everything `tenant` has: series, graph, catalog and spans, in
    /// memory and on disk. Spans queued before this call are deleted too.
    pub async fn delete_tenant(&self, tenant: TenantId) -> Result<causeway_store::Result<()>> {
        self.ask(|reply| Query::DeleteTenant { tenant, reply })
            .await
    }

    /// Anomalies of `tenant` active in `[from, to)`.
    pub async fn anomalies(
        &self,
        tenant: TenantId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Anomaly>> {
        self.ask(|reply| Query::Anomalies {
            tenant,
            from_ns,
            to_ns,
            reply,
        })
        .await
    }

    /// Tenants with data in the processor.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        self.ask(|reply| Query::Tenants { reply }).await
    }

    /// Incidents of `tenant`, newest first.
    pub async fn incidents(&self, tenant: TenantId) -> Result<Vec<Incident>> {
        self.ask(|reply| Query::Incidents { tenant, reply }).await
    }

    /// Declares `tenant`'s input over (a bounded replay): its last windows
    /// are sealed and judged without waiting for event time to pass them.
    pub async fn end_of_input(&self, tenant: TenantId) -> Result<()> {
        self.ask(|reply| Query::EndOfInput { tenant, reply }).await
    }

    /// One incident of `tenant` with its anomalies.
    pub async fn incident(
        &self,
        tenant: TenantId,
        id: u64,
    ) -> Result<Option<(Incident, Vec<Anomaly>)>> {
        self.ask(|reply| Query::Incident { tenant, id, reply })
            .await
    }
}
