//! From a source's configuration to a running connector: its tenant, its
//! credentials (plain, from the environment, or sealed), and the client of
//! its system (each system's `build`, given a [`BuildContext`]).

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

    /// Builds the connector (credentials are read now). `tokens` keeps
    /// renewed OAuth tokens (sealed) across restarts.
    pub fn build(
        &self,
        policy: RetryPolicy,
        sealed: SealedLookup<'_>,
        tokens: Option<Arc<dyn TokenStore>>,
    ) -> Result<Box<dyn Connector>> {
        self.tenant_id()?;
        self.system.build(&BuildContext {
            source: self,
            policy,
            sealed,
            tokens,
        })
    }
}

/// What a system's [`System::build`](crate::registry::System::build) is
/// given: the source's common keys, and the ways every system turns its
/// credentials into an [`Auth`] (a static token, or an OAuth session).
pub struct BuildContext<'a> {
    source: &'a SourceConfig,
    policy: RetryPolicy,
    sealed: SealedLookup<'a>,
    tokens: Option<Arc<dyn TokenStore>>,
}

impl BuildContext<'_> {
    /// The instance's name (the signals' `source`).
    pub fn name(&self) -> String {
        self.source.name.clone()
    }

    /// The retry policy of the connector's client.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Whether the source has an `oauth` block.
    pub fn has_oauth(&self) -> bool {
        self.source.oauth.is_some()
    }

    /// The API root: the source's `base_url` if set, else the system's
    /// `default`, without a trailing slash.
    pub fn base(&self, default: &str) -> String {
        self.source
            .base_url
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }

    /// A credential reference, resolved (`sealed` ones from the vault).
    pub fn secret(&self, r: &SecretRef) -> Result<Secret> {
        self.source.secret(r, self.sealed)
    }

    /// The `token` (or `key`) of a system that needs one when it has no
    /// `oauth` block.
    pub fn credential(&self, r: Option<&SecretRef>) -> Result<Secret> {
        match r {
            Some(r) => self.secret(r),
            None => Err(Error::Config {
                connector: self.source.name.clone(),
                message: "a token (or an oauth block) is required".into(),
            }),
        }
    }

    /// The connector's OAuth session, when it has an `oauth` block.
    /// `host_url` is the system's own root for systems whose token
    /// endpoint sits on it (Zendesk, ServiceNow, Salesforce).
    pub fn oauth_session(&self, host_url: Option<&str>) -> Result<Option<Auth>> {
        let s = self.source;
        let Some(o) = &s.oauth else {
            return Ok(None);
        };
        let info = s.system.info();
        // With a `base_url`, a public default may be the wrong endpoint
        // (a self-hosted server has its own): the system's kind says.
        let endpoint = info.oauth.endpoint(host_url, s.base_url.is_some());
        let settings =
            crate::oauth::settings(o, info.name, &s.name, s.tenant_id()?, endpoint, &|r| {
                self.secret(r)
            })?;
        let session = OAuthSession::new(settings, self.tokens.clone(), self.policy)?;
        Ok(Some(Auth::OAuth(Arc::new(session))))
    }

    /// OAuth if configured, else `plain` over the static credential
    /// `token`.
    pub fn auth(
        &self,
        token: Option<&SecretRef>,
        host_url: Option<&str>,
        plain: &dyn Fn(Secret) -> Auth,
    ) -> Result<Auth> {
        match self.oauth_session(host_url)? {
            Some(a) => Ok(a),
            None => Ok(plain(self.credential(token)?)),
        }
    }
}

/// Basic auth as `user` when one is configured (an API token with its
/// account's e-mail), else Bearer (an OAuth or access token).
pub fn basic_or_bearer(user: Option<String>) -> impl Fn(Secret) -> Auth {
    move |token: Secret| match &user {
        Some(u) => Auth::Basic {
            user: u.clone(),
            password: token,
        },
        None => Auth::Bearer(token),
    }
}
