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

impl SourceConfig {
    /// The tenant, validated.
    pub fn tenant_id(&self) -> Result<TenantId> {
        TenantId::new(&self.tenant).map_err(|e| Error::Config {
            connector: self.name.clone(),
            message: format!("tenant: {e}"),
        })
    }

    fn secret(&self, r: &SecretRef, sealed: SealedLookup<'_>) -> Result<Secret> {
        match r {
            SecretRef::Sealed(name) => sealed(&self.tenant_id()?, name),
            other => other.resolve(),
        }
    }

    /// Every credential reference of the source.
    fn credential_refs(&self) -> Vec<&SecretRef> {
        let mut refs = vec![self.webhook_secret.as_ref(), self.system.token()];
        if let Some(o) = &self.oauth {
            refs.push(o.client_secret.as_ref());
            refs.push(o.refresh_token.as_ref());
        }
        refs.into_iter().flatten().collect()
    }

    /// The webhook secret, resolved.
    pub fn webhook_secret(&self, sealed: SealedLookup<'_>) -> Result<Option<Secret>> {
        self.webhook_secret
            .as_ref()
            .map(|r| self.secret(r, sealed))
            .transpose()
    }

    /// The `token` (or `key`) of a system that needs one when it has no
    /// `oauth` block.
    fn credential(&self, r: &Option<SecretRef>, sealed: SealedLookup<'_>) -> Result<Secret> {
        match r {
            Some(r) => self.secret(r, sealed),
            None => Err(Error::Config {
                connector: self.name.clone(),
                message: "a token (or an oauth block) is required".into(),
            }),
        }
    }

    /// The connector's OAuth session, when it has an `oauth` block.
    /// `host_url` is the system's own root for systems whose token
    /// endpoint sits on it (Zendesk, ServiceNow, Salesforce).
    fn oauth_session(
        &self,
        sealed: SealedLookup<'_>,
        tokens: Option<Arc<dyn TokenStore>>,
        host_url: Option<&str>,
        policy: RetryPolicy,
    ) -> Result<Option<Auth>> {
        let Some(o) = &self.oauth else {
            return Ok(None);
        };
        let system = self.system.system();
        let mut endpoint = crate::oauth::default_endpoint(system, host_url);
        // A self-hosted API root (GitHub Enterprise, self-managed GitLab)
        // has its own token endpoint: the public one would be wrong.
        if self.base_url.is_some() && host_url.is_none() && system != "jira" {
            endpoint.token_url = None;
        }
        let settings =
            crate::oauth::settings(o, system, &self.name, self.tenant_id()?, endpoint, &|r| {
                self.secret(r, sealed)
            })?;
        let session = OAuthSession::new(settings, tokens, policy)?;
        Ok(Some(Auth::OAuth(Arc::new(session))))
    }

