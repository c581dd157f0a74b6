//! `type: jira` in a source (Jira Cloud): its keys, what is known of the
//! system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{Jira, JiraSettings, SYSTEM};
use crate::config::{BuildContext, basic_or_bearer};
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{Connector, Result};

/// Jira Cloud in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "read:jira-work (an API token of a user who can browse the projects, or OAuth)",
    oauth: TokenEndpoint::Global {
        token_url: "https://auth.atlassian.com/oauth/token",
        client_auth: ClientAuth::Body,
        body: BodyFormat::Json,
    },
    parse: parse::<Config>,
};

/// `type: jira`: Jira Cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://SITE.atlassian.net`.
    pub site: String,
    /// E-mail of the API token's user; absent for OAuth (Bearer).
    #[serde(default)]
    pub email: Option<String>,
    /// API token or OAuth access token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Which issues (`project = OPS`).
    #[serde(default)]
    pub jql: String,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn webhook(&self) -> Option<Source> {
        Some(Source::Jira)
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let site = self.site.trim_end_matches('/');
        Ok(Box::new(Jira::new(
            JiraSettings {
                name: ctx.name(),
                base_url: ctx.base(site),
                browse_url: site.to_owned(),
                jql: self.jql.clone(),
            },
            ctx.auth(
                self.token.as_ref(),
                None,
                &basic_or_bearer(self.email.clone()),
            )?,
            ctx.policy(),
        )?))
    }
}
