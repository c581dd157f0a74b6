//! `type: servicenow` in a source (ServiceNow): its keys, what is known of
//! the system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{SYSTEM, ServiceNow, ServiceNowSettings};
use crate::config::{BuildContext, basic_or_bearer};
use crate::oauth::{BodyFormat, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// ServiceNow in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "the itil role (or a read role) and snc_read_only",
    oauth: TokenEndpoint::OnHost {
        path: "/oauth_token.do",
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: servicenow`: ServiceNow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `INSTANCE` of `INSTANCE.service-now.com`.
    pub instance: String,
    /// User for Basic auth; absent for OAuth (Bearer).
    #[serde(default)]
    pub user: Option<String>,
    /// Password or OAuth token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Tables.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
}

fn default_tables() -> Vec<String> {
    vec!["incident".into(), "change_request".into()]
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let root = ctx.base(&format!("https://{}.service-now.com", self.instance));
        Ok(Box::new(ServiceNow::new(
            ServiceNowSettings {
                name: ctx.name(),
                base_url: root.clone(),
                tables: self.tables.clone(),
            },
            ctx.auth(
                self.token.as_ref(),
                Some(&root),
                &basic_or_bearer(self.user.clone()),
            )?,
            ctx.policy(),
        )?))
    }
}
