//! OTLP forwarding: causeway as a sidecar or gateway in front of the
//! platform a team already uses. Every span the receiver accepted is also
//! sent, as the same `ExportTraceServiceRequest`, to each configured
//! downstream endpoint; RCA reports and audit events can go along as OTLP
//! log records.
//!
//! ```text
//! receiver ─accepted─> Tee ─append─> DiskQueue (per endpoint) ─> sender task ─> downstream
//! RcaService ─report─> ReportSink ─append─┘                         │ retry with backoff
//!                                                                    └ ack moves the cursor
//! ```
//!
//! The queue is on disk and bounded (`queue.max_size_mib`): a downstream
//! outage or a restart loses nothing up to that size, and each request is
//! sent until the downstream accepts it or refuses it for good (OTLP's
//! non-retryable answers). Beyond the limit, by default, new data is
//! dropped and counted, never blocking causeway's own ingest; with
//! `queue.when_full: refuse` the receiver refuses new requests instead
//! (retryable), having reserved room for each request before accepting
//! it, so nothing acknowledged is lost downstream.

pub mod client;
pub mod config;
mod forwarder;
mod logs;
#[cfg(test)]
mod tests;

pub use config::{ForwardConfig, WhenFull};
pub use forwarder::*;
pub use logs::{audit_log_request, rca_log_request};
