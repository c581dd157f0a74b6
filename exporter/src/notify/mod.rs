//! Outgoing notifications: when an RCA is ready (or its conclusion
//! changes), a message goes to Slack, Microsoft Teams or any HTTP endpoint.
//!
//! ```text
//! RcaService ─ReportEvent─> Notifier (ReportSink) ─bounded channel─> sender task
//!     per destination: build message ─> POST, retry with backoff ─> sent
//!                                                  └ gave up ─> dead-letter file (bounded)
//! ```
//!
//! A message is sent for a report that is news (the first for its incident,
//! or a different top culprit or cause): re-analyses that conclude the same
//! stay quiet. Retries honour `Retry-After`; a 4xx other than 408/429 is not
//! retried. Messages that could not be delivered are kept, newest
//! `DEAD_LETTERS` of them, in `data_dir/notifications/dead_letters.jsonl`.

pub mod config;
mod notifier;
#[cfg(test)]
mod tests;

pub use config::{NotifierKind, NotifyConfig};
pub use notifier::*;
