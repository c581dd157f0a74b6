//! The unit of work between the receiver and the processor.

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::TenantId;

/// How a batch reached causeway; a label on the receiver's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
    /// Read from a file by `causeway replay`.
    File,
}

impl Transport {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::HttpProtobuf => "http_protobuf",
            Transport::HttpJson => "http_json",
            Transport::File => "file",
        }
    }
}

/// Spans of one service within a batch, counted while the receiver validated
/// the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCount {
    /// `service.name` of the resource; `unknown_service` when absent, as the
    /// OpenTelemetry SDKs name it.
    pub name: String,
    /// Accepted spans.
    pub spans: u64,
    /// Accepted spans whose status code is ERROR.
    pub errors: u64,
    /// Earliest non-zero span start time, unix nanoseconds (0 if none).
    pub first_ns: u64,
    /// Latest span end time, unix nanoseconds (0 if none).
    pub last_ns: u64,
}

/// One accepted OTLP export request, attributed to a tenant.
///
/// `payload` is an `ExportTraceServiceRequest` in protobuf encoding holding
/// only the spans that passed validation; JSON requests are re-encoded. Stages
/// that need columns decode it themselves; keeping the bytes avoids building a
/// struct tree per span on the ingest path.
#[derive(Debug, Clone)]
pub struct TraceBatch {
    /// The tenant the request's credentials resolved to.
    pub tenant: TenantId,
    /// How it arrived.
    pub transport: Transport,
    /// Protobuf `ExportTraceServiceRequest`.
    pub payload: Bytes,
    /// Number of spans in `payload`.
    pub spans: u64,
    /// Per-service counts of the spans in `payload`.
    pub services: Vec<ServiceCount>,
}

/// A reservation of queue memory. It is released when dropped, that is when
/// the processor is done with the batch that holds it.
#[derive(Debug)]
pub struct Lease {
    _global: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// Bundles the permits taken from the global and the tenant's budget.
    pub fn new(global: OwnedSemaphorePermit, tenant: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            _global: global,
            _tenant: tenant,
        }
    }
}

/// A batch in the queue between receiver and processor, with the memory it
/// holds reserved.
#[derive(Debug)]
pub struct QueuedBatch {
    /// The batch.
    pub batch: TraceBatch,
    /// Released when this value is dropped.
    pub lease: Lease,
}
