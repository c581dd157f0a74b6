//! `connectors:` in `causeway.yaml`: the sources each tenant reads, their
//! credentials (references only: `env`, `file` or `sealed`), the service
//! mapping, and the sync schedule.
//!
//! ```yaml
//! connectors:
//!   interval: 5m
//!   seal_key: { env: CAUSEWAY_SEAL_KEY }     # needed for `sealed:` credentials
//!   mapping:
//!     - { repository: acme/monorepo, path_prefix: pay/, services: [payments] }
//!   sources:
//!     - name: github
//!       tenant: acme
//!       type: github
//!       token: { env: GITHUB_TOKEN }
//!       repositories: [acme/checkout-service]
//!       webhook_secret: { env: GITHUB_WEBHOOK_SECRET }
//! ```

use std::sync::Arc;
use std::time::Duration;

use causeway_model::TenantId;
use serde::Deserialize;

use crate::Connector;
use crate::azure::{AzureDevOps, AzureDevOpsSettings};
use crate::bitbucket::{Bitbucket, BitbucketSettings};
use crate::error::{Error, Result};
use crate::git::{GitSettings, LocalGit};
use crate::github::{GitHub, GitHubSettings};
use crate::gitlab::{GitLab, GitLabSettings};
use crate::http::{Auth, RetryPolicy};
use crate::jira::{Jira, JiraSettings};
use crate::linear::{Linear, LinearSettings};
use crate::mapping::MappingRule;
use crate::oauth::{OAuthConfig, OAuthSession, TokenStore};
use crate::pylon::{Pylon, PylonSettings};
use crate::salesforce::{Salesforce, SalesforceSettings};
use crate::secret::{Secret, SecretRef};
use crate::servicenow::{ServiceNow, ServiceNowSettings};
use crate::slack::{Slack, SlackSettings};
use crate::webhook::Source;
use crate::zendesk::{Zendesk, ZendeskSettings};

mod build;

/// `connectors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Time between syncs of each source.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// How far back a first sync reads.
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub lookback: Duration,
    /// Key that seals stored credentials (AES-256-GCM, 32 bytes as hex or
    /// base64), from the environment or a file.
    #[serde(default)]
    pub seal_key: Option<SecretRef>,
    /// Explicit service mapping, tried before name matching.
    #[serde(default)]
    pub mapping: Vec<MappingRule>,
    /// The sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Secrets of the generic deploy event per tenant: when set for a
    /// tenant, `POST /api/v1/events/deploy` must also carry a signature.
    #[serde(default)]
    pub deploy_secrets: Vec<DeploySecret>,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            lookback: default_lookback(),
            seal_key: None,
            mapping: Vec::new(),
            sources: Vec::new(),
            deploy_secrets: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_lookback() -> Duration {
    Duration::from_secs(7 * 86_400)
}

/// A deploy event secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySecret {
    /// Whose.
    pub tenant: String,
    /// The secret.
    pub secret: SecretRef,
}

/// One source. Its common keys sit beside the system's own (`type:` and
/// the rest), each checked strictly.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique per tenant; the signals' `source` and the webhook path.
    pub name: String,
    /// Whose signals these are.
    pub tenant: String,
    /// Override of the system's API root (self-managed GitLab, GitHub
    /// Enterprise, a regional Pylon).
    pub base_url: Option<String>,
    /// Secret that signs this system's webhooks.
    pub webhook_secret: Option<SecretRef>,
    /// OAuth tokens that renew themselves, instead of a static `token`.
    pub oauth: Option<OAuthConfig>,
    /// Which system, and its settings.
    pub system: SystemConfig,
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        // serde's `flatten` cannot refuse unknown keys: split by hand.
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut take = |k: &str| map.remove(k);
        let field = |v: Option<serde_json::Value>,
                     k: &str|
         -> std::result::Result<Option<String>, D::Error> {
            match v {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(D::Error::custom(format!("{k}: a string"))),
            }
        };
        let name = field(take("name"), "name")?.ok_or_else(|| D::Error::missing_field("name"))?;
        let tenant =
            field(take("tenant"), "tenant")?.ok_or_else(|| D::Error::missing_field("tenant"))?;
        let base_url = field(take("base_url"), "base_url")?;
        let webhook_secret = take("webhook_secret")
            .map(serde_json::from_value::<SecretRef>)
            .transpose()
            .map_err(|e| D::Error::custom(format!("webhook_secret: {e}")))?;
        let oauth = take("oauth")
            .map(serde_json::from_value::<OAuthConfig>)
            .transpose()
            .map_err(|e| D::Error::custom(format!("oauth: {e}")))?;
        let system = serde_json::from_value::<SystemConfig>(serde_json::Value::Object(map))
            .map_err(|e| D::Error::custom(format!("source {name}: {e}")))?;
        Ok(Self {
            name,
            tenant,
            base_url,
            webhook_secret,
            oauth,
            system,
        })
    }
}

