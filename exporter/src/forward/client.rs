//! Sends queued OTLP requests to one downstream endpoint over gRPC or
//! OTLP/HTTP, and classifies failures the way the OTLP specification says
//! clients must: throttling and unavailability are retried, a request the
//! server calls malformed is not.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use causeway_server::grpc::BytesDecoder;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder};
use tonic::{Code, Status};

use super::config::{Compression, ForwardConfig, HeaderValueRef, Protocol};
use causeway_store::queue::Kind;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (unreachable, throttled, overloaded).
    #[error("{message}")]
    Retryable {
        /// What happened.
        message: String,
        /// What the server asked for (`Retry-After`, gRPC `RetryInfo`).
        retry_after: Option<Duration>,
    },
    /// The server refused this request for good; sending it again would
    /// fail the same way.
    #[error("{0}")]
    Permanent(String),
}

/// Why a client could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("exporters.otlp {name}: {message}")]
pub struct BuildError {
    name: String,
    message: String,
}

/// A client for one endpoint.
#[derive(Clone)]
pub struct OtlpClient {
    inner: Inner,
    headers: Arc<HeaderMap>,
    timeout: Duration,
    gzip: bool,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers hold credentials: names only.
        f.debug_struct("OtlpClient")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Inner {
    Grpc {
        client: Client<Connector, tonic::body::Body>,
        origin: Uri,
    },
    Http {
        client: Client<Connector, Full<Bytes>>,
        traces: Uri,
        logs: Uri,
    },
}

impl OtlpClient {
    /// Builds the client: resolves secret headers, loads TLS roots.
    pub fn new(config: &ForwardConfig) -> Result<Self, BuildError> {
        let fail = |message: String| BuildError {
            name: config.name.clone(),
            message,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| fail(format!("{name:?} is not a valid header name")))?;
            let mut value = match value {
                HeaderValueRef::Plain(v) => HeaderValue::from_str(v)
                    .map_err(|_| fail(format!("header {name} is not a valid header value")))?,
                HeaderValueRef::Secret(r) => {
                    let secret = r
                        .resolve()
                        .map_err(|e| fail(format!("header {name}: {e}")))?;
                    HeaderValue::from_str(secret.expose()).map_err(|_| {
                        fail(format!(
                            "header {name}: {} is not a valid header value",
                            r.describe()
                        ))
                    })?
                }
            };
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let tls = tls_config(config).map_err(fail)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout.min(Duration::from_secs(10))));
        let base = config.endpoint.trim_end_matches('/').to_owned();
        let inner = match config.protocol {
            Protocol::Grpc => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http2()
                    .wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .http2_only(true)
                    .build(connector);
                let origin = base
                    .parse::<Uri>()
                    .map_err(|e| fail(format!("endpoint: {e}")))?;
                Inner::Grpc { client, origin }
            }
            Protocol::Http => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_all_versions()
                    .wrap_connector(http);
                let client = Client::builder(TokioExecutor::new()).build(connector);
                let url = |path: &str| {
                    format!("{base}{path}")
                        .parse::<Uri>()
                        .map_err(|e| fail(format!("endpoint: {e}")))
                };
                Inner::Http {
                    client,
                    traces: url("/v1/traces")?,
                    logs: url("/v1/logs")?,
                }
            }
        };
        Ok(Self {
            inner,
            headers: Arc::new(headers),
            timeout: config.timeout,
            gzip: config.compression == Compression::Gzip,
        })
    }

    /// Sends one export request (protobuf bytes of `kind`).
    pub async fn send(&self, kind: Kind, payload: Bytes) -> Result<(), SendError> {
        let call = async {
            match &self.inner {
                Inner::Grpc { client, origin } => {
                    self.send_grpc(client.clone(), origin.clone(), kind, payload)
                        .await
                }
                Inner::Http {
                    client,
                    traces,
                    logs,
                } => {
                    let uri = match kind {
                        // Forwarding queues hold no write-ahead records;
                        // the sender untags tenant records before this.
                        Kind::Traces | Kind::TenantTraces | Kind::Accepted => traces,
                        Kind::Logs | Kind::TenantLogs => logs,
                    };
                    self.send_http(client, uri, payload).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Retryable {
                message: format!("no answer within {:?}", self.timeout),
                retry_after: None,
            }),
        }
    }

    async fn send_grpc(
        &self,
        client: Client<Connector, tonic::body::Body>,
        origin: Uri,
        kind: Kind,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let mut grpc = tonic::client::Grpc::with_origin(client, origin);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc = grpc.accept_compressed(CompressionEncoding::Gzip);
        grpc.ready().await.map_err(|e| SendError::Retryable {
            message: format!("connecting: {e}"),
            retry_after: None,
        })?;
        let mut request = tonic::Request::new(payload);
        for (name, value) in self.headers.iter() {
            if let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes())
                && let Ok(v) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
            {
                request.metadata_mut().insert(key, v);
            }
        }
        let path = PathAndQuery::from_static(match kind {
            Kind::Traces | Kind::TenantTraces | Kind::Accepted => {
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            }
            Kind::Logs | Kind::TenantLogs => {
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
            }
        });
        match grpc.unary(request, path, RawCodec).await {
            Ok(_) => Ok(()),
            Err(status) => Err(classify_grpc(&status)),
        }
    }

    async fn send_http(
        &self,
        client: &Client<Connector, Full<Bytes>>,
        uri: &Uri,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let mut builder = Request::post(uri.clone()).header(CONTENT_TYPE, "application/x-protobuf");
        let body = if self.gzip {
            builder = builder.header(CONTENT_ENCODING, "gzip");
            gzip(&payload).map_err(|e| SendError::Permanent(format!("compressing: {e}")))?
        } else {
            payload
        };
        let mut request = builder
            .body(Full::new(body))
            .map_err(|e| SendError::Permanent(format!("building the request: {e}")))?;
        for (name, value) in self.headers.iter() {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let response = client
            .request(request)
            .await
            .map_err(|e| SendError::Retryable {
                message: format!("sending: {}", chain(&e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the body so the connection can be reused; its content is only
        // for the error message.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let message = format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        Err(classify_http(status, message, retry_after))
    }
}

/// OTLP/HTTP: 429, 502, 503 and 504 are retryable; other failures are not.
fn classify_http(status: StatusCode, message: String, retry_after: Option<Duration>) -> SendError {
    match status.as_u16() {
        429 | 502 | 503 | 504 => SendError::Retryable {
            message,
            retry_after,
        },
        _ => SendError::Permanent(message),
    }
}

/// OTLP/gRPC's retryable codes, plus failures to reach the server at all
/// (which the client reports as `Unknown` with the transport error as its
/// source).
fn classify_grpc(status: &Status) -> SendError {
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    let transport = status.code() == Code::Unknown && std::error::Error::source(status).is_some();
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::ResourceExhausted => SendError::Retryable {
            message,
            retry_after: retry_info(status),
        },
        _ if transport => SendError::Retryable {
            message,
            retry_after: None,
        },
        _ => SendError::Permanent(message),
    }
}

/// The delay of a `google.rpc.RetryInfo` in the status details, if any.
fn retry_info(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt as _;
    let info = status.get_details_retry_info()?;
    info.retry_delay
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn gzip(data: &[u8]) -> std::io::Result<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    Ok(Bytes::from(enc.finish()?))
}

/// TLS settings: the system's roots, or the configured CA file's.
fn tls_config(config: &ForwardConfig) -> Result<rustls::ClientConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = config.tls.as_ref().and_then(|t| t.ca_file.as_ref());
    let builder = rustls::ClientConfig::builder();
    let mut tls = match ca {
        Some(path) => {
            use rustls_pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "tls.ca_file {} holds no certificate",
                    path.display()
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("system trust store: {e}"))?
                .with_no_client_auth()
        }
    };
    tls.alpn_protocols.clear();
    Ok(tls)
}

/// Sends the stored protobuf bytes as they are and takes the response as
/// bytes (its `partial_success` is not acted on: a downstream that rejects
/// part of a request would reject it again).
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

#[derive(Debug)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_follow_the_otlp_retry_rules() {
        for code in [429u16, 502, 503, 504] {
            let s = StatusCode::from_u16(code).expect("status");
            assert!(matches!(
                classify_http(s, String::new(), None),
                SendError::Retryable { .. }
            ));
        }
        for code in [400u16, 401, 403, 404, 413, 500] {
            let s = StatusCode::from_u16(code).expect("status");
            assert!(matches!(
                classify_http(s, String::new(), None),
                SendError::Permanent(_)
            ));
        }
    }

    #[test]
    fn grpc_codes_follow_the_otlp_retry_rules() {
        assert!(matches!(
            classify_grpc(&Status::unavailable("down")),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify_grpc(&Status::invalid_argument("bad")),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            classify_grpc(&Status::unauthenticated("who")),
            SendError::Permanent(_)
        ));
    }
}
