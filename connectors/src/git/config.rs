//! `type: git` in a source (a local git repository): its keys, what is
//! known of the system by name alone, and how a source of it becomes a
//! connector.

use std::path::PathBuf;

use serde::Deserialize;

use super::{GitSettings, LocalGit, SYSTEM};
use crate::config::BuildContext;
use crate::oauth::TokenEndpoint;
use crate::registry::{System, SystemInfo, parse};
use crate::secret::SecretRef;
use crate::{Connector, Result};

/// A local git repository in the registry.
pub(crate) static INFO: SystemInfo = SystemInfo {
    name: SYSTEM,
    read_scopes: "read access to the repository directory",
    oauth: TokenEndpoint::Unsupported,
    parse: parse::<Config>,
};

/// `type: git`: a local git repository (a mirror or checkout on disk).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Its directory.
    pub path: PathBuf,
    /// Branch (default: HEAD).
    #[serde(default)]
    pub branch: Option<String>,
    /// Repository name (default: the directory's).
    #[serde(default)]
    pub repository: Option<String>,
}

impl System for Config {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn token(&self) -> Option<&SecretRef> {
        None
    }

    // The repository is on this machine's disk: no credential to give.
    fn needs_credential(&self) -> bool {
        false
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Connector>> {
        Ok(Box::new(LocalGit::new(GitSettings {
            name: ctx.name(),
            path: self.path.clone(),
            branch: self.branch.clone(),
            repository: self.repository.clone(),
        })?))
    }
}
