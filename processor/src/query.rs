//! Questions the API asks the processor, and the answers' shapes.

use causeway_model::TenantId;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::ServiceStats;
use crate::error::{Error, Result};
use crate::graph::ConnectionType;
use crate::series::CellStats;

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
}
