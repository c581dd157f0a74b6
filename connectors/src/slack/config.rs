//! `type: slack` in a source (Slack): its keys, what is known of the system
//! by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{SYSTEM, Slack, SlackSettings};
use crate::config::BuildContext;
use crate::http::Auth;
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{Connector, Result};

/// Slack in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "channels:history, groups:history and channels:read",
    oauth: TokenEndpoint::Public {
        token_url: "https://slack.com/api/oauth.v2.access",
        client_auth: ClientAuth::Body,
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: slack`: Slack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bot token (`xoxb-`).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Channel ids.
    pub channels: Vec<String>,
    /// Workspace URL for links (`https://acme.slack.com`).
    pub workspace_url: String,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn webhook(&self) -> Option<Source> {
        Some(Source::Slack)
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(Slack::with_auth(
            SlackSettings {
                name: ctx.name(),
                base_url: ctx.base("https://slack.com/api"),
                workspace_url: self.workspace_url.trim_end_matches('/').to_owned(),
                channels: self.channels.clone(),
            },
            ctx.auth(self.token.as_ref(), None, &Auth::Bearer)?,
            ctx.policy(),
        )?))
    }
}
