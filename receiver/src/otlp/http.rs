//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, identity/gzip/deflate/zstd.
//!
//! Order of checks, cheapest first and before the body is read where
//! possible: media type (415), credentials (401), content encoding (415),
//! declared length (413); then the body is read under the limit (413),
//! decompressed under the limit (413, bombs included), decoded (400).
//! Errors carry a `google.rpc.Status` in the request's encoding.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use causeway_model::Transport;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::body::{Encoding, decompress, json_to_protobuf};
use super::ingest::{Ingest, Outcome};
use crate::error::ReceiveError;
use causeway_server::{Class, ClientAddr, Gate};

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

#[derive(Debug)]
struct HttpState {
    ingest: Arc<Ingest>,
    gate: Gate,
    max_bytes: usize,
}

/// The OTLP/HTTP router.
pub fn router(ingest: Arc<Ingest>, gate: Gate, max_bytes: usize) -> Router {
    let state = Arc::new(HttpState {
        ingest,
        gate,
        max_bytes,
    });
    Router::new()
        .route(TRACES_PATH, post(export))
        .with_state(state)
}

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ReceiveError> {
        let raw = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Parameters such as `; charset=utf-8` are allowed.
        let essence = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            _ => Err(ReceiveError::UnsupportedMediaType(raw.to_owned())),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    fn transport(self) -> Transport {
        match self {
            Self::Protobuf => Transport::HttpProtobuf,
            Self::Json => Transport::HttpJson,
        }
    }
}

async fn export(State(state): State<Arc<HttpState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let format = match Format::from_headers(&parts.headers) {
        Ok(f) => f,
        Err(err) => {
            state.ingest.refuse(Transport::HttpProtobuf, None, &err);
            return error_response(&err, Format::Protobuf);
        }
    };
    let transport = format.transport();
    let client = parts.extensions.get::<ClientAddr>().copied();
    let tenant = match state.gate.admit(Class::Ingest, client, &parts.headers) {
        Ok(t) => t,
        Err(err) => {
            let err = ReceiveError::from(err);
            state.ingest.refuse(transport, None, &err);
            return error_response(&err, format);
        }
    };
    let payload = match read_payload(&parts.headers, body, format, state.max_bytes).await {
        Ok(p) => p,
        Err(err) => {
            state.ingest.refuse(transport, Some(&tenant), &err);
            return error_response(&err, format);
        }
    };
    // `export` counts its own refusals.
    match state.ingest.export(tenant, transport, payload).await {
        Ok(outcome) => success_response(outcome, format),
        Err(err) => error_response(&err, format),
    }
}

/// Reads, decompresses and (for JSON) transcodes the body to protobuf.
async fn read_payload(
    headers: &HeaderMap,
    body: Body,
    format: Format,
    limit: usize,
) -> Result<Bytes, ReceiveError> {
    let encoding = Encoding::parse(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ReceiveError::TooLarge { limit });
    }
    let raw = read_body(body, limit).await?;
    // A compressed body's cost is its decompressed size, up to `limit`,
    // whatever its own length: any compressed body over a few KiB goes to
    // the blocking pool, as does a large plain one.
    let cost = if encoding == Encoding::Identity {
        raw.len()
    } else {
        raw.len().saturating_mul(64)
    };
    super::ingest::off_worker(cost, move || {
        let decoded = decompress(raw, encoding, limit)?;
        match format {
            Format::Protobuf => Ok(decoded),
            Format::Json => json_to_protobuf(&decoded),
        }
    })
    .await
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ReceiveError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ReceiveError::TooLarge { limit })
        }
        Err(e) => Err(ReceiveError::Decode(format!("reading request body: {e}"))),
    }
}

fn success_response(outcome: Outcome, format: Format) -> Response {
    let partial_success = (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
        error_message: outcome.message,
    });
    let response = ExportTraceServiceResponse { partial_success };
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => json_response(&response),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// OTLP/JSON of the response: int64 as a decimal string, lowerCamelCase.
fn json_response(response: &ExportTraceServiceResponse) -> Vec<u8> {
    let value = match &response.partial_success {
        None => serde_json::json!({}),
        Some(p) => serde_json::json!({
            "partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }
        }),
    };
    value.to_string().into_bytes()
}

/// A `google.rpc.Status` body with the status code OTLP/HTTP prescribes.
fn error_response(err: &ReceiveError, format: Format) -> Response {
    let status = tonic_types::Status {
        code: err.grpc_code() as i32,
        message: err.to_string(),
        details: vec![],
    };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::json!({"code": status.code, "message": status.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = (
        err.http_status(),
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response();
    if let Some(after) = err.retry_after() {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}
