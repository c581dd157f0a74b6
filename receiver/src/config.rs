//! Typed configuration of the OTLP receiver, its queue and authentication.
//!
//! Shaped like the OpenTelemetry Collector's `otlp` receiver so that an SRE's
//! existing config reads the same:
//!
//! ```yaml
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size_mib: 64 }
//!       http: { endpoint: 127.0.0.1:4318, max_request_body_size: 67108864 }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use causeway_server::config::{Problem, TlsConfig, socket_addr};
use serde::{Deserialize, Deserializer};

/// `receivers.otlp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Which transports to serve. A transport listed with no settings runs
    /// with defaults; a transport not listed is off.
    pub protocols: ProtocolsConfig,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        Self {
            protocols: ProtocolsConfig {
                grpc: Some(GrpcConfig::default()),
                http: Some(HttpConfig::default()),
            },
        }
    }
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolsConfig {
    /// OTLP/gRPC.
    #[serde(default, deserialize_with = "null_means_default")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP.
    #[serde(default, deserialize_with = "null_means_default")]
    pub http: Option<HttpConfig>,
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Listen address.
    #[serde(default = "default_grpc_endpoint", deserialize_with = "socket_addr")]
    pub endpoint: SocketAddr,
    /// Largest request accepted, after decompression, in MiB.
    #[serde(default = "default_max_mib")]
    pub max_recv_msg_size_mib: u32,
    /// HTTP/2 streams a client may have open on one connection.
    #[serde(default = "default_max_streams")]
    pub max_concurrent_streams: u32,
    /// TLS; plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            endpoint: default_grpc_endpoint(),
            max_recv_msg_size_mib: default_max_mib(),
            max_concurrent_streams: default_max_streams(),
            tls: None,
        }
    }
}

impl GrpcConfig {
    /// The size limit in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_recv_msg_size_mib as usize * 1024 * 1024
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address.
    #[serde(default = "default_http_endpoint", deserialize_with = "socket_addr")]
    pub endpoint: SocketAddr,
    /// Largest body accepted, after decompression, in bytes.
    #[serde(default = "default_max_body")]
    pub max_request_body_size: usize,
    /// TLS; plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            endpoint: default_http_endpoint(),
            max_request_body_size: default_max_body(),
            tls: None,
        }
    }
}

/// `processors.queue`: the bounded queue between receiver and processing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Batches (export requests) the queue holds.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Decoded bytes the queue holds, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_limit_mib: u32,
    /// Share of `memory_limit_mib` one tenant may hold when several tenants
    /// are configured, so a flood from one does not throttle the others.
    #[serde(default = "default_tenant_share")]
    pub max_tenant_share: f64,
    /// How long a request waits for room before it is throttled.
    #[serde(default = "default_enqueue_timeout", with = "humantime_serde")]
    pub enqueue_timeout: Duration,
    /// The `Retry-After` (HTTP) / `RetryInfo` (gRPC) sent when throttling.
    #[serde(default = "default_retry_after", with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            memory_limit_mib: default_memory_mib(),
            max_tenant_share: default_tenant_share(),
            enqueue_timeout: default_enqueue_timeout(),
            retry_after: default_retry_after(),
        }
    }
}

impl QueueConfig {
    /// Appends the problems of this section.
    pub fn validate(&self, path: &str, largest_request: usize, problems: &mut Vec<Problem>) {
        if self.capacity == 0 {
            problems.push(Problem::new(
                format!("{path}.capacity"),
                "must be at least 1",
            ));
        }
        if self.memory_limit_mib == 0 || self.memory_limit_mib > 1 << 20 {
            problems.push(Problem::new(
                format!("{path}.memory_limit_mib"),
                "must be between 1 and 1048576",
            ));
        } else if (self.memory_limit_mib as usize) * 1024 * 1024 < largest_request {
            problems.push(Problem::new(
                format!("{path}.memory_limit_mib"),
                format!(
                    "is smaller than the largest request a receiver accepts ({} MiB): such a request could never be queued",
                    largest_request / (1024 * 1024)
                ),
            ));
        }
        if !(self.max_tenant_share > 0.0 && self.max_tenant_share <= 1.0) {
            problems.push(Problem::new(
                format!("{path}.max_tenant_share"),
                "must be in (0, 1]",
            ));
        }
        if self.retry_after.is_zero() {
            problems.push(Problem::new(
                format!("{path}.retry_after"),
                "must be positive",
            ));
        }
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_limit_mib as usize * 1024 * 1024
    }
}

impl OtlpReceiverConfig {
    /// Appends the problems of this section.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            problems.push(Problem::new(
                format!("{path}.protocols"),
                "enables no protocol: list grpc, http or both",
            ));
        }
        if let Some(g) = &p.grpc {
            if g.max_recv_msg_size_mib == 0 || g.max_recv_msg_size_mib > 4096 {
                problems.push(Problem::new(
                    format!("{path}.protocols.grpc.max_recv_msg_size_mib"),
                    "must be between 1 and 4096",
                ));
            }
            if g.max_concurrent_streams == 0 {
                problems.push(Problem::new(
                    format!("{path}.protocols.grpc.max_concurrent_streams"),
                    "must be at least 1",
                ));
            }
            if let Some(tls) = &g.tls {
                tls.validate(&format!("{path}.protocols.grpc.tls"), problems);
            }
        }
        if let Some(h) = &p.http {
            if h.max_request_body_size < 1024 {
                problems.push(Problem::new(
                    format!("{path}.protocols.http.max_request_body_size"),
                    "must be at least 1024 bytes",
                ));
            }
            if let Some(tls) = &h.tls {
                tls.validate(&format!("{path}.protocols.http.tls"), problems);
            }
        }
    }

    /// The largest request any enabled transport accepts, in bytes.
    pub fn largest_request(&self) -> usize {
        let g = self
            .protocols
            .grpc
            .as_ref()
            .map_or(0, GrpcConfig::max_bytes);
        let h = self
            .protocols
            .http
            .as_ref()
            .map_or(0, |h| h.max_request_body_size);
        g.max(h)
    }
}

fn default_grpc_endpoint() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4317))
}
fn default_http_endpoint() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4318))
}
fn default_max_mib() -> u32 {
    64
}
fn default_max_body() -> usize {
    64 * 1024 * 1024
}
fn default_max_streams() -> u32 {
    128
}
fn default_capacity() -> usize {
    1024
}
fn default_memory_mib() -> u32 {
    256
}
fn default_tenant_share() -> f64 {
    0.5
}
fn default_enqueue_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_retry_after() -> Duration {
    Duration::from_secs(1)
}

/// `grpc:` with no value (YAML null) means "on, with defaults", as in the
/// Collector.
fn null_means_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}
