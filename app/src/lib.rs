//! causeway's configuration and wiring: the one place that creates every
//! stage and channel.
//!
//! Entry points: [`run`] serves until a signal (`causeway serve`);
//! [`Session`] feeds payloads through the same wiring in event time and
//! collects what detection found (`causeway replay`, `demo` and the
//! evaluations); [`config::Config`] is the typed configuration every one of
//! them starts from.
//!
//! ```text
//! config ─> wiring::run ─┬─ receivers ─bounded queue─> processor ─> span files, series, incidents
//!                        ├─ API ─query channel─> processor
//!                        └─ RCA service, forwarding, notifications
//! ```

pub mod config;
pub mod logging;
mod replay;
pub mod stores;
mod wiring;

pub use replay::{ReplayReport, Session, replay};
pub use wiring::run;

/// Logging for the commands that are not `serve` (eval, replay's tools,
/// connectors): human-readable on stderr, `RUST_LOG` or warnings only.
pub fn init_cli_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already set, which is then kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(logging::RedactingStderr)
        .try_init();
}
