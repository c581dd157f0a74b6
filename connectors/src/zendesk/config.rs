//! `type: zendesk` in a source (Zendesk): its keys, what is known of the
//! system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{SYSTEM, Zendesk, ZendeskSettings};
use crate::config::{BuildContext, basic_or_bearer};
use crate::oauth::{BodyFormat, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// Zendesk in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "the read scope (OAuth) or an agent's API token",
    oauth: TokenEndpoint::OnHost {
        path: "/oauth/tokens",
        body: BodyFormat::Json,
    },
    parse: parse::<Config>,
};

/// `type: zendesk`: Zendesk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `SUBDOMAIN` of `SUBDOMAIN.zendesk.com`.
    pub subdomain: String,
    /// Agent e-mail for API tokens; absent for OAuth (Bearer).
    #[serde(default)]
    pub email: Option<String>,
    /// API token or OAuth token.
    #[serde(default)]
    pub token: Option<SecretRef>,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let root = ctx.base(&format!("https://{}.zendesk.com", self.subdomain));
        // An API token authenticates as `EMAIL/token`.
        let user = self.email.as_ref().map(|e| format!("{e}/token"));
        Ok(Box::new(Zendesk::new(
            ZendeskSettings {
                name: ctx.name(),
                base_url: root.clone(),
            },
            ctx.auth(self.token.as_ref(), Some(&root), &basic_or_bearer(user))?,
            ctx.policy(),
        )?))
    }
}
