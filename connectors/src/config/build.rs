//! From a source's configuration to a running connector: its tenant, its
//! credentials (plain, from the environment, or sealed), and the client of
//! its system.

use super::*;

impl SourceConfig {
    /// The tenant, validated.
    pub fn tenant_id(&self) -> Result<TenantId> {
        TenantId::new(&self.tenant).map_err(|e| Error::Config {
            connector: self.name.clone(),
            message: format!("tenant: {e}"),
        })
    }

    pub(super) fn secret(&self, r: &SecretRef, sealed: SealedLookup<'_>) -> Result<Secret> {
        match r {
            SecretRef::Sealed(name) => sealed(&self.tenant_id()?, name),
            other => other.resolve(),
        }
    }

    /// Every credential reference of the source.
    pub(super) fn credential_refs(&self) -> Vec<&SecretRef> {
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
    pub(super) fn credential(
        &self,
        r: &Option<SecretRef>,
        sealed: SealedLookup<'_>,
    ) -> Result<Secret> {
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
    pub(super) fn oauth_session(
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