/// Per-system settings (`type:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SystemConfig {
    /// GitHub.
    Github {
        /// Token (fine-grained, read-only).
        #[serde(default)]
        token: Option<SecretRef>,
        /// `owner/name`.
        repositories: Vec<String>,
        /// Branch for commits (default: the default branch).
        #[serde(default)]
        branch: Option<String>,
    },
    /// GitLab.
    Gitlab {
        /// `read_api` token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// Project paths or ids.
        projects: Vec<String>,
    },
    /// Bitbucket Cloud.
    Bitbucket {
        /// Atlassian e-mail for API tokens; absent for access tokens (Bearer).
        #[serde(default)]
        email: Option<String>,
        /// API or access token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// `workspace/repo_slug`.
        repositories: Vec<String>,
        /// Branch for commits.
        #[serde(default = "default_branch")]
        branch: String,
    },
    /// Azure DevOps Services.
    AzureDevops {
        /// Organization.
        organization: String,
        /// Project.
        project: String,
        /// Personal access token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// Repositories.
        #[serde(default)]
        repositories: Vec<String>,
        /// Read work items.
        #[serde(default)]
        work_items: bool,
    },
    /// Jira Cloud.
    Jira {
        /// `https://SITE.atlassian.net`.
        site: String,
        /// E-mail of the API token's user; absent for OAuth (Bearer).
        #[serde(default)]
        email: Option<String>,
        /// API token or OAuth access token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// Which issues (`project = OPS`).
        #[serde(default)]
        jql: String,
    },
    /// Linear.
    Linear {
        /// Personal API key, or an OAuth token with `oauth: true`.
        #[serde(default)]
        key: Option<SecretRef>,
        /// The key is an OAuth token.
        #[serde(default)]
        oauth: bool,
    },
    /// Zendesk.
    Zendesk {
        /// `SUBDOMAIN` of `SUBDOMAIN.zendesk.com`.
        subdomain: String,
        /// Agent e-mail for API tokens; absent for OAuth (Bearer).
        #[serde(default)]
        email: Option<String>,
        /// API token or OAuth token.
        #[serde(default)]
        token: Option<SecretRef>,
    },
    /// ServiceNow.
    Servicenow {
        /// `INSTANCE` of `INSTANCE.service-now.com`.
        instance: String,
        /// User for Basic auth; absent for OAuth (Bearer).
        #[serde(default)]
        user: Option<String>,
        /// Password or OAuth token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// Tables.
        #[serde(default = "default_tables")]
        tables: Vec<String>,
    },
    /// Slack.
    Slack {
        /// Bot token (`xoxb-`).
        #[serde(default)]
        token: Option<SecretRef>,
        /// Channel ids.
        channels: Vec<String>,
        /// Workspace URL for links (`https://acme.slack.com`).
        workspace_url: String,
    },
    /// Salesforce Cases.
    Salesforce {
        /// `https://MYDOMAIN.my.salesforce.com`.
        instance_url: String,
        /// OAuth access token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// API version.
        #[serde(default = "default_sf_version")]
        api_version: String,
    },
    /// Pylon.
    Pylon {
        /// API token.
        token: SecretRef,
    },
    /// A local git repository (a mirror or checkout on disk).
    Git {
        /// Its directory.
        path: std::path::PathBuf,
        /// Branch (default: HEAD).
        #[serde(default)]
        branch: Option<String>,
        /// Repository name (default: the directory's).
        #[serde(default)]
        repository: Option<String>,
    },
}

fn default_branch() -> String {
    "main".into()
}

fn default_tables() -> Vec<String> {
    vec!["incident".into(), "change_request".into()]
}

fn default_sf_version() -> String {
    "v62.0".into()
}

