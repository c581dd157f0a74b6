//! The OTLP trace receiver: gRPC and HTTP front ends over one ingest path.
//!
//! ```text
//! gRPC Export ─┐                       ┌ scan (wire.rs): structure, ids, counts
//!              ├─ auth ─ limits ─ body ┤
//! POST /v1/traces ┘                    └ Ingest::export ─> Admission ─> queue
//! ```

pub mod body;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod properties;
pub mod wire;

#[cfg(test)]
mod tests;
