//! `type: linear` in a source (Linear): its keys, what is known of the
//! system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{Linear, LinearSettings, SYSTEM};
use crate::config::BuildContext;
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{Connector, Result};

/// Linear in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "the read scope",
    oauth: TokenEndpoint::Public {
        token_url: "https://api.linear.app/oauth/token",
        client_auth: ClientAuth::Body,
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: linear`: Linear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Personal API key, or an OAuth token with `oauth: true`.
    #[serde(default)]
    pub key: Option<SecretRef>,
    /// The key is an OAuth token.
    #[serde(default)]
    pub oauth: bool,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn webhook(&self) -> Option<Source> {
        Some(Source::Linear)
    }

    fn token(&self) -> Option<&SecretRef> {
        self.key.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let settings = LinearSettings {
            name: ctx.name(),
            url: ctx.base("https://api.linear.app/graphql"),
            oauth: self.oauth || ctx.has_oauth(),
        };
        // A personal key goes in `Authorization` bare, not as Bearer:
        // `Linear::new` knows how.
        Ok(match ctx.oauth_session(None)? {
            Some(a) => Box::new(Linear::with_auth(settings, a, ctx.policy())?),
            None => Box::new(Linear::new(
                settings,
                ctx.credential(self.key.as_ref())?,
                ctx.policy(),
            )?),
        })
    }
}
