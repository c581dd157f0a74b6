//! Errors of the connectors, grouped by who is at fault. None of them
//! carries a credential: URLs are shown without their query string, and
//! response bodies only as a short excerpt.

/// What can go wrong reading a source system.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong (the operator's fault).
    #[error("{connector}: configuration: {message}")]
    Config {
        /// Connector instance.
        connector: String,
        /// What is wrong.
        message: String,
    },
    /// A credential is missing or cannot be read (the operator's fault).
    #[error("credential {name}: {message}")]
    Credential {
        /// Which credential (its reference, never its value).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The system refused the credentials (401, or 403 without a rate
    /// limit): wrong token, expired, or missing a read scope.
    #[error(
        "{system}: credentials refused ({status}) at {url}: {message}; a read-only credential needs {}",
        crate::read_scopes(.system)
    )]
    Unauthorized {
        /// Source system.
        system: &'static str,
        /// HTTP status.
        status: u16,
        /// URL without its query.
        url: String,
        /// The system's own words, shortened.
        message: String,
    },
    /// The system answered something this connector cannot read: an
    /// unexpected status, invalid or truncated JSON, a missing field. The
    /// cursor stays where it was.
    #[error("{system}: unexpected answer from {url}: {message}")]
    Upstream {
        /// Source system.
        system: &'static str,
        /// URL without its query.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// The OAuth token endpoint refused to issue an access token (a
    /// revoked or expired refresh token, a wrong client secret) or answered
    /// something else than a token. The message holds only the endpoint's
    /// `error` and `error_description`, never a token.
    #[error("{system}: OAuth token for {connector} refused at {url}: {message}")]
    OAuth {
        /// Source system.
        system: &'static str,
        /// Connector instance.
        connector: String,
        /// Token URL without its query.
        url: String,
        /// The endpoint's words.
        message: String,
    },
    /// The system pointed at a URL outside the origin it was configured
    /// with (a next-page link, a redirect): not followed, since the
    /// request would carry the credential there.
    #[error("{system}: not following {url}: outside the configured origin {origin}")]
    ForeignUrl {
        /// Source system.
        system: &'static str,
        /// URL without its query.
        url: String,
        /// The configured origin (`https://api.github.com`).
        origin: String,
    },
    /// Still rate-limited after the allowed waits; the next sync retries.
    #[error("{system}: rate limited at {url}; retry in {retry_after_s} s")]
    RateLimited {
        /// Source system.
        system: &'static str,
        /// URL without its query.
        url: String,
        /// What the system asked for, seconds.
        retry_after_s: u64,
    },
    /// The network or TLS failed (retried first).
    #[error("{system}: cannot reach {url}: {message}")]
    Transport {
        /// Source system.
        system: &'static str,
        /// URL without its query.
        url: String,
        /// The transport's error.
        message: String,
    },
    /// A request that could change the source system was refused before
    /// it was sent: connectors are read-only by construction.
    #[error("read-only: refusing {method} {url}")]
    ReadOnly {
        /// The refused method.
        method: String,
        /// URL without its query.
        url: String,
    },
    /// Sealing or unsealing a credential failed (wrong key, tampering).
    #[error("sealed credentials: {0}")]
    Seal(String),
    /// The signal store failed.
    #[error("signal store: {0}")]
    Store(#[from] causeway_store::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `url` without query and fragment: what errors and logs may show.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// At most 200 characters of a response body, on one line.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    causeway_model::signal::excerpt(&one_line, 200)
}
