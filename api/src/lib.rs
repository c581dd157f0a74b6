//! Where people and tools read causeway: the HTTP API, the dashboard,
//! webhook intake and dashboard sessions.
//!
//! Entry point: [`router`], served by the binary on the API listener
//! (`exporters.api.endpoint`, default `127.0.0.1:4319`, [`config::ApiConfig`]).
//! Every data endpoint authenticates with the same API keys as ingest and
//! answers only about the caller's tenant.
//!
//! ```text
//! GET /healthz, /readyz          liveness / readiness (no data, no auth)
//! GET /api/v1/services, red, ... ─> QueryHandle ─> processor (per tenant)
//! GET /api/v1/rca, events        ─> RcaService (correlator): reports, live events
//! POST /api/v1/webhooks/{tenant}/{source} ─> SignalHub (connectors)
//! GET /metrics                   Prometheus text, the caller's tenant only
//! ```

pub mod config;
mod events;
mod incidents;
mod metrics;
mod rca;
mod red;
mod router;
mod services;
pub mod session;
mod signals;
mod sql;
#[cfg(test)]
mod tests;
mod traces;
mod ui;

pub use router::*;

/// Component name, used in config.
pub const NAME: &str = "api";
