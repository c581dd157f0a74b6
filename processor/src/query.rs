//! Questions the API asks the processor.

use causeway_model::TenantId;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::ServiceStats;
use crate::error::{Error, Result};

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

    /// The services of `tenant`, including every span acknowledged before
    /// this call.
    pub async fn services(&self, tenant: TenantId) -> Result<Vec<ServiceStats>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Query::Services { tenant, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}
