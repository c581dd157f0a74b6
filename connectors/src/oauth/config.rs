//! `oauth:` on a source: the grant, the token endpoint (each system's
//! default, or a configured one that must be https off this machine), and
//! the session settings resolved from it.

use serde::Deserialize;
use url::Url;

use super::SessionSettings;
use crate::error::{Error, Result, display_url};
use crate::secret::{Secret, SecretRef};
use causeway_model::TenantId;

/// `oauth:` on a source: how its access tokens are obtained.
///
/// ```yaml
/// - name: jira
///   tenant: acme
///   type: jira
///   site: https://api.atlassian.com/ex/jira/11223344-a1b2-3b33-c444-def123456789
///   oauth:
///     client_id: Tk3bS0...
///     client_secret: { env: JIRA_CLIENT_SECRET }
///     refresh_token: { env: JIRA_REFRESH_TOKEN }   # absent: client credentials
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The token endpoint; each system has a default except Azure DevOps
    /// (Entra's is per directory) and sources with a `base_url` override.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The OAuth app's client id (not a secret).
    pub client_id: String,
    /// The app's client secret; absent for public clients.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// The refresh token of the first authorization (the `refresh_token`
    /// grant); absent: the `client_credentials` grant.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
    /// `scope` to ask for (Entra: `499b84ac-1321-427f-aa17-267ca6975798/.default`).
    #[serde(default)]
    pub scope: Option<String>,
    /// How the client authenticates: `body` (client_id and client_secret
    /// as parameters) or `basic` (HTTP Basic, as Bitbucket asks).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// Request body: `form` (RFC 6749) or `json` (Atlassian, Zendesk).
    #[serde(default)]
    pub body: Option<BodyFormat>,
}

/// Where the client id and secret go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// In the request body.
    Body,
    /// `Authorization: Basic base64(client_id:client_secret)`.
    Basic,
}

/// The token request's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

/// A system's token endpoint and conventions, from its documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Token URL, if the system has a fixed one.
    pub token_url: Option<String>,
    /// Client authentication it expects.
    pub client_auth: ClientAuth,
    /// Body encoding it expects.
    pub body: BodyFormat,
}

/// Where a system's OAuth tokens come from unless `oauth.token_url` says
/// otherwise; each system names its own in its `config.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// No OAuth: a static token only (Pylon), or no credential at all.
    Unsupported,
    /// OAuth without a default endpoint: `oauth.token_url` is required
    /// (Entra's, for Azure DevOps, names the directory).
    Configured,
    /// The public service's endpoint. A source with a `base_url` is a
    /// self-hosted server (GitHub Enterprise, self-managed GitLab) with an
    /// endpoint of its own, so there this one would be wrong.
    Public {
        /// Token URL.
        token_url: &'static str,
        /// Client authentication it expects.
        client_auth: ClientAuth,
        /// Body encoding it expects.
        body: BodyFormat,
    },
    /// One endpoint whatever the API root: a Jira `base_url` is Atlassian's
    /// API gateway (`api.atlassian.com/ex/jira/…`), whose tokens still come
    /// from Atlassian.
    Global {
        /// Token URL.
        token_url: &'static str,
        /// Client authentication it expects.
        client_auth: ClientAuth,
        /// Body encoding it expects.
        body: BodyFormat,
    },
    /// On each customer's own host (Zendesk, ServiceNow, Salesforce):
    /// `path` after the source's root.
    OnHost {
        /// Path of the token endpoint on the host.
        path: &'static str,
        /// Body encoding it expects.
        body: BodyFormat,
    },
}

impl TokenEndpoint {
    /// Whether the system takes an `oauth` block.
    pub fn supported(self) -> bool {
        self != TokenEndpoint::Unsupported
    }

    /// The endpoint of a source whose own root is `host_url` (for
    /// [`TokenEndpoint::OnHost`]), with a `base_url` override or not.
    pub fn endpoint(self, host_url: Option<&str>, base_url_set: bool) -> Endpoint {
        match self {
            TokenEndpoint::Unsupported | TokenEndpoint::Configured => Endpoint {
                token_url: None,
                client_auth: ClientAuth::Body,
                body: BodyFormat::Form,
            },
            TokenEndpoint::Public {
                token_url,
                client_auth,
                body,
            } => Endpoint {
                token_url: (!base_url_set).then(|| token_url.to_owned()),
                client_auth,
                body,
            },
            TokenEndpoint::Global {
                token_url,
                client_auth,
                body,
            } => Endpoint {
                token_url: Some(token_url.to_owned()),
                client_auth,
                body,
            },
            TokenEndpoint::OnHost { path, body } => Endpoint {
                token_url: host_url.map(|h| format!("{}{path}", h.trim_end_matches('/'))),
                client_auth: ClientAuth::Body,
                body,
            },
        }
    }
}

/// The default token endpoint of `system`, given the source's own
/// settings (`site` for Zendesk's subdomain, ServiceNow's instance and
/// Salesforce's instance URL are passed as `host_url`).
pub fn default_endpoint(system: &str, host_url: Option<&str>) -> Endpoint {
    crate::registry::info(system)
        .map_or(TokenEndpoint::Unsupported, |s| s.oauth)
        .endpoint(host_url, false)
}

/// Problems with a token URL: not a URL, or plain HTTP to a host that is
/// not this machine (the request carries the client secret).
pub fn token_url_problem(url: &str) -> Option<String> {
    let Ok(u) = Url::parse(url) else {
        return Some(format!("{url:?} is not a URL"));
    };
    match u.scheme() {
        "https" => None,
        "http" if is_loopback(&u) => None,
        _ => Some(format!(
            "{}: the token endpoint must be https (http only to this machine)",
            display_url(&u)
        )),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Resolves an `oauth:` block into session settings.
pub fn settings(
    config: &OAuthConfig,
    system: &'static str,
    connector: &str,
    tenant: TenantId,
    default: Endpoint,
    resolve: &dyn Fn(&SecretRef) -> Result<Secret>,
) -> Result<SessionSettings> {
    let token_url = config
        .token_url
        .clone()
        .or(default.token_url)
        .ok_or_else(|| Error::Config {
            connector: connector.to_owned(),
            message: format!("oauth.token_url is required for {system} here"),
        })?;
    Ok(SessionSettings {
        system,
        connector: connector.to_owned(),
        tenant,
        token_url,
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.as_ref().map(resolve).transpose()?,
        refresh_token: config.refresh_token.as_ref().map(resolve).transpose()?,
        scope: config.scope.clone(),
        client_auth: config.client_auth.unwrap_or(default.client_auth),
        body: config.body.unwrap_or(default.body),
    })
}
