//! The RCA stage: the last step of the flow inside causeway. It takes the
//! processor's incident changes from a bounded channel, gathers each
//! incident's evidence, analyses it, writes the report and hands it on.
//!
//! ```text
//! processor ─IncidentChange─> run (schedule) ─> RcaService ─> report store
//!                                 │                  ├─> ReportSink (exporter: notifications, OTLP logs)
//!                                 └──────────────────┴─> LiveEvent (api: SSE)
//! ```
//!
//! - `run.rs`: the loop and when each incident is analysed.
//! - `service.rs`: one analysis, the report store, feedback.
//! - `narrative.rs`: the optional LLM narrative.
//! - `sink.rs`: what leaves the stage.

mod narrative;
mod run;
mod service;
mod sink;

pub use narrative::{NarrativeError, Narrator};
pub use service::{RcaError, RcaService};
pub use sink::{LiveEvent, ReportEvent, ReportSink};
