//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! tonic does the gRPC framing, compression (gzip, zstd) and the size limit,
//! which it enforces while decompressing, so a compression bomb stops at the
//! limit. The codec hands us the request as raw bytes instead of a prost
//! struct tree; [`Ingest`] walks those bytes once.
//!
//! Credentials are checked before the body is read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use causeway_model::Transport;
use http_body::Body as HttpBody;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::ingest::Ingest;
use crate::error::ReceiveError;
use causeway_server::{Class, ClientAddr, Gate};

/// The gRPC method path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The OTLP/gRPC trace service as a tower service over HTTP/2 requests.
#[derive(Debug, Clone)]
pub struct GrpcTraceService {
    ingest: Arc<Ingest>,
    gate: Gate,
    max_bytes: usize,
}

impl GrpcTraceService {
    /// A service ingesting into `ingest`, refusing requests over `max_bytes`
    /// after decompression.
    pub fn new(ingest: Arc<Ingest>, gate: Gate, max_bytes: usize) -> Self {
        Self {
            ingest,
            gate,
            max_bytes,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> tower::Service<http::Request<B>> for GrpcTraceService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!(
                "unknown method {}: this endpoint serves {EXPORT_PATH}",
                req.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let client = req.extensions().get::<ClientAddr>().copied();
        let tenant = match self.gate.admit(Class::Ingest, client, req.headers()) {
            Ok(t) => t,
            Err(err) => {
                let err = ReceiveError::from(err);
                self.ingest.refuse(Transport::Grpc, None, &err);
                return Box::pin(async move { Ok(to_status(&err).into_http()) });
            }
        };
        let handler = ExportHandler {
            ingest: Arc::clone(&self.ingest),
            tenant: tenant.clone(),
        };
        let max = self.max_bytes;
        let ingest = Arc::clone(&self.ingest);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max);
            let mut response = grpc.unary(handler, req).await;
            remap_size_error(&mut response, &ingest, &tenant);
            Ok(response)
        })
    }
}

/// Maps tonic's own refusals to the codes OTLP prescribes. tonic reports an
/// over-limit message as OUT_OF_RANGE before decompression and
/// RESOURCE_EXHAUSTED during it; OTLP wants RESOURCE_EXHAUSTED for both. Our
/// handler never answers OUT_OF_RANGE or INTERNAL, so such a status came from
/// tonic's framing.
fn remap_size_error(
    response: &mut http::Response<tonic::body::Body>,
    ingest: &Ingest,
    tenant: &causeway_model::TenantId,
) {
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let too_large = ReceiveError::TooLarge { limit: 0 };
    match code.map(Code::from_i32) {
        Some(Code::OutOfRange) => {
            headers.insert(
                "grpc-status",
                http::HeaderValue::from(Code::ResourceExhausted as i32),
            );
            ingest.refuse(Transport::Grpc, Some(tenant), &too_large);
        }
        // Throttling answers UNAVAILABLE, so RESOURCE_EXHAUSTED here is the
        // limit hit while decompressing.
        Some(Code::ResourceExhausted) => ingest.refuse(Transport::Grpc, Some(tenant), &too_large),
        // tonic answers INTERNAL for bodies it cannot decompress or frame;
        // that is the client's fault, and our handler never answers INTERNAL.
        Some(Code::Internal) => {
            headers.insert(
                "grpc-status",
                http::HeaderValue::from(Code::InvalidArgument as i32),
            );
            let malformed = ReceiveError::Decode(String::new());
            ingest.refuse(Transport::Grpc, Some(tenant), &malformed);
        }
        _ => {}
    }
}

/// The gRPC status for a refusal, with `RetryInfo` when a retry makes sense
/// (the OTLP exporters honour it).
pub fn to_status(err: &ReceiveError) -> Status {
    let code = err.grpc_code();
    match err.retry_after() {
        Some(delay) => Status::with_error_details(
            code,
            err.to_string(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => Status::new(code, err.to_string()),
    }
}

struct ExportHandler {
    ingest: Arc<Ingest>,
    tenant: causeway_model::TenantId,
}

impl tonic::server::UnaryService<Bytes> for ExportHandler {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingest = Arc::clone(&self.ingest);
        let tenant = self.tenant.clone();
        Box::pin(async move {
            let payload = request.into_inner();
            let outcome = ingest
                .export(tenant, Transport::Grpc, payload)
                .await
                .map_err(|e| to_status(&e))?;
            let partial_success = (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
                error_message: outcome.message,
            });
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success,
            }))
        })
    }
}

/// Decodes a request message to its bytes (zero-copy), encodes the prost
/// response.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = causeway_server::grpc::BytesDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> causeway_server::grpc::BytesDecoder {
        causeway_server::grpc::BytesDecoder
    }
}

#[derive(Debug)]
struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn throttling_carries_retry_info_and_other_errors_do_not() {
        let status = to_status(&ReceiveError::Overloaded {
            retry_after: Duration::from_secs(2),
        });
        assert_eq!(status.code(), Code::Unavailable);
        let details = status.get_error_details();
        let retry = details.retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));

        // A rate limit is RESOURCE_EXHAUSTED with RetryInfo (OTLP/gRPC:
        // retryable because the server says when).
        let status = to_status(&ReceiveError::RateLimited(causeway_server::Limited {
            class: causeway_server::Class::Ingest,
            scope: causeway_server::limits::Scope::Tenant,
            retry_after: Duration::from_millis(1500),
        }));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().expect("RetryInfo").retry_delay,
            Some(Duration::from_millis(1500))
        );

        let status = to_status(&ReceiveError::TooLarge { limit: 10 });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_error_details().retry_info().is_none());
        assert_eq!(
            to_status(&ReceiveError::Unauthenticated("x")).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            to_status(&ReceiveError::Decode("x".into())).code(),
            Code::InvalidArgument
        );
    }
}
