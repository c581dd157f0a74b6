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
    /// Where the batch's record ends in the acceptance log, when there is
    /// one: once the processor's stores hold this batch's effects, the log
    /// may release everything up to here.
    pub logged: Option<LogPosition>,
}

/// A place in the write-ahead log of accepted requests: the position just
/// after a record. Positions grow in the order records were appended, which
/// is the order batches enter the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The segment file's number.
    pub segment: u64,
    /// The byte offset in it.
    pub offset: u64,
}

impl LogPosition {
    /// As stored (segment, then offset, little-endian).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.segment.to_le_bytes());
        out[8..].copy_from_slice(&self.offset.to_le_bytes());
        out
    }

    /// From [`LogPosition::to_bytes`].
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let mut seg = [0u8; 8];
        let mut off = [0u8; 8];
        seg.copy_from_slice(&b[..8]);
        off.copy_from_slice(&b[8..]);
        Self {
            segment: u64::from_le_bytes(seg),
            offset: u64::from_le_bytes(off),
        }
    }
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.segment, self.offset)
    }
}

impl std::str::FromStr for LogPosition {
    type Err = ();
    /// From [`LogPosition`]'s `Display` (`segment.offset`).
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.split_once('.').ok_or(())?;
        Ok(Self {
            segment: a.parse().map_err(|_| ())?,
            offset: b.parse().map_err(|_| ())?,
        })
    }
}

/// Why the acceptance log refused a record; the request is then refused
/// with a retryable status, never acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AcceptLogError {
    /// The log holds its maximum: the processor has not saved enough yet
    /// to release older records.
    #[error("the write-ahead log is full ({held} of {max} bytes held)")]
    Full {
        /// Bytes held.
        held: u64,
        /// The limit.
        max: u64,
    },
    /// The disk refused the write.
    #[error("cannot write the write-ahead log: {0}")]
    Io(String),
}

/// Where the receiver writes each accepted batch before it acknowledges it
/// (the store's write-ahead log; none by default in tests and tools). A
/// trait here so that the receiver does not depend on the store.
pub trait AcceptLog: Send + Sync + std::fmt::Debug {
    /// Appends `batch`; returns the position after its record.
    fn append(&self, batch: &TraceBatch) -> Result<LogPosition, AcceptLogError>;
    /// Whether `append` waits for the disk (fsync per record): the caller
    /// then runs it off the async workers.
    fn waits_for_disk(&self) -> bool;
}
