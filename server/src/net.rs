//! Listeners: TCP with optional TLS (rustls), HTTP/1.1 and HTTP/2 (including
//! h2c, as gRPC clients use it), graceful shutdown.
//!
//! One accept loop serves the gRPC and HTTP receivers and the API alike, so
//! TLS, timeouts and shutdown behave the same on every port. On shutdown the
//! loop stops accepting, asks every connection to finish (HTTP/2 GOAWAY,
//! HTTP/1 close after the in-flight response) and waits for in-flight
//! requests up to a grace period: a request is acknowledged only after its
//! data is queued, so those that finish are not lost and those cut off were
//! never acknowledged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{TlsConfig, TlsVersion};
use crate::error::SetupError;
use crate::limits::config::{ConnectionLimits, LimitsConfig};
use crate::limits::{ClientAddr, ConnectionCounts};

/// How long a client has to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads a rustls server config from PEM files.
pub fn load_tls(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, SetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            SetupError::Tls(format!(
                "cannot read certificates from {}: {e}",
                cfg.cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(SetupError::Tls(format!(
            "{} holds no PEM certificate",
            cfg.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| {
        SetupError::Tls(format!(
            "cannot read a private key from {}: {e}",
            cfg.key_file.display()
        ))
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            SetupError::Tls(format!(
                "{} and {} do not make a usable certificate: {e}",
                cfg.cert_file.display(),
                cfg.key_file.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Listener {
    /// Binds `addr`, with TLS when `tls` is given.
    pub async fn bind(addr: SocketAddr, tls: Option<&TlsConfig>) -> Result<Self, SetupError> {
        let tls = tls.map(load_tls).transpose()?.map(TlsAcceptor::from);
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| SetupError::Bind { addr, source })?;
        let addr = tcp
            .local_addr()
            .map_err(|source| SetupError::Bind { addr, source })?;
        Ok(Self { tcp, tls, addr })
    }

    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// True when connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Protocol settings of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// How long to wait for in-flight requests on shutdown.
    pub grace: Duration,
    /// Open connections, in all and per client address.
    pub connections: ConnectionLimits,
    /// How long a client has to send request headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long a request body may stay idle.
    pub body_idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::new(&LimitsConfig::default(), Duration::from_secs(30))
    }
}

impl ServeOptions {
    /// Options from the `limits` section, draining for `grace` on shutdown.
    pub fn new(limits: &LimitsConfig, grace: Duration) -> Self {
        Self {
            max_concurrent_streams: 128,
            grace,
            connections: limits.connections,
            header_read_timeout: limits.header_read_timeout,
            body_idle_timeout: limits.body_idle_timeout,
        }
    }
}

/// A request as handlers see it: the body gives up after
/// [`ServeOptions::body_idle_timeout`] without data, and the extensions
/// hold the [`ClientAddr`].
pub type ServedRequest = http::Request<tower_http::timeout::TimeoutBody<Incoming>>;

/// Serves `service` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve<S, B>(
    listener: Listener,
    service: S,
    options: ServeOptions,
    shutdown: CancellationToken,
) where
    S: tower::Service<ServedRequest, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_concurrent_streams)
        .initial_stream_window_size(1024 * 1024)
        .initial_connection_window_size(4 * 1024 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(60)));
    let mut connections = JoinSet::new();
    let per_client = Arc::new(ConnectionCounts::default());
    let Listener { tcp, tls, addr } = listener;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            r = tcp.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(%addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over a cap the connection is closed at once: cheaper for both
        // sides than a request answered 503, and the client's pool retries.
        if connections.len() >= options.connections.max {
            tracing::debug!(%addr, %peer, open = connections.len(), "connection limit reached; closing");
            continue;
        }
        let Some(slot) = per_client.try_open(peer.ip(), options.connections.per_client) else {
            tracing::debug!(%addr, %peer, "per-client connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let body_timeout = options.body_idle_timeout;
        let service =
            tower::ServiceExt::map_request(service.clone(), move |req: http::Request<Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ClientAddr(peer));
                http::Request::from_parts(
                    parts,
                    tower_http::timeout::TimeoutBody::new(body_timeout, body),
                )
            });
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(builder, TokioIo::new(stream), service, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(builder, TokioIo::new(tls_stream), service, shutdown)
                                .await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(tcp);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.grace, drain).await.is_err() {
        tracing::warn!(%addr, grace = ?options.grace, open = connections.len(),
            "connections still open after the grace period; closing them");
        // Their requests were not acknowledged, so closing loses nothing.
        connections.shutdown().await;
    }
}

async fn serve_connection<I, S, B>(
    builder: auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: S,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients hanging up mid-request are routine; not worth a warning.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Whether binding `addr` exposes the port beyond this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
