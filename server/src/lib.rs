//! Server plumbing every listener of causeway shares, below the receiver
//! and the API: binding (TLS, HTTP/1 and HTTP/2, graceful drain), API-key
//! authentication, listener settings and their validation.
//!
//! Entry points: [`net::Listener::bind`] and [`net::serve`] for a
//! listener, [`Authenticator`] for the tenant of a request.
//!
//! ```text
//! config (TlsConfig, ApiKeyConfig) ─> Listener::bind ─> serve(router) ─> receiver / API handlers
//!                                     Authenticator ─> TenantId (or AuthError: 401)
//! ```

pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod net;

pub use auth::{Authenticator, key_digest_hex};
pub use config::Problem;
pub use error::{AuthError, SetupError};
