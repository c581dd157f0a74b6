//! `limits`: request rates, sign-in backoff, SQL concurrency, connection
//! caps and read timeouts, with defaults that a normal deployment never
//! meets and an abusive client meets at once.

use std::time::Duration;

use serde::Deserialize;

use crate::config::Problem;

/// `limits`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// OTLP export requests (`/v1/traces`, gRPC `Export`).
    #[serde(default = "default_ingest")]
    pub ingest: RatePair,
    /// API requests (everything under `/api/v1` and `/metrics`).
    #[serde(default = "default_api")]
    pub api: RatePair,
    /// Webhook deliveries, per client address (the sender signs, so there
    /// is no tenant until the signature is checked).
    #[serde(default = "default_webhooks")]
    pub webhooks: Rate,
    /// Back-off after failed authentication, per client address.
    #[serde(default)]
    pub auth_failures: BackoffConfig,
    /// SQL statements (`POST /api/v1/query`) running at once per tenant.
    #[serde(default = "default_sql_concurrency")]
    pub sql_concurrency: usize,
    /// Connections per listener, and per client address on a listener.
    #[serde(default)]
    pub connections: ConnectionLimits,
    /// How long a client may take to send request headers.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a client may leave a request body idle (no bytes) before
    /// the request is abandoned (slow-body guard).
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// Proxies and load balancers in front (CIDR blocks): for requests
    /// from them, the client address is read from `X-Forwarded-For`
    /// (the right-most address not in these blocks). Empty: the
    /// connection's own address always counts, and the header is ignored
    /// (a client could otherwise name any address it likes).
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            ingest: default_ingest(),
            api: default_api(),
            webhooks: default_webhooks(),
            auth_failures: BackoffConfig::default(),
            sql_concurrency: default_sql_concurrency(),
            connections: ConnectionLimits::default(),
            header_read_timeout: default_header_timeout(),
            body_idle_timeout: default_body_timeout(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A limit per client address and one per tenant.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePair {
    /// Per client IP address.
    pub per_client: Rate,
    /// Per tenant, over all its clients.
    pub per_tenant: Rate,
}

/// A token bucket: `per_second` sustained, `burst` at once. `per_second: 0`
/// turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with `burst`.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// Whether this rate limits anything.
    pub fn enabled(&self) -> bool {
        self.per_second > 0
    }
}

// Ingest: an OpenTelemetry Collector exports batches of up to 8,192 spans
// (its batch processor's default) from a handful of connections, and SDKs
// export every 5 s; 1,000 requests/s from one address is 8 M spans/s, over
// ten times what one causeway instance processes (docs/performance.md), so
// only a client that sends tiny requests in a loop meets it. The burst lets
// a Collector flush its whole sending queue after an outage.
fn default_ingest() -> RatePair {
    RatePair {
        per_client: Rate::new(1_000, 5_000),
        per_tenant: Rate::new(5_000, 20_000),
    }
}

// API: the dashboard makes about ten requests when a page opens and one
// every few seconds after; scripts page through lists. 50/s per address
// with a burst of 200 serves both with room and turns a scraper or a
// key-guessing loop away within a second.
fn default_api() -> RatePair {
    RatePair {
        per_client: Rate::new(50, 200),
        per_tenant: Rate::new(200, 1_000),
    }
}

// Webhooks: a ticketing or chat system delivers one request per event;
// a busy Jira sends a few per second at peak.
fn default_webhooks() -> Rate {
    Rate::new(20, 200)
}

// Two statements per tenant at once: each may scan a tenant's whole span
// history, and the machine has few cores; a third waits for its turn
// (429 if none frees up) instead of starving ingest.
fn default_sql_concurrency() -> usize {
    2
}

// The Collector's own default for `read_header_timeout` is 10 s (confighttp);
// 30 s leaves room for clients on slow links without letting a slowloris
// hold a connection for long.
fn default_header_timeout() -> Duration {
    Duration::from_secs(30)
}

