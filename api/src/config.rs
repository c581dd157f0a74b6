//! `exporters.api`: the HTTP API listener.

use std::net::SocketAddr;

use causeway_server::config::{Problem, TlsConfig, socket_addr};
use serde::Deserialize;

/// `exporters.api`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address.
    #[serde(default = "default_endpoint", deserialize_with = "socket_addr")]
    pub endpoint: SocketAddr,
    /// TLS; plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Where people reach the dashboard (behind a proxy, say); links in
    /// notifications point here.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            endpoint: default_endpoint(),
            tls: None,
            public_url: None,
        }
    }
}

impl ApiConfig {
    /// Appends the problems of this section.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        if let Some(tls) = &self.tls {
            tls.validate(&format!("{path}.tls"), problems);
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(Problem::new(
                format!("{path}.public_url"),
                "must start with http:// or https://",
            ));
        }
    }
}

/// The API's default port: next to OTLP's 4317/4318.
pub const DEFAULT_PORT: u16 = 4319;

fn default_endpoint() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}
