//! Errors of the shared server plumbing, by who is at fault.

/// Errors setting a listener up (the operator's or the environment's fault).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A TLS file is missing or unparsable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Missing, malformed or unknown credentials (the client's fault); the
/// message says which, never the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unauthenticated: {0}")]
pub struct AuthError(pub &'static str);