impl SystemConfig {
    /// The system's name.
    pub fn system(&self) -> &'static str {
        match self {
            SystemConfig::Github { .. } => "github",
            SystemConfig::Gitlab { .. } => "gitlab",
            SystemConfig::Bitbucket { .. } => "bitbucket",
            SystemConfig::AzureDevops { .. } => "azure_devops",
            SystemConfig::Jira { .. } => "jira",
            SystemConfig::Linear { .. } => "linear",
            SystemConfig::Zendesk { .. } => "zendesk",
            SystemConfig::Servicenow { .. } => "servicenow",
            SystemConfig::Slack { .. } => "slack",
            SystemConfig::Salesforce { .. } => "salesforce",
            SystemConfig::Pylon { .. } => "pylon",
            SystemConfig::Git { .. } => "git",
        }
    }

    /// The webhook scheme of this system, if it pushes.
    pub fn webhook(&self) -> Option<Source> {
        match self {
            SystemConfig::Github { .. } => Some(Source::GitHub),
            SystemConfig::Gitlab { .. } => Some(Source::GitLab),
            SystemConfig::Jira { .. } => Some(Source::Jira),
            SystemConfig::Linear { .. } => Some(Source::Linear),
            SystemConfig::Slack { .. } => Some(Source::Slack),
            _ => None,
        }
    }

    /// The minimal read scopes to grant, for `connectors check` and README.
    pub fn read_scopes(&self) -> &'static str {
        crate::read_scopes(self.system())
    }

    /// The static credential (`token`, Linear's `key`), if configured.
    pub fn token(&self) -> Option<&SecretRef> {
        match self {
            SystemConfig::Github { token, .. }
            | SystemConfig::Gitlab { token, .. }
            | SystemConfig::Bitbucket { token, .. }
            | SystemConfig::AzureDevops { token, .. }
            | SystemConfig::Jira { token, .. }
            | SystemConfig::Zendesk { token, .. }
            | SystemConfig::Servicenow { token, .. }
            | SystemConfig::Slack { token, .. }
            | SystemConfig::Salesforce { token, .. } => token.as_ref(),
            SystemConfig::Linear { key, .. } => key.as_ref(),
            SystemConfig::Pylon { token } => Some(token),
            SystemConfig::Git { .. } => None,
        }
    }
}

/// Resolves a credential reference; `sealed` references through `sealed`.
pub type SealedLookup<'a> = &'a dyn Fn(&TenantId, &str) -> Result<Secret>;

impl ConnectorsConfig {
    /// Problems with the configuration: `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = |f: &str| format!("connectors.sources[{i}].{f}");
            if let Err(e) = TenantId::new(&s.tenant) {
                out.push((at("tenant"), e.to_string()));
            }
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                out.push((at("name"), "letters, digits, - and _ only".into()));
            }
            if !seen.insert((s.tenant.clone(), s.name.clone())) {
                out.push((
                    at("name"),
                    format!("{} is used twice for tenant {}", s.name, s.tenant),
                ));
            }
            if s.webhook_secret.is_some() && s.system.webhook().is_none() {
                out.push((
                    at("webhook_secret"),
                    format!("{} does not send signed webhooks", s.system.system()),
                ));
            }
            if let Some(u) = &s.base_url
                && url::Url::parse(u).is_err()
            {
                out.push((at("base_url"), format!("{u:?} is not a URL")));
            }
            let system = s.system.system();
            let token = s.system.token();
            match (&s.oauth, token) {
                (Some(_), _) if matches!(system, "pylon" | "git") => {
                    out.push((at("oauth"), format!("{system} has no OAuth")));
                }
                (Some(_), Some(_)) => out.push((
                    at("oauth"),
                    "a source has a token or an oauth block, not both".into(),
                )),
                (None, None) if system != "git" => out.push((
                    at("token"),
                    "a token (or an oauth block) is required".into(),
                )),
                _ => {}
            }
            if let Some(o) = &s.oauth {
                if let Some(p) = o
                    .token_url
                    .as_deref()
                    .and_then(crate::oauth::token_url_problem)
                {
                    out.push((at("oauth.token_url"), p));
                }
                if self.seal_key.is_none() {
                    out.push((
                        at("oauth"),
                        "renewed OAuth tokens are kept sealed: configure connectors.seal_key"
                            .into(),
                    ));
                }
            }
        }
        let uses_sealed = self.sources.iter().any(|s| {
            s.credential_refs()
                .into_iter()
                .any(|r| matches!(r, SecretRef::Sealed(_)))
        });
        if uses_sealed && self.seal_key.is_none() {
            out.push((
                "connectors.seal_key".into(),
                "sealed credentials are used but no seal_key is configured".into(),
            ));
        }
        out
    }

    /// The deploy secret of a tenant, if configured.
    pub fn deploy_secret(&self, tenant: &TenantId) -> Option<&SecretRef> {
        self.deploy_secrets
            .iter()
            .find(|d| d.tenant == tenant.as_str())
            .map(|d| &d.secret)
    }
}

#[cfg(test)]
mod tests;
