//! causeway's front door: the OTLP trace receiver.
//!
//! Entry point: [`OtlpReceiver`], bound from [`config::OtlpReceiverConfig`],
//! serving OTLP/gRPC and OTLP/HTTP (protobuf and JSON) into one [`Ingest`]
//! path that authenticates the tenant, validates the request without
//! building a struct per span, and queues it through [`Admission`].
//!
//! ```text
//!  :4317 gRPC ─┐
//!              ├─ Gate ─────────── size limit ─ decompress ─ wire scan ─ Admission ─> bounded queue
//!  :4318 HTTP ─┘   (401/429)        (413)        (400/415)   (partial)   (429/503)
//! ```
//!
//! Listeners (TLS, HTTP/1+2, graceful drain) and API-key authentication
//! come from `causeway-server`, shared with the API.

pub mod admission;
pub mod config;
pub mod error;
pub mod metrics;
pub mod otlp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use admission::Admission;
pub use causeway_server::SetupError;
pub use error::ReceiveError;
pub use metrics::ReceiverMetrics;
pub use otlp::ingest::{Ingest, Outcome, Tee, TeeFull};

use causeway_server::Gate;
use causeway_server::net::{self, Listener, ServeOptions};
use config::OtlpReceiverConfig;
use otlp::grpc::GrpcTraceService;

/// Component name, used in config and metrics.
pub const NAME: &str = "otlp";

/// The bound OTLP receiver.
#[derive(Debug)]
pub struct OtlpReceiver {
    grpc: Option<(Listener, GrpcTraceService, ServeOptions)>,
    http: Option<(Listener, axum::Router, ServeOptions)>,
}

impl OtlpReceiver {
    /// Binds the enabled transports' listeners.
    pub async fn bind(
        config: &OtlpReceiverConfig,
        ingest: Arc<Ingest>,
        gate: Gate,
        serve: ServeOptions,
    ) -> Result<Self, SetupError> {
        let grpc = match &config.protocols.grpc {
            Some(g) => {
                let listener = Listener::bind(g.endpoint, g.tls.as_ref()).await?;
                let service =
                    GrpcTraceService::new(Arc::clone(&ingest), gate.clone(), g.max_bytes());
                let options = ServeOptions {
                    max_concurrent_streams: g.max_concurrent_streams,
                    ..serve
                };
                Some((listener, service, options))
            }
            None => None,
        };
        let http = match &config.protocols.http {
            Some(h) => {
                let listener = Listener::bind(h.endpoint, h.tls.as_ref()).await?;
                let router =
                    otlp::http::router(Arc::clone(&ingest), gate.clone(), h.max_request_body_size);
                let options = serve;
                Some((listener, router, options))
            }
            None => None,
        };
        Ok(Self { grpc, http })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().map(|(l, _, _)| l.local_addr())
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(l, _, _)| l.local_addr())
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) {
        let grpc = async {
            if let Some((listener, service, options)) = self.grpc {
                tracing::info!(addr = %listener.local_addr(), tls = listener.is_tls(), "OTLP/gRPC receiver listening");
                net::serve(listener, service, options, shutdown.clone()).await;
            }
        };
        let http = async {
            if let Some((listener, router, options)) = self.http {
                tracing::info!(addr = %listener.local_addr(), tls = listener.is_tls(), "OTLP/HTTP receiver listening");
                net::serve(listener, router, options, shutdown.clone()).await;
            }
        };
        tokio::join!(grpc, http);
    }
}