    /// Builds the connector (credentials are read now). `tokens` keeps
    /// renewed OAuth tokens (sealed) across restarts.
    pub fn build(
        &self,
        policy: RetryPolicy,
        sealed: SealedLookup<'_>,
        tokens: Option<Arc<dyn TokenStore>>,
    ) -> Result<Box<dyn Connector>> {
        self.tenant_id()?;
        let name = self.name.clone();
        let base = |default: String| {
            self.base_url
                .clone()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_owned()
        };
        // OAuth if configured, else `plain` over the static credential.
        let auth = |token: &Option<SecretRef>,
                    host_url: Option<&str>,
                    plain: &dyn Fn(Secret) -> Auth|
         -> Result<Auth> {
            match self.oauth_session(sealed, tokens.clone(), host_url, policy)? {
                Some(a) => Ok(a),
                None => Ok(plain(self.credential(token, sealed)?)),
            }
        };
        let basic_or_bearer = |user: &Option<String>| {
            let user = user.clone();
            move |token: Secret| match &user {
                Some(u) => Auth::Basic {
                    user: u.clone(),
                    password: token,
                },
                None => Auth::Bearer(token),
            }
        };
        Ok(match &self.system {
            SystemConfig::Github {
                token,
                repositories,
                branch,
            } => Box::new(GitHub::with_auth(
                GitHubSettings {
                    name,
                    base_url: base("https://api.github.com".into()),
                    repositories: repositories.clone(),
                    branch: branch.clone(),
                    max_commit_details: 100,
                },
                auth(token, None, &Auth::Bearer)?,
                policy,
            )?),
            SystemConfig::Gitlab { token, projects } => Box::new(GitLab::with_auth(
                GitLabSettings {
                    name,
                    base_url: base("https://gitlab.com/api/v4".into()),
                    projects: projects.clone(),
                    max_commit_details: 100,
                },
                auth(token, None, &|t| Auth::Header {
                    name: http::HeaderName::from_static("private-token"),
                    value: t,
                })?,
                policy,
            )?),
            SystemConfig::Bitbucket {
                email,
                token,
                repositories,
                branch,
            } => Box::new(Bitbucket::new(
                BitbucketSettings {
                    name,
                    base_url: base("https://api.bitbucket.org/2.0".into()),
                    repositories: repositories.clone(),
                    branch: branch.clone(),
                    max_commit_details: 100,
                },
                auth(token, None, &basic_or_bearer(email))?,
                policy,
            )?),
            SystemConfig::AzureDevops {
                organization,
                project,
                token,
                repositories,
                work_items,
            } => Box::new(AzureDevOps::new(
                AzureDevOpsSettings {
                    name,
                    base_url: base(format!("https://dev.azure.com/{organization}/{project}")),
                    repositories: repositories.clone(),
                    work_items: *work_items,
                    max_commit_details: 100,
                    page_size: 100,
                },
                // A personal access token is Basic with an empty user.
                auth(token, None, &|t| Auth::Basic {
                    user: String::new(),
                    password: t,
                })?,
                policy,
            )?),
            SystemConfig::Jira {
                site,
                email,
                token,
                jql,
            } => Box::new(Jira::new(
                JiraSettings {
                    name,
                    base_url: base(site.trim_end_matches('/').to_owned()),
                    browse_url: site.trim_end_matches('/').to_owned(),
                    jql: jql.clone(),
                },
                auth(token, None, &basic_or_bearer(email))?,
                policy,
            )?),
            SystemConfig::Linear { key, oauth } => {
                let settings = LinearSettings {
                    name,
                    url: base("https://api.linear.app/graphql".into()),
                    oauth: *oauth || self.oauth.is_some(),
                };
                match self.oauth_session(sealed, tokens.clone(), None, policy)? {
                    Some(a) => Box::new(Linear::with_auth(settings, a, policy)?),
                    None => Box::new(Linear::new(
                        settings,
                        self.credential(key, sealed)?,
                        policy,
                    )?),
                }
            }
            SystemConfig::Zendesk {
                subdomain,
                email,
                token,
            } => {
                let root = base(format!("https://{subdomain}.zendesk.com"));
                let user = email.as_ref().map(|e| format!("{e}/token"));
                Box::new(Zendesk::new(
                    ZendeskSettings {
                        name,
                        base_url: root.clone(),
                    },
                    auth(token, Some(&root), &basic_or_bearer(&user))?,
                    policy,
                )?)
            }
            SystemConfig::Servicenow {
                instance,
                user,
                token,
                tables,
            } => {
                let root = base(format!("https://{instance}.service-now.com"));
                Box::new(ServiceNow::new(
                    ServiceNowSettings {
                        name,
                        base_url: root.clone(),
                        tables: tables.clone(),
                    },
                    auth(token, Some(&root), &basic_or_bearer(user))?,
                    policy,
                )?)
            }
            SystemConfig::Slack {
                token,
                channels,
                workspace_url,
            } => Box::new(Slack::with_auth(
                SlackSettings {
                    name,
                    base_url: base("https://slack.com/api".into()),
                    workspace_url: workspace_url.trim_end_matches('/').to_owned(),
                    channels: channels.clone(),
                },
                auth(token, None, &Auth::Bearer)?,
                policy,
            )?),
            SystemConfig::Salesforce {
                instance_url,
                token,
                api_version,
            } => {
                let instance = base(instance_url.clone());
                let lightning = instance.replace(".my.salesforce.com", ".lightning.force.com");
                let auth = auth(token, Some(&instance), &Auth::Bearer)?;
                Box::new(Salesforce::with_auth(
                    SalesforceSettings {
                        name,
                        instance_url: instance,
                        api_version: api_version.clone(),
                        lightning_url: lightning,
                    },
                    auth,
                    policy,
                )?)
            }
            SystemConfig::Git {
                path,
                branch,
                repository,
            } => Box::new(LocalGit::new(GitSettings {
                name,
                path: path.clone(),
                branch: branch.clone(),
                repository: repository.clone(),
            })?),
            SystemConfig::Pylon { token } => Box::new(Pylon::new(
                PylonSettings {
                    name,
                    base_url: base("https://api.usepylon.com".into()),
                },
                self.secret(token, sealed)?,
                policy,
            )?),
        })
    }
}

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
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ConnectorsConfig {
        serde_yaml_ng::from_str(yaml).expect("parse")
    }

    #[test]
    fn every_system_parses_and_builds_from_references() {
        let cfg = parse(
            r#"
interval: 1m
mapping:
  - { repository: acme/monorepo, path_prefix: pay/, services: [payments] }
sources:
  - { name: gh, tenant: acme, type: github, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [acme/shop] }
  - { name: gl, tenant: acme, type: gitlab, token: { env: CAUSEWAY_TEST_TOKEN }, projects: [acme/cart] }
  - { name: bb, tenant: acme, type: bitbucket, email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [acme/shop] }
  - { name: ado, tenant: acme, type: azure_devops, organization: fab, project: shop, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [checkout], work_items: true }
  - { name: jira, tenant: acme, type: jira, site: "https://acme.atlassian.net", email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN }, jql: "project = OPS" }
  - { name: lin, tenant: acme, type: linear, key: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: zd, tenant: acme, type: zendesk, subdomain: acme, email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: sn, tenant: acme, type: servicenow, instance: acme, user: bot, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: sl, tenant: acme, type: slack, token: { env: CAUSEWAY_TEST_TOKEN }, channels: [C1], workspace_url: "https://acme.slack.com" }
  - { name: sf, tenant: acme, type: salesforce, instance_url: "https://acme.my.salesforce.com", token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: py, tenant: acme, type: pylon, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: repo, tenant: acme, type: git, path: /srv/git/shop.git, branch: main }
"#,
        );
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        assert_eq!(cfg.interval, Duration::from_secs(60));
        let no_sealed = |_: &TenantId, n: &str| -> Result<Secret> {
            Err(Error::Credential {
                name: n.into(),
                message: "none".into(),
            })
        };
        // Unset: every build fails naming the variable, never a value.
        for s in cfg.sources.iter().filter(|s| s.system.system() != "git") {
            let err = s
                .build(RetryPolicy::default(), &no_sealed, None)
                .expect_err("unset");
            assert!(err.to_string().contains("env:CAUSEWAY_TEST_TOKEN"), "{err}");
        }
        let file = std::env::temp_dir().join(format!("causeway-token-{}", std::process::id()));
        std::fs::write(&file, "tok").expect("write");
        let with_file = format!(
            "sources:\n  - {{ name: gh, tenant: acme, type: github, token: {{ file: {} }}, repositories: [acme/shop] }}\n",
            file.display()
        );
        let cfg = parse(&with_file);
        let c = cfg.sources[0]
            .build(RetryPolicy::default(), &no_sealed, None)
            .expect("build");
        assert_eq!(c.streams().len(), 5);
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn problems_name_their_field() {
        let cfg = parse(
            r#"
sources:
  - { name: gh, tenant: "bad tenant!", type: github, token: { sealed: gh }, repositories: [a/b] }
  - { name: gh, tenant: "bad tenant!", type: pylon, token: { env: X }, webhook_secret: { env: Y } }
"#,
        );
        let p = cfg.problems();
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"connectors.sources[0].tenant"), "{p:?}");
        assert!(fields.contains(&"connectors.sources[1].name"), "{p:?}");
        assert!(
            fields.contains(&"connectors.sources[1].webhook_secret"),
            "{p:?}"
        );
        assert!(fields.contains(&"connectors.seal_key"), "{p:?}");
        let unknown: std::result::Result<ConnectorsConfig, _> = serde_yaml_ng::from_str(
            "sources:\n  - { name: x, tenant: a, type: github, token: { env: X }, repositories: [], colour: red }\n",
        );
        assert!(unknown.is_err());
        let bad_type: std::result::Result<ConnectorsConfig, _> = serde_yaml_ng::from_str(
            "sources:\n  - { name: x, tenant: a, type: gitea, token: { env: X } }\n",
        );
        assert!(bad_type.is_err());
    }
}
