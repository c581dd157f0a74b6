//! Where people and tools read causeway: the HTTP API, the dashboard,
//! webhook intake and dashboard sessions.
//!
//! Entry point: [`router`], served by the binary on the API listener
//! (`exporters.api.endpoint`, default `127.0.0.1:4319`, [`config::ApiConfig`]).
//! Every data endpoint authenticates with the same API keys as ingest and
//! answers only about the caller's tenant; every request passes the
//! [`causeway_server::Gate`] (rate limits per client address and tenant,
//! the failed-authentication block).
//!
//! ```text
//! GET /healthz, /readyz          liveness / readiness (no data, no auth)
//! GET /api/v1/services, red, ... ─> QueryHandle ─> processor (per tenant)
//! GET /api/v1/rca, events        ─> RcaService (correlator): reports, live events
//! POST /api/v1/webhooks/{tenant}/{source} ─> SignalHub (connectors)
//! GET /api/v1/audit             the caller's audit trail
//! GET /metrics                   Prometheus text, the caller's tenant only
//! ```

pub mod audit;
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
#[cfg(test)]
mod tests_gate;
mod traces;
mod ui;

pub use router::*;

/// Component name, used in config.
pub const NAME: &str = "api";
