//! The gate every authenticated request passes, in this order: the client
//! address's rate and failed-authentication block, the key, the tenant's
//! rate. A failed authentication is counted against the address and
//! written to the audit trail (with the key's fingerprint, never the key).

use std::net::IpAddr;
use std::sync::Arc;

use causeway_model::time::now_ns;
use causeway_model::{Actor, AuditEvent, AuditOutcome, AuditSink, NoAudit, TenantId};
use http::HeaderMap;

use crate::auth::Authenticator;
use crate::error::AuthError;
use crate::limits::{Class, ClientAddr, Limited, Limits};

/// Why the gate turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Missing or unknown credentials: 401.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// A rate limit or the failed-authentication block: 429.
    #[error(transparent)]
    Limited(#[from] Limited),
}

/// Authentication, rate limits and the audit of failures, shared by the
/// receivers and the API.
#[derive(Debug, Clone)]
pub struct Gate {
    auth: Arc<Authenticator>,
    limits: Arc<Limits>,
    audit: Arc<dyn AuditSink>,
}

impl Gate {
    /// A gate over `auth` with `limits`, recording to `audit`.
    pub fn new(auth: Arc<Authenticator>, limits: Arc<Limits>, audit: Arc<dyn AuditSink>) -> Self {
        Self {
            auth,
            limits,
            audit,
        }
    }

    /// Authentication only: no limits, nothing audited (tests, tools).
    pub fn open(auth: Arc<Authenticator>) -> Self {
        Self::new(auth, Arc::new(Limits::unlimited()), Arc::new(NoAudit))
    }

    /// The authenticator.
    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// The limits.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// The audit sink.
    pub fn audit(&self) -> &Arc<dyn AuditSink> {
        &self.audit
    }

    /// Admits a request of `class` from `client` carrying `headers`, or
    /// says why not.
    pub fn admit(
        &self,
        class: Class,
        client: Option<ClientAddr>,
        headers: &HeaderMap,
    ) -> Result<TenantId, Denied> {
        let ip = self.limits.client_ip(client, headers);
        self.limits.admit_client(class, ip)?;
        match self.auth.authenticate(headers) {
            Ok(tenant) => {
                if self.auth.enabled() {
                    self.limits.auth_succeeded(ip);
                }
                self.limits.admit_tenant(class, &tenant)?;
                Ok(tenant)
            }
            Err(e) => {
                self.auth_failed(class, ip, Authenticator::fingerprint(headers), e);
                Err(Denied::Unauthenticated(e))
            }
        }
    }

    /// Counts and audits a failed authentication (also used by sign-in,
    /// which takes its key from the body).
    pub fn auth_failed(
        &self,
        class: Class,
        ip: Option<IpAddr>,
        key_fingerprint: Option<String>,
        why: AuthError,
    ) {
        self.limits.auth_failed(ip);
        tracing::warn!(
            target: "causeway::audit",
            surface = class.as_str(),
            client = ?ip,
            key_fingerprint = key_fingerprint.as_deref().unwrap_or("-"),
            reason = why.0,
            "authentication failed"
        );
        self.audit.record(AuditEvent {
            at_ns: now_ns(),
            tenant: None,
            action: format!("auth.{}", class.as_str()),
            outcome: AuditOutcome::Failure,
            actor: Actor {
                client: ip,
                key_fingerprint,
                via: "api_key".into(),
            },
            detail: why.0.to_owned(),
        });
    }
}
