//! Where people and tools read causeway: the HTTP API.
//!
//! Entry point: [`api::router`], served by the binary on the API listener
//! (`exporters.api.endpoint`, default `127.0.0.1:4319`). Every data endpoint
//! authenticates with the same API keys as ingest and answers only about the
//! caller's tenant.
//!
//! ```text
//! GET /healthz, /readyz          liveness / readiness (no data, no auth)
//! GET /api/v1/services           ─> QueryHandle ─> processor (per tenant)
//! GET /metrics                   Prometheus text, the caller's tenant only
//! ```

pub mod api;
pub mod config;
pub mod forward;
pub mod narrative;
pub mod notify;
pub mod rca;
pub mod sink;
#[cfg(test)]
mod testutil;

/// Component name, used in config.
pub const NAME: &str = "api";
