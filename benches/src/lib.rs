//! Realistic OTLP trace workloads for benchmarks and tests.
//!
//! Entry point: [`Workload`], which produces `ExportTraceServiceRequest`s the
//! way an OpenTelemetry SDK or Collector batch processor would send them:
//! whole traces over a web-shop topology, grouped by service into
//! `ResourceSpans`, with the resource and span attributes the SDKs and their
//! HTTP, gRPC, database and messaging instrumentations set, and a small share
//! of failed spans carrying an `exception` event.
//!
//! The generator is deterministic for a given seed, so a benchmark run and a
//! test see the same data.

mod fault;
mod random;
mod rng;
mod sim;
mod topology;
mod workload;

pub use fault::{Effects, Fault, FaultKind};
pub use random::{BENCH_KINDS, Scenario, healthy, random_topology, scenario};
pub use sim::{HttpSender, SimConfig, Simulator};
pub use topology::{Call, Operation, Service, web_shop};
pub use workload::{Rng, Workload, WorkloadConfig};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
