//! `type: gitlab` in a source (GitLab): its keys, what is known of the
//! system by name alone, and how a source of it becomes a connector.

use reqwest::header::HeaderName;
use serde::Deserialize;

use super::{GitLab, GitLabSettings, SYSTEM};
use crate::config::BuildContext;
use crate::http::Auth;
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{Connector, Result};

/// GitLab in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "the read_api scope",
    oauth: TokenEndpoint::Public {
        token_url: "https://gitlab.com/oauth/token",
        client_auth: ClientAuth::Body,
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: gitlab`: GitLab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `read_api` token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Project paths or ids.
    pub projects: Vec<String>,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn webhook(&self) -> Option<Source> {
        Some(Source::GitLab)
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(GitLab::with_auth(
            GitLabSettings {
                name: ctx.name(),
                base_url: ctx.base("https://gitlab.com/api/v4"),
                projects: self.projects.clone(),
                max_commit_details: 100,
            },
            ctx.auth(self.token.as_ref(), None, &|t| Auth::Header {
                name: HeaderName::from_static("private-token"),
                value: t,
            })?,
            ctx.policy(),
        )?))
    }
}
