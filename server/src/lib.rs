//! Server plumbing every listener of causeway shares, below the receiver
//! and the API: binding (TLS, HTTP/1 and HTTP/2, graceful drain), API-key
//! authentication, listener settings and their validation.
//!
//! Entry points: [`net::Listener::bind`] and [`net::serve`] for a
//! listener, [`Gate`] for the tenant of a request (rate limits, API-key
//! authentication, the audit of failures).
//!
//! ```text
//! config (TlsConfig, ApiKeyConfig) ─> Listener::bind ─> serve(router) ─> receiver / API handlers
//!                                     Gate: Limits ─ Authenticator ─> TenantId (or 401 / 429)
//! ```

pub mod auth;
pub mod config;
pub mod error;
pub mod gate;
pub mod grpc;
pub mod limits;
pub mod net;

pub use auth::{Authenticator, key_digest_hex, key_fingerprint};
pub use config::Problem;
pub use error::{AuthError, SetupError};
pub use gate::{Denied, Gate};
pub use limits::{Class, ClientAddr, Limited, Limits, LimitsConfig};
