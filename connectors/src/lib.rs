//! Read-only connectors: what changed (commits, deploys, releases, merged
//! pull requests) and what people report (tickets, incidents, chat), pulled
//! incrementally from the systems teams use and kept per tenant as
//! normalized [`Signal`](causeway_model::Signal)s.
//!
//! ```text
//! Connector::page ──Page (items + next)──> sync ──signals + cursor, one transaction──> DuckDbSignals
//!      │                                     └─ ServiceMapper: hints → services
//!      └─ ReadOnlyClient (GET, POST only to query endpoints; rate limits, backoff)
//! ```
//!
//! Every connector speaks its system's real API; tests run each against a
//! local server that answers in that system's wire format.
//!
//! Each system is one folder: its client and mapping (`github.rs`), its
//! webhook payloads (`github/webhook.rs`), its `type: github` settings
//! (`github/config.rs`, a [`registry::System`]) and its local-server tests.
//! [`registry`] holds one table of them, which a source's `type:` is looked
//! up in, so nothing else lists systems: a new system is one folder and one
//! line in the registry.

pub mod azure;
pub mod bitbucket;
pub mod config;
mod error;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod hub;
pub mod jira;
pub mod linear;
pub mod mapping;
pub mod oauth;
pub mod pylon;
pub mod registry;
pub mod salesforce;
pub mod secret;
pub mod servicenow;
pub mod slack;
pub mod sync;
#[cfg(test)]
mod testserver;
pub mod time;
pub mod webhook;
pub mod zendesk;

pub use error::{Error, Result};
pub use http::{Auth, ReadOnlyClient, RetryPolicy};
pub use hub::{HookError, KnownServices, NoServices, SignalHub, WebhookOutcome};
pub use mapping::{Hints, MappingRule, ServiceMapper};
pub use secret::{SealKey, Secret, SecretRef, Vault};
pub use sync::{SyncReport, SyncSettings, sync_connector};

use causeway_model::{Signal, TenantId};

/// The minimal read scopes (or roles) a system's credential needs, as
/// error messages, `connectors check` and README name them.
pub fn read_scopes(system: &str) -> &'static str {
    registry::info(system).map_or("read access", |s| s.read_scopes)
}

/// One record a connector read, with what it says about where it belongs.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The record (its `services` are filled by the mapper).
    pub signal: Signal,
    /// Repository, paths, components, channel.
    pub hints: Hints,
}

/// One page of a stream.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Records on this page.
    pub items: Vec<Item>,
    /// Where the next page is (a URL or the system's page token); `None`
    /// when the pass is complete.
    pub next: Option<String>,
}

/// A source system's connector. Implementations only read.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The instance's name (config), used as the signals' `source`.
    fn name(&self) -> &str;
    /// The system (`github`, `jira`, …).
    fn system(&self) -> &'static str;
    /// The streams it syncs (`commits:acme/shop`), each with its own cursor.
    fn streams(&self) -> Vec<String>;
    /// One page of `stream`: the first page of a pass over everything
    /// updated since `since_ns` when `next` is `None`, else the page
    /// `next` names.
    async fn page(
        &self,
        tenant: &TenantId,
        stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page>;
    /// Checks credentials and read access (one cheap read per stream).
    async fn check(&self) -> Result<Vec<String>>;
}
