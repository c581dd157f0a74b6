//! What both transports do with a decoded request: validate, count, queue.

use std::sync::Arc;

use bytes::Bytes;
use causeway_model::{TenantId, TraceBatch, Transport};

use super::body::drop_invalid_spans;
use super::wire::scan_request;
use crate::admission::Admission;
use crate::error::ReceiveError;
use crate::metrics::ReceiverMetrics;

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
pub trait Tee: Send + Sync + std::fmt::Debug {
    /// `payload` (an `ExportTraceServiceRequest` with only the valid spans)
    /// of `tenant` was accepted. Must not block for long: it runs on the
    /// request's task.
    fn accepted(&self, tenant: &TenantId, payload: &Bytes, spans: u64);
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
        let scan = match scan_request(&payload) {
            Ok(scan) => scan,
            Err(e) => {
                let err = ReceiveError::Decode(format!("invalid protobuf: {e}"));
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
            match drop_invalid_spans(&payload) {
                Ok(p) => p,
                Err(err) => {
                    self.refuse(transport, Some(&tenant), &err);
                    return Err(err);
                }
            }
        } else {
            payload
        };
        // `Bytes` clones share the buffer.
        let teed = self.tee.as_ref().map(|_| payload.clone());
        let batch = TraceBatch {
            tenant: tenant.clone(),
            transport,
            payload,
            spans: scan.spans,
            services: scan.services,
        };
        if let Err(err) = self.admission.admit(batch).await {
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
