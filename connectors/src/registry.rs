//! The systems causeway reads, behind one trait ([`System`]) and one table
//! (`SYSTEMS`). A source's `type:` names a row; the row's settings struct
//! (the system's `config.rs`) parses the source's own keys and builds its
//! connector. Everything else (configuration checks, the webhook hub,
//! `connectors check`, error messages, OAuth defaults) asks the trait or
//! the table, never a list of names, so a new system is one folder and one
//! line here.

use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::Connector;
use crate::config::BuildContext;
use crate::error::Result;
use crate::oauth::TokenEndpoint;
use crate::secret::SecretRef;
use crate::webhook::Source;
use crate::{azure, bitbucket, git, github, gitlab, jira, linear, pylon};
use crate::{salesforce, servicenow, slack, zendesk};

/// Every system, in the order error messages list them.
static SYSTEMS: &[&SystemInfo] = &[
    &github::INFO,
    &gitlab::INFO,
    &bitbucket::INFO,
    &azure::INFO,
    &jira::INFO,
    &linear::INFO,
    &zendesk::INFO,
    &servicenow::INFO,
    &slack::INFO,
    &salesforce::INFO,
    &pylon::INFO,
    &git::INFO,
];

/// Parses a source's own keys into a system's settings.
pub(crate) type Parse = fn(serde_json::Value) -> serde_json::Result<Arc<dyn System>>;

/// What is known of a system by its name alone, before any source of it
/// is parsed: error messages and OAuth defaults only have the name.
#[derive(Debug)]
pub struct SystemInfo {
    /// The `type:` of its sources, and the signals' `system`.
    pub name: &'static str,
    /// The minimal read scopes (or roles) its credential needs, as error
    /// messages, `connectors check` and README name them.
    pub read_scopes: &'static str,
    /// Where its OAuth tokens come from by default, if it has OAuth.
    pub oauth: TokenEndpoint,
    /// Its settings struct's parser (`parse::<Config>` of its folder).
    pub(crate) parse: Parse,
}

/// A source system's settings (the keys beside `type:`), and how they
/// become a connector.
pub trait System: Debug + Send + Sync {
    /// The system's entry in the registry.
    fn info(&self) -> &'static SystemInfo;

    /// The system's name (`github`).
    fn name(&self) -> &'static str {
        self.info().name
    }

    /// The minimal read scopes to grant, for `connectors check` and README.
    fn read_scopes(&self) -> &'static str {
        self.info().read_scopes
    }

    /// The webhook scheme of this system, if it pushes.
    fn webhook(&self) -> Option<Source> {
        None
    }

    /// The static credential (`token`, Linear's `key`), if configured.
    fn token(&self) -> Option<&SecretRef>;

    /// Whether a source needs a credential (a token or an oauth block):
    /// every system but one that reads a local directory.
    fn needs_credential(&self) -> bool {
        true
    }

    /// Builds the connector; credentials are resolved now, through `ctx`.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>>;
}

/// The parser of a settings struct, for its [`SystemInfo`].
pub(crate) fn parse<T: System + DeserializeOwned + 'static>(
    settings: serde_json::Value,
) -> serde_json::Result<Arc<dyn System>> {
    Ok(Arc::new(serde_json::from_value::<T>(settings)?))
}

/// The registered system named `name`.
pub fn info(name: &str) -> Option<&'static SystemInfo> {
    SYSTEMS.iter().copied().find(|s| s.name == name)
}

/// The names of every registered system.
pub fn names() -> impl Iterator<Item = &'static str> {
    SYSTEMS.iter().map(|s| s.name)
}

/// A source's settings: `settings` (its keys but the common ones and
/// `type`) parsed by the system `kind` names, strictly.
pub fn settings(kind: &str, settings: serde_json::Value) -> serde_json::Result<Arc<dyn System>> {
    match info(kind) {
        Some(s) => (s.parse)(settings),
        None => {
            let known: Vec<String> = names().map(|n| format!("`{n}`")).collect();
            Err(serde::de::Error::custom(format!(
                "unknown type `{kind}`, expected one of {}",
                known.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests;
