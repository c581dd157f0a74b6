//! `type: salesforce` in a source (Salesforce Cases): its keys, what is
//! known of the system by name alone, and how a source of it becomes a
//! connector.

use serde::Deserialize;

use super::{SYSTEM, Salesforce, SalesforceSettings};
use crate::config::BuildContext;
use crate::http::Auth;
use crate::oauth::{BodyFormat, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// Salesforce Cases in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "the api scope on a user whose profile only reads Case",
    oauth: TokenEndpoint::OnHost {
        path: "/services/oauth2/token",
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: salesforce`: Salesforce Cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://MYDOMAIN.my.salesforce.com`.
    pub instance_url: String,
    /// OAuth access token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// API version.
    #[serde(default = "default_sf_version")]
    pub api_version: String,
}

fn default_sf_version() -> String {
    "v62.0".into()
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let instance = ctx.base(&self.instance_url);
        // Record links open in Lightning, on its own domain.
        let lightning = instance.replace(".my.salesforce.com", ".lightning.force.com");
        let auth = ctx.auth(self.token.as_ref(), Some(&instance), &Auth::Bearer)?;
        Ok(Box::new(Salesforce::with_auth(
            SalesforceSettings {
                name: ctx.name(),
                instance_url: instance,
                api_version: self.api_version.clone(),
                lightning_url: lightning,
            },
            auth,
            ctx.policy(),
        )?))
    }
}
