//! What both transports do with a decoded request: validate, count, queue.

use std::sync::Arc;

use bytes::Bytes;
use causeway_model::{TenantId, TraceBatch, Transport};

use super::body::drop_invalid_spans;
use super::wire::scan_request;
use crate::admission::Admission;
use crate::error::ReceiveError;
use crate::metrics::ReceiverMetrics;

/// Requests up to this many bytes are scanned on the async worker that
/// received them; larger ones on the blocking pool. The scan runs at about
/// 1 GB/s, so 256 KiB is a quarter of a millisecond: below tokio's advice
/// of blocking a worker for at most 100 µs–1 ms, and above the size where
/// moving to another thread (a few µs) stops mattering. Health checks and
/// other tenants' small requests keep their workers while one client sends
/// 64 MiB bodies.
pub const INLINE_DECODE_BYTES: usize = 256 * 1024;

/// Runs `f` (decoding `len` bytes) inline when small, else on the blocking
/// pool. A panic in `f` (a decoder bug on hostile input) is the request's
/// failure, not the connection's.
pub(crate) async fn off_worker<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> Result<T, ReceiveError> + Send + 'static,
) -> Result<T, ReceiveError> {
    if len <= INLINE_DECODE_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, bytes = len, "decoding a request failed");
        Err(ReceiveError::Decode(
            "the request could not be decoded".to_owned(),
        ))
    })
}

/// The outcome of an accepted request: how many spans were rejected
/// individually, and why (the OTLP `partial_success`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Spans accepted.
    pub accepted: u64,
    /// Spans rejected for invalid ids.
    pub rejected: u64,
    /// Why, for `partial_success.error_message` (empty when none rejected).
    pub message: String,
}

/// The transport-independent ingest path.
#[derive(Debug)]
pub struct Ingest {
    admission: Admission,
    metrics: ReceiverMetrics,
    tee: Option<Arc<dyn Tee>>,
}

/// Sees every request the processor accepted, after it was queued and
/// before the client hears back: the hook OTLP forwarding hangs on, so that
/// what is forwarded is exactly what causeway acknowledged.
///
/// A tee that must not lose what causeway acknowledges (a forwarding
/// queue set to refuse when full) reserves room first: every successful
/// [`Tee::reserve`] is followed by exactly one [`Tee::accepted`] (the
/// request was queued) or [`Tee::release`] (it was refused after all).
pub trait Tee: Send + Sync + std::fmt::Debug {
    /// Reserves room for a request of `bytes` of `tenant`, or says why
    /// there is none (the request is then refused, retryable). The default
    /// reserves nothing and always has room.
    fn reserve(&self, tenant: &TenantId, bytes: usize) -> Result<(), TeeFull> {
        let _ = (tenant, bytes);
        Ok(())
    }

    /// Gives back what [`Tee::reserve`] took for a request that was not
    /// queued after all.
    fn release(&self, tenant: &TenantId, bytes: usize) {
        let _ = (tenant, bytes);
    }

    /// `payload` (an `ExportTraceServiceRequest` with only the valid spans)
    /// of `tenant` was accepted; it uses the room reserved for it. Must
    /// not block for long: it runs on the request's task.
    fn accepted(&self, tenant: &TenantId, payload: &Bytes, spans: u64);
}

/// A tee has no room for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeeFull {
    /// Which downstream (the exporter's name).
    pub exporter: String,
    /// Suggested wait before a retry.
    pub retry_after: std::time::Duration,
}

impl Ingest {
    /// Ingests into `admission`, counting into `metrics`.
    pub fn new(admission: Admission, metrics: ReceiverMetrics) -> Self {
        Self {
            admission,
            metrics,
            tee: None,
        }
    }

    /// Also hands every accepted request to `tee`.
    pub fn with_tee(mut self, tee: Arc<dyn Tee>) -> Self {
        self.tee = Some(tee);
        self
    }

    /// The queue this ingests into.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Validates and queues one `ExportTraceServiceRequest` (protobuf bytes).
    pub async fn export(
        &self,
        tenant: TenantId,
        transport: Transport,
        payload: Bytes,
    ) -> Result<Outcome, ReceiveError> {
        let label = transport.as_str();
        let scanned = payload.clone();
        let scan = off_worker(payload.len(), move || {
            scan_request(&scanned)
                .map_err(|e| ReceiveError::Decode(format!("invalid protobuf: {e}")))
        })
        .await;
        let scan = match scan {
            Ok(scan) => scan,
            Err(err) => {
                self.refuse(transport, Some(&tenant), &err);
                return Err(err);
            }
        };
        let message = if scan.invalid > 0 {
            self.metrics
                .refused_spans(label, tenant.as_str(), "invalid_id", scan.invalid);
            let more = scan.invalid as usize - scan.invalid_reasons.len();
            let mut m = format!(
                "{} span(s) rejected for invalid ids: {}",
                scan.invalid,
                scan.invalid_reasons.join("; ")
            );
            if more > 0 {
                m.push_str(&format!("; and {more} more"));
            }
            m
        } else {
            String::new()
        };
        let outcome = Outcome {
            accepted: scan.spans,
            rejected: scan.invalid,
            message,
        };
        if scan.spans == 0 {
            // Empty requests (and requests whose every span was invalid)
            // succeed without queueing anything.
            self.metrics.accepted(label, tenant.as_str(), 0);
            return Ok(outcome);
        }
        let payload = if scan.invalid > 0 {
            let len = payload.len();
            match off_worker(len, move || drop_invalid_spans(&payload)).await {
                Ok(p) => p,
                Err(err) => {
                    self.refuse(transport, Some(&tenant), &err);
                    return Err(err);
                }
            }
        } else {
            payload
        };
        // Room downstream first: once the processor has the request, it
        // is acknowledged.
        if let Some(tee) = &self.tee
            && let Err(full) = tee.reserve(&tenant, payload.len())
        {
            let err = ReceiveError::ForwardQueueFull {
                exporter: full.exporter,
                retry_after: full.retry_after,
            };
            self.refuse(transport, Some(&tenant), &err);
            self.metrics
                .refused_spans(label, tenant.as_str(), err.reason(), scan.spans);
            return Err(err);
        }
        // `Bytes` clones share the buffer.
        let teed = self.tee.as_ref().map(|_| payload.clone());
        let bytes = payload.len();
        let batch = TraceBatch {
            tenant: tenant.clone(),
            transport,
            payload,
            spans: scan.spans,
            services: scan.services,
        };
        if let Err(err) = self.admission.admit(batch).await {
            if let Some(tee) = &self.tee {
                tee.release(&tenant, bytes);
            }
            self.refuse(transport, Some(&tenant), &err);
            self.metrics
                .refused_spans(label, tenant.as_str(), err.reason(), scan.spans);
            return Err(err);
        }
        if let (Some(tee), Some(payload)) = (&self.tee, teed) {
            tee.accepted(&tenant, &payload, scan.spans);
        }
        self.metrics.accepted(label, tenant.as_str(), scan.spans);
        Ok(outcome)
    }

    /// Counts a request refused as a whole.
    pub fn refuse(&self, transport: Transport, tenant: Option<&TenantId>, err: &ReceiveError) {
        self.metrics.refused_request(
            transport.as_str(),
            tenant.map(TenantId::as_str),
            err.reason(),
        );
    }
}
