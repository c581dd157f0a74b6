//! `type: github` in a source (GitHub): its keys, what is known of the
//! system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{GitHub, GitHubSettings, SYSTEM};
use crate::config::BuildContext;
use crate::http::Auth;
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{Connector, Result};

/// GitHub in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "a fine-grained token with Metadata, Contents, Pull requests, Deployments and Issues: read-only",
    oauth: TokenEndpoint::Public {
        token_url: "https://github.com/login/oauth/access_token",
        client_auth: ClientAuth::Body,
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: github`: GitHub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Token (fine-grained, read-only).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// `owner/name`.
    pub repositories: Vec<String>,
    /// Branch for commits (default: the default branch).
    #[serde(default)]
    pub branch: Option<String>,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn webhook(&self) -> Option<Source> {
        Some(Source::GitHub)
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(GitHub::with_auth(
            GitHubSettings {
                name: ctx.name(),
                base_url: ctx.base("https://api.github.com"),
                repositories: self.repositories.clone(),
                branch: self.branch.clone(),
                max_commit_details: 100,
            },
            ctx.auth(self.token.as_ref(), None, &Auth::Bearer)?,
            ctx.policy(),
        )?))
    }
}
