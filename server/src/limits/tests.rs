use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::backoff::block_for;
use super::config::BackoffConfig;
use super::*;

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("valid tenant")
}

#[test]
fn a_client_over_its_burst_is_limited_and_others_are_not() {
    let mut config = LimitsConfig::default();
    config.api.per_client = Rate::new(1, 3);
    let limits = Limits::new(&config);
    for _ in 0..3 {
        limits
            .admit_client(Class::Api, ip(1))
            .expect("within burst");
    }
    let limited = limits.admit_client(Class::Api, ip(1)).expect_err("over");
    assert_eq!(limited.scope, Scope::Client);
    assert!(limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_secs(1));
    assert_eq!(limited.retry_after_secs(), 1);
    limits
        .admit_client(Class::Api, ip(2))
        .expect("another address");
    // Ingest has its own budget.
    limits
        .admit_client(Class::Ingest, ip(1))
        .expect("other class");
    // Without an address (a Unix socket, a test) nothing is counted.
    for _ in 0..10 {
        limits.admit_client(Class::Api, None).expect("no address");
    }
}

#[test]
fn tenants_have_separate_budgets() {
    let mut config = LimitsConfig::default();
    config.ingest.per_tenant = Rate::new(1, 2);
    let limits = Limits::new(&config);
    let (a, b) = (tenant("acme"), tenant("globex"));
    limits.admit_tenant(Class::Ingest, &a).expect("1");
    limits.admit_tenant(Class::Ingest, &a).expect("2");
    let e = limits.admit_tenant(Class::Ingest, &a).expect_err("3");
    assert_eq!(e.scope, Scope::Tenant);
    assert!(e.to_string().contains("per tenant"), "{e}");
    limits
        .admit_tenant(Class::Ingest, &b)
        .expect("other tenant");
}

#[test]
fn zero_per_second_turns_a_limit_off() {
    let limits = Limits::unlimited();
    for _ in 0..10_000 {
        limits.admit_client(Class::Api, ip(1)).expect("off");
        limits
            .admit_tenant(Class::Ingest, &tenant("a"))
            .expect("off");
    }
}

#[test]
fn failed_authentications_block_the_address_with_growing_waits() {
    let config = BackoffConfig {
        free: 3,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
        window: Duration::from_secs(60),
    };
    let b = FailureBackoff::new(config);
    let addr = ip(7).expect("ip");
    let t0 = Instant::now();
    for _ in 0..3 {
        b.failed_at(addr, t0);
        assert_eq!(b.blocked_at(addr, t0), None, "free failures");
    }
    b.failed_at(addr, t0);
    assert_eq!(b.blocked_at(addr, t0), Some(Duration::from_secs(1)));
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(b.blocked_at(addr, t1), None, "the first block ended");
    b.failed_at(addr, t1);
    assert_eq!(b.blocked_at(addr, t1), Some(Duration::from_secs(2)));
    // Other addresses are untouched.
    assert_eq!(b.blocked_at(ip(8).expect("ip"), t1), None);
    // A quiet window forgives.
    let later = t1 + Duration::from_secs(120);
    b.failed_at(addr, later);
    assert_eq!(b.blocked_at(addr, later), None);
    // A success forgives too.
    for _ in 0..5 {
        b.failed_at(addr, later);
    }
    assert!(b.blocked_at(addr, later).is_some());
    b.succeeded(addr);
    assert_eq!(b.blocked_at(addr, later), None);
}

#[test]
fn blocks_double_up_to_the_cap_without_overflow() {
    let s = Duration::from_secs;
    assert_eq!(block_for(1, s(1), s(900)), s(1));
    assert_eq!(block_for(2, s(1), s(900)), s(2));
    assert_eq!(block_for(5, s(1), s(900)), s(16));
    assert_eq!(block_for(20, s(1), s(900)), s(900));
    assert_eq!(block_for(u32::MAX, s(1), s(900)), s(900));
    assert_eq!(
        block_for(u32::MAX, Duration::MAX, Duration::MAX),
        Duration::MAX
    );
}

#[test]
fn limits_admit_client_applies_the_auth_block_to_every_class() {
    let mut config = LimitsConfig::default();
    config.auth_failures.free = 1;
    let limits = Limits::new(&config);
    limits.auth_failed(ip(3));
    limits
        .admit_client(Class::Api, ip(3))
        .expect("one free failure");
    limits.auth_failed(ip(3));
    for class in [Class::Api, Class::Ingest, Class::Webhook] {
        let e = limits.admit_client(class, ip(3)).expect_err("blocked");
        assert_eq!(e.scope, Scope::AuthFailures);
    }
    limits
        .admit_client(Class::Api, ip(4))
        .expect("other address");
}

#[test]
fn sql_slots_are_per_tenant_and_come_back() {
    let config = LimitsConfig {
        sql_concurrency: 1,
        ..LimitsConfig::default()
    };
    let limits = Limits::new(&config);
    let a = limits.sql_slot(&tenant("a")).expect("first");
    let e = limits.sql_slot(&tenant("a")).expect_err("taken");
    assert_eq!(e.scope, Scope::SqlSlots);
    let _b = limits.sql_slot(&tenant("b")).expect("other tenant");
    drop(a);
    let _again = limits.sql_slot(&tenant("a")).expect("freed");
    limits.housekeep();
}

#[test]
fn connection_counts_cap_one_address() {
    let counts = std::sync::Arc::new(ConnectionCounts::default());
    let a = ip(1).expect("ip");
    let first = counts.try_open(a, 2).expect("1");
    let _second = counts.try_open(a, 2).expect("2");
    assert!(counts.try_open(a, 2).is_none());
    assert!(counts.try_open(ip(2).expect("ip"), 2).is_some());
    drop(first);
    assert_eq!(counts.open(a), 1);
    assert!(counts.try_open(a, 2).is_some());
}

#[test]
fn bad_settings_are_reported() {
    let mut config = LimitsConfig::default();
    config.api.per_client = Rate::new(5, 0);
    config.sql_concurrency = 0;
    config.connections.per_client = 0;
    config.auth_failures.max = Duration::ZERO;
    let mut problems = Vec::new();
    config.validate("limits", &mut problems);
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "limits.api.per_client.burst",
            "limits.sql_concurrency",
            "limits.connections",
            "limits.auth_failures"
        ]
    );
    let mut problems = Vec::new();
    LimitsConfig::default().validate("limits", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let peer = |s: &str| Some(ClientAddr(s.parse().expect("addr")));
    let headers = |xff: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().expect("header"));
        h
    };
    let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
    // Without trusted proxies the header is ignored: a client could name
    // any address.
    let open = Limits::new(&LimitsConfig::default());
    assert_eq!(
        open.client_ip(peer("203.0.113.5:1000"), &headers("1.2.3.4")),
        ip("203.0.113.5")
    );
    let config = LimitsConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")],
        ..LimitsConfig::default()
    };
    let behind = Limits::new(&config);
    // The right-most untrusted hop is the client; what it claims to its
    // left is not believed.
    assert_eq!(
        behind.client_ip(
            peer("10.0.0.2:1000"),
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.9")
        ),
        ip("198.51.100.7")
    );
    // A direct client's header is ignored.
    assert_eq!(
        behind.client_ip(peer("198.51.100.8:1000"), &headers("6.6.6.6")),
        ip("198.51.100.8")
    );
    // A malformed hop stops the walk at the last good address.
    assert_eq!(
        behind.client_ip(peer("10.0.0.2:1000"), &headers("garbage")),
        ip("10.0.0.2")
    );
    assert_eq!(behind.client_ip(None, &headers("1.2.3.4")), None);
}
