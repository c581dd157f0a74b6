//! `type: bitbucket` in a source (Bitbucket Cloud): its keys, what is known
//! of the system by name alone, and how a source of it becomes a connector.

use serde::Deserialize;

use super::{Bitbucket, BitbucketSettings, SYSTEM};
use crate::config::{BuildContext, basic_or_bearer};
use crate::oauth::{BodyFormat, ClientAuth, TokenEndpoint};
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// Bitbucket Cloud in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "read:repository:bitbucket and read:pullrequest:bitbucket (access tokens: repository, pullrequest)",
    oauth: TokenEndpoint::Public {
        token_url: "https://bitbucket.org/site/oauth2/access_token",
        client_auth: ClientAuth::Basic,
        body: BodyFormat::Form,
    },
    parse: parse::<Config>,
};

/// `type: bitbucket`: Bitbucket Cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Atlassian e-mail for API tokens; absent for access tokens (Bearer).
    #[serde(default)]
    pub email: Option<String>,
    /// API or access token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// `workspace/repo_slug`.
    pub repositories: Vec<String>,
    /// Branch for commits.
    #[serde(default = "default_branch")]
    pub branch: String,
}

fn default_branch() -> String {
    "main".into()
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        self.token.as_ref()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(Bitbucket::new(
            BitbucketSettings {
                name: ctx.name(),
                base_url: ctx.base("https://api.bitbucket.org/2.0"),
                repositories: self.repositories.clone(),
                branch: self.branch.clone(),
                max_commit_details: 100,
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