// A body that sends nothing for 30 s is not a slow network: OTLP exporters
// time out after 10 s (the SDKs' OTEL_EXPORTER_OTLP_TIMEOUT default).
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `limits.auth_failures`: after `free` failed attempts from one address,
/// each further failure blocks the address for `initial`, doubling up to
/// `max`; `window` without failures forgives the address.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Failures allowed before blocking (typos, a rotated key).
    #[serde(default = "default_free_failures")]
    pub free: u32,
    /// The first block.
    #[serde(default = "default_initial_block", with = "humantime_serde")]
    pub initial: Duration,
    /// The longest block.
    #[serde(default = "default_max_block", with = "humantime_serde")]
    pub max: Duration,
    /// Quiet time after which an address's failures are forgotten.
    #[serde(default = "default_forgive", with = "humantime_serde")]
    pub window: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            free: default_free_failures(),
            initial: default_initial_block(),
            max: default_max_block(),
            window: default_forgive(),
        }
    }
}

// Ten wrong keys is more than a person mistyping or a fleet rolling a key
// rotation from one NAT address produces; a 256-bit key space is not
// guessable, so the backoff's job is to make a guessing loop pointless and
// visible in the audit trail, not to count exactly.
fn default_free_failures() -> u32 {
    10
}
fn default_initial_block() -> Duration {
    Duration::from_secs(1)
}
// Fifteen minutes: the usual lockout of sign-in forms (OWASP's
// authentication cheat sheet suggests minutes, not hours, so a locked-out
// legitimate user is not denied for long).
fn default_max_block() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_forgive() -> Duration {
    Duration::from_secs(15 * 60)
}

/// `limits.connections`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections per listener.
    #[serde(default = "default_max_connections")]
    pub max: usize,
    /// Open connections per client address on one listener.
    #[serde(default = "default_max_per_client")]
    pub per_client: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: default_max_connections(),
            per_client: default_max_per_client(),
        }
    }
}

// Each connection costs a task and hyper's buffers (tens of KiB); 10,000
// stays well inside the default 1,048,576 file descriptors of a container
// and a few hundred MiB at worst, while a gateway serving thousands of SDKs
// keeps one connection each.
fn default_max_connections() -> usize {
    10_000
}
// A Collector opens one gRPC connection (or a few with `balancer_name`);
// an SDK one. 256 from one address leaves room for a NAT in front of many
// pods and stops one host from taking every slot.
fn default_max_per_client() -> usize {
    256
}

impl LimitsConfig {
    /// Appends the problems of this section.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        let mut rate = |field: &str, r: &Rate| {
            if r.enabled() && r.burst == 0 {
                problems.push(Problem::new(
                    format!("{path}.{field}.burst"),
                    "must be at least 1 when per_second is set (0 per_second turns the limit off)",
                ));
            }
        };
        rate("ingest.per_client", &self.ingest.per_client);
        rate("ingest.per_tenant", &self.ingest.per_tenant);
        rate("api.per_client", &self.api.per_client);
        rate("api.per_tenant", &self.api.per_tenant);
        rate("webhooks", &self.webhooks);
        if self.sql_concurrency == 0 {
            problems.push(Problem::new(
                format!("{path}.sql_concurrency"),
                "must be at least 1",
            ));
        }
        if self.connections.max == 0 || self.connections.per_client == 0 {
            problems.push(Problem::new(
                format!("{path}.connections"),
                "max and per_client must be at least 1",
            ));
        }
        let b = &self.auth_failures;
        if b.initial.is_zero() || b.max < b.initial || b.window.is_zero() {
            problems.push(Problem::new(
                format!("{path}.auth_failures"),
                "initial and window must be positive and max at least initial",
            ));
        }
        if self.header_read_timeout.is_zero() || self.body_idle_timeout.is_zero() {
            problems.push(Problem::new(
                path,
                "header_read_timeout and body_idle_timeout must be positive",
            ));
        }
    }
}
