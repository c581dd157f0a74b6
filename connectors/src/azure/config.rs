//! `type: azure_devops` in a source (Azure DevOps Services): its keys, what
//! is known of the system by name alone, and how a source of it becomes a
//! connector.

use serde::Deserialize;

use super::{AzureDevOps, AzureDevOpsSettings, SYSTEM};
use crate::config::BuildContext;
use crate::http::Auth;
use crate::oauth::TokenEndpoint;
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// Azure DevOps Services in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "Code (Read) and Work Items (Read)",
    // Entra's endpoint names the directory
    // (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`).
    oauth: TokenEndpoint::Configured,
    parse: parse::<Config>,
};

/// `type: azure_devops`: Azure DevOps Services.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Organization.
    pub organization: String,
    /// Project.
    pub project: String,
    /// Personal access token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Repositories.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Read work items.
    #[serde(default)]
    pub work_items: bool,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        let (organization, project) = (&self.organization, &self.project);
        Ok(Box::new(AzureDevOps::new(
            AzureDevOpsSettings {
                name: ctx.name(),
                base_url: ctx.base(&format!("https://dev.azure.com/{organization}/{project}")),
                repositories: self.repositories.clone(),
                work_items: self.work_items,
                max_commit_details: 100,
                page_size: 100,
            },
            // A personal access token is Basic with an empty user.
            ctx.auth(self.token.as_ref(), None, &|t| Auth::Basic {
                user: String::new(),
                password: t,
            })?,
            ctx.policy(),
        )?))
    }
}
