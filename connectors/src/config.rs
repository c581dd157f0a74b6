//! `connectors:` in `causeway.yaml`: the sources each tenant reads, their
//! credentials (references only: `env`, `file` or `sealed`), the service
//! mapping, and the sync schedule. A source's keys beside the common ones
//! belong to its system (`type:`, looked up in [`crate::registry`]).
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
use crate::error::{Error, Result};
use crate::http::{Auth, RetryPolicy};
use crate::mapping::MappingRule;
use crate::oauth::{OAuthConfig, OAuthSession, TokenStore};
use crate::registry::System;
use crate::secret::{Secret, SecretRef};

mod build;

pub use build::{BuildContext, basic_or_bearer};

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
    /// Which system (`type:`), and its settings: the registry's parse of
    /// the remaining keys.
    pub system: Arc<dyn System>,
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
        let kind = field(take("type"), "type")?
            .ok_or_else(|| D::Error::custom(format!("source {name}: missing field `type`")))?;
        // What is left are the system's own keys, which its settings
        // struct refuses if it does not know them.
        let system = crate::registry::settings(&kind, serde_json::Value::Object(map))
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
                    format!("{} does not send signed webhooks", s.system.name()),
                ));
            }
            if let Some(u) = &s.base_url
                && let Err(e) = causeway_model::outbound::check(u)
            {
                out.push((at("base_url"), e));
            }
            let system = s.system.name();
            let token = s.system.token();
            match (&s.oauth, token) {
                (Some(_), _) if !s.system.info().oauth.supported() => {
                    out.push((at("oauth"), format!("{system} has no OAuth")));
                }
                (Some(_), Some(_)) => out.push((
                    at("oauth"),
                    "a source has a token or an oauth block, not both".into(),
                )),
                (None, None) if s.system.needs_credential() => out.push((
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
