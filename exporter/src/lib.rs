//! What leaves causeway: spans forwarded to OTLP destinations (with a
//! disk queue per destination) and RCA reports sent as notifications (chat,
//! webhooks) or exported as OTLP logs.
//!
//! Entry points: [`forward::Forwarder`] (a receiver `Tee` and a
//! correlator `ReportSink`) and [`notify::Notifier`] (a `ReportSink`).
//!
//! ```text
//! receiver ─Tee─> Forwarder ─disk queue─> OTLP/gRPC, OTLP/HTTP destinations
//! RCA stage ─ReportEvent─> Forwarder (OTLP logs), Notifier ─> Slack, Teams, webhooks
//! ```

pub mod config;
pub mod forward;
pub mod notify;
#[cfg(test)]
mod testutil;

/// Component name, used in config.
pub const NAME: &str = "exporters";
