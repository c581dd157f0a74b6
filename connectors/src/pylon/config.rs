//! `type: pylon` in a source (Pylon): its keys, what is known of the system
//! by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{Pylon, PylonSettings, SYSTEM};
use crate::config::BuildContext;
use crate::oauth::TokenEndpoint;
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// Pylon in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "an API token (Pylon has no read-only scope)",
    oauth: TokenEndpoint::Unsupported,
    parse: parse::<Config>,
};

/// `type: pylon`: Pylon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// API token.
    pub token: SecretRef,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        Some(&self.token)
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(Pylon::new(
            PylonSettings {
                name: ctx.name(),
                base_url: ctx.base("https://api.usepylon.com"),
            },
            ctx.secret(&self.token)?,
            ctx.policy(),
        )?))
    }
}
