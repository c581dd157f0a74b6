//! Rate limits, the failed-authentication backoff, per-tenant SQL slots and
//! per-address connection counts: what keeps one client from costing every
//! other one.
//!
//! Token buckets are `governor`'s keyed limiters (GCRA, lock-free per key).
//! Keys idle for longer than a bucket takes to refill are forgotten by
//! [`Limits::housekeep`], which the binary runs every minute, so memory
//! follows the addresses and tenants of the last minute, not all ever seen.

mod backoff;
pub mod config;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_model::TenantId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use backoff::FailureBackoff;
pub use config::{LimitsConfig, Rate};

/// The remote address of a connection, put into every request's extensions
/// by [`crate::net::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// What a request is, for choosing its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// OTLP export.
    Ingest,
    /// API.
    Api,
    /// Webhook delivery.
    Webhook,
}

impl Class {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ingest => "ingest",
            Class::Api => "api",
            Class::Webhook => "webhook",
        }
    }
}

/// Who a limit was counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client's IP address.
    Client,
    /// The tenant.
    Tenant,
    /// The client's address after failed authentications.
    AuthFailures,
    /// The tenant's SQL slots.
    SqlSlots,
}

impl Scope {
    /// Metric label and the words of the error message.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Client => "client",
            Scope::Tenant => "tenant",
            Scope::AuthFailures => "auth_failures",
            Scope::SqlSlots => "sql_slots",
        }
    }
}

/// A request turned away by a limit: answer 429 (HTTP) or
/// RESOURCE_EXHAUSTED with `RetryInfo` (gRPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} rate limit exceeded ({}); retry after {retry_after:?}", class.as_str(), describe(*scope))]
pub struct Limited {
    /// Which traffic.
    pub class: Class,
    /// Whose budget ran out.
    pub scope: Scope,
    /// When a retry can succeed.
    pub retry_after: Duration,
}

fn describe(scope: Scope) -> &'static str {
    match scope {
        Scope::Client => "per client address",
        Scope::Tenant => "per tenant",
        Scope::AuthFailures => "too many failed authentications from this address",
        Scope::SqlSlots => "the tenant's SQL statements already running",
    }
}

impl Limited {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// One keyed token bucket.
#[derive(Debug)]
struct Bucket<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    fn new(rate: Rate) -> Option<Self> {
        let per_second = NonZeroU32::new(rate.per_second)?;
        let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
        })
    }

    fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Every limit of the process, shared by the listeners.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    ingest_client: Option<Bucket<IpAddr>>,
    ingest_tenant: Option<Bucket<TenantId>>,
    api_client: Option<Bucket<IpAddr>>,
    api_tenant: Option<Bucket<TenantId>>,
    webhook_client: Option<Bucket<IpAddr>>,
    auth_failures: FailureBackoff,
    sql: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

impl Limits {
    /// Limits as configured.
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            config: config.clone(),
            ingest_client: Bucket::new(config.ingest.per_client),
            ingest_tenant: Bucket::new(config.ingest.per_tenant),
            api_client: Bucket::new(config.api.per_client),
            api_tenant: Bucket::new(config.api.per_tenant),
            webhook_client: Bucket::new(config.webhooks),
            auth_failures: FailureBackoff::new(config.auth_failures),
            sql: Mutex::default(),
        }
    }

    /// No limits at all (tests and embedded uses that limit elsewhere).
    pub fn unlimited() -> Self {
        let off = Rate::new(0, 0);
        let mut config = LimitsConfig::default();
        config.ingest.per_client = off;
        config.ingest.per_tenant = off;
        config.api.per_client = off;
        config.api.per_tenant = off;
        config.webhooks = off;
        config.auth_failures.free = u32::MAX;
        config.sql_concurrency = usize::MAX >> 4;
        Self::new(&config)
    }

    /// The settings these limits were built from.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// The address a request counts against: the connection's, or, when
    /// the connection comes from a trusted proxy, the right-most address
    /// of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<ClientAddr>, headers: &http::HeaderMap) -> Option<IpAddr> {
        let peer = peer?.0.ip();
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let mut client = peer;
        // Hops are appended left to right; read from the nearest.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // A malformed hop: trust nothing beyond it.
                break;
            };
            client = ip;
            if !trusted(&ip) {
                break;
            }
        }
        Some(client)
    }

    /// Counts a request of `class` from `client` (see
    /// [`Limits::client_ip`]) before it is
    /// authenticated: the per-address rate, and the block of an address
    /// that failed authentication too often.
    pub fn admit_client(&self, class: Class, client: Option<IpAddr>) -> Result<(), Limited> {
        let Some(ip) = client else { return Ok(()) };
        let limited = |scope, retry_after| Limited {
            class,
            scope,
            retry_after,
        };
        if let Some(wait) = self.auth_failures.blocked(ip) {
            return Err(limited(Scope::AuthFailures, wait));
        }
        let bucket = match class {
            Class::Ingest => &self.ingest_client,
            Class::Api => &self.api_client,
            Class::Webhook => &self.webhook_client,
        };
        match bucket {
            Some(b) => b.check(&ip).map_err(|w| limited(Scope::Client, w)),
            None => Ok(()),
        }
    }

    /// Counts a request of `class` against its tenant, once authenticated.
    pub fn admit_tenant(&self, class: Class, tenant: &TenantId) -> Result<(), Limited> {
        let bucket = match class {
            Class::Ingest => &self.ingest_tenant,
            Class::Api => &self.api_tenant,
            Class::Webhook => &None,
        };
        match bucket {
            Some(b) => b.check(tenant).map_err(|retry_after| Limited {
                class,
                scope: Scope::Tenant,
                retry_after,
            }),
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `client`.
    pub fn auth_failed(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.auth_failures.failed(ip);
        }
    }

    /// Records a successful authentication from `client` (forgives its
    /// earlier failures).
    pub fn auth_succeeded(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.auth_failures.succeeded(ip);
        }
    }

    /// One of `tenant`'s SQL slots, held while its statement runs; refused
    /// when all are taken.
    pub fn sql_slot(&self, tenant: &TenantId) -> Result<OwnedSemaphorePermit, Limited> {
        let semaphore = {
            let mut map = self.sql.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                map.entry(tenant.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.config.sql_concurrency))),
            )
        };
        semaphore.try_acquire_owned().map_err(|_| Limited {
            class: Class::Api,
            scope: Scope::SqlSlots,
            // A statement is cut off after the SQL timeout; a second is the
            // order of a typical one.
            retry_after: Duration::from_secs(1),
        })
    }

    /// Forgets idle keys (run every minute or so).
    pub fn housekeep(&self) {
        for b in [&self.ingest_client, &self.api_client, &self.webhook_client]
            .into_iter()
            .flatten()
        {
            b.housekeep();
        }
        for b in [&self.ingest_tenant, &self.api_tenant]
            .into_iter()
            .flatten()
        {
            b.housekeep();
        }
        self.auth_failures.housekeep();
        let full = self.config.sql_concurrency;
        self.sql
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.available_permits() < full);
    }
}

/// Open connections per client address on one listener.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounts itself when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// Counts a connection from `ip` unless it already has `max` open.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: Arc::clone(self),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
