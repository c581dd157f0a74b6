//! The audit trail's vocabulary: who did what to which tenant's data, and
//! whether it was allowed.
//!
//! Every stage that authenticates or acts on a tenant's behalf records an
//! [`AuditEvent`] through an [`AuditSink`]; the binary's sink redacts it,
//! appends it to the store and logs it. Recording never blocks the caller:
//! a sink that cannot keep up counts what it drops.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::TenantId;

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, unix ns.
    pub at_ns: i64,
    /// Whose data; `None` for events no tenant can be named for (an
    /// unknown API key, the configuration loaded at start).
    pub tenant: Option<TenantId>,
    /// What happened, dotted: `auth.api_key`, `session.create`,
    /// `session.delete`, `sql.query`, `rca.feedback`, `data.delete`,
    /// `config.load`, `connector.sync`, `connector.seal`, ….
    pub action: String,
    /// Whether it was allowed and worked.
    pub outcome: AuditOutcome,
    /// Who.
    pub actor: Actor,
    /// What else matters (a statement's text, rows and duration; why a
    /// request was refused). Redacted before it is stored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Whether an audited action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Allowed and done.
    Success,
    /// Refused (bad credentials, a limit) or failed.
    Failure,
}

impl AuditOutcome {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The client's address, for requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// The first 12 hex digits of the SHA-256 of the API key presented:
    /// enough to tell configured keys apart (the config holds the full
    /// digest), never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// `api_key`, `session`, `webhook`, `connector` or `system`.
    pub via: String,
}

impl Actor {
    /// causeway itself (start-up, background tasks).
    pub fn system() -> Self {
        Self {
            via: "system".into(),
            ..Self::default()
        }
    }
}

/// Where audit events go. Implementations must not block.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one event.
    fn record(&self, event: AuditEvent);
}

/// A sink that keeps nothing (tools that serve nobody, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: AuditEvent) {}
}
