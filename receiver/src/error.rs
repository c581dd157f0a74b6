//! Errors of the receiver, grouped by who is at fault, and how each maps to
//! the status codes the OTLP specification prescribes.

use std::time::Duration;

use crate::otlp::body::Encoding;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    // --- the client's fault ---
    /// Missing or unknown credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The body is not a valid OTLP request.
    #[error("{0}")]
    Decode(String),
    /// The compressed body could not be decompressed.
    #[error("cannot decompress {encoding:?} body: {reason}")]
    Decompress {
        /// The declared encoding.
        encoding: Encoding,
        /// What the decompressor said.
        reason: String,
    },
    /// The body, after decompression, is over the size limit.
    #[error("request is larger than the limit of {limit} bytes (after decompression)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `Content-Type` is neither protobuf nor JSON.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// `Content-Encoding` is not one we decode.
    #[error("unsupported content encoding {0:?}: use gzip, zstd, deflate or none")]
    UnsupportedEncoding(String),

    /// The client, or its tenant, is over a rate limit, or its address is
    /// blocked after failed authentications.
    #[error("{0}")]
    RateLimited(causeway_server::Limited),

    // --- the server's state ---
    /// This tenant holds its whole share of the queue.
    #[error("tenant is over its share of the ingest queue; retry after {retry_after:?}")]
    TenantThrottled {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The queue is full.
    #[error("ingest queue is full; retry after {retry_after:?}")]
    Overloaded {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// A forwarding queue set to refuse when full has no room for the
    /// request (its downstream is slower than the load, or down).
    #[error("forwarding queue {exporter:?} is full; retry after {retry_after:?}")]
    ForwardQueueFull {
        /// The exporter's name.
        exporter: String,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The write-ahead log cannot take the request (full, or the disk
    /// failed): it is refused rather than acknowledged unsaved.
    #[error("{reason}; retry after {retry_after:?}")]
    LogUnavailable {
        /// What the log said.
        reason: String,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The server is shutting down and accepts nothing more.
    #[error("shutting down; retry against another instance or after restart")]
    ShuttingDown {
        /// Suggested wait.
        retry_after: Duration,
    },
}

impl ReceiveError {
    /// The metric label of this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Decode(_) | Self::Decompress { .. } => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => {
                "unsupported_media_type"
            }
            Self::RateLimited(_) => "rate_limited",
            Self::TenantThrottled { .. } => "tenant_throttled",
            Self::Overloaded { .. } => "overloaded",
            Self::ForwardQueueFull { .. } => "forward_queue_full",
            Self::LogUnavailable { .. } => "wal_unavailable",
            Self::ShuttingDown { .. } => "shutting_down",
        }
    }

    /// The HTTP status the OTLP/HTTP specification gives this error.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::Unauthenticated(_) => S::UNAUTHORIZED,
            Self::Decode(_) | Self::Decompress { .. } => S::BAD_REQUEST,
            Self::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => {
                S::UNSUPPORTED_MEDIA_TYPE
            }
            Self::TenantThrottled { .. } | Self::RateLimited(_) => S::TOO_MANY_REQUESTS,
            Self::Overloaded { .. }
            | Self::ForwardQueueFull { .. }
            | Self::LogUnavailable { .. }
            | Self::ShuttingDown { .. } => S::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC code the OTLP/gRPC specification gives this error.
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            Self::Unauthenticated(_) => C::Unauthenticated,
            Self::Decode(_)
            | Self::Decompress { .. }
            | Self::UnsupportedMediaType(_)
            | Self::UnsupportedEncoding(_) => C::InvalidArgument,
            // OTLP/gRPC: a rate limit is RESOURCE_EXHAUSTED, retryable
            // because it carries RetryInfo.
            Self::TooLarge { .. } | Self::RateLimited(_) => C::ResourceExhausted,
            Self::TenantThrottled { .. }
            | Self::Overloaded { .. }
            | Self::ForwardQueueFull { .. }
            | Self::LogUnavailable { .. }
            | Self::ShuttingDown { .. } => C::Unavailable,
        }
    }

    /// When a retry makes sense, after how long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TenantThrottled { retry_after }
            | Self::Overloaded { retry_after }
            | Self::ForwardQueueFull { retry_after, .. }
            | Self::LogUnavailable { retry_after, .. }
            | Self::ShuttingDown { retry_after } => Some(*retry_after),
            Self::RateLimited(l) => Some(l.retry_after),
            _ => None,
        }
    }
}

impl From<causeway_server::AuthError> for ReceiveError {
    fn from(e: causeway_server::AuthError) -> Self {
        Self::Unauthenticated(e.0)
    }
}

impl From<causeway_server::Denied> for ReceiveError {
    fn from(e: causeway_server::Denied) -> Self {
        match e {
            causeway_server::Denied::Unauthenticated(a) => a.into(),
            causeway_server::Denied::Limited(l) => Self::RateLimited(l),
        }
    }
}
