//! What the gate adds to every request: rate limits per client address and
//! tenant, the failed-authentication check and API-key authentication,
//! against authentication alone, side by side with the wire scan of a
//! typical 100-span request, so each cost reads as a ratio; and what the
//! redaction pass costs per log line or signal text.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::NoAudit;
use causeway_model::redact::redact;
use causeway_receiver::otlp::wire::scan_request;
use causeway_server::config::ApiKeyConfig;
use causeway_server::{Authenticator, Class, ClientAddr, Gate, Limits, LimitsConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use prost::Message;
use sha2::Digest;

fn bench(c: &mut Criterion) {
    let keys: Vec<ApiKeyConfig> = (0..10)
        .map(|i| ApiKeyConfig {
            tenant: causeway_model::TenantId::new(&format!("tenant{i}")).expect("tenant"),
            key_sha256: sha2::Sha256::digest(format!("key-{i}").as_bytes()).into(),
        })
        .collect();
    let auth = Arc::new(Authenticator::new(&keys));
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer key-7".parse().expect("header"));
    // Rates high enough that the benchmark's own loop never meets them:
    // the cost measured is the check, not a refusal.
    let mut config = LimitsConfig::default();
    config.ingest.per_client = causeway_server::limits::Rate::new(u32::MAX, u32::MAX);
    config.ingest.per_tenant = causeway_server::limits::Rate::new(u32::MAX, u32::MAX);
    let limited = Gate::new(
        Arc::clone(&auth),
        Arc::new(Limits::new(&config)),
        Arc::new(NoAudit),
    );
    let open = Gate::open(Arc::clone(&auth));
    let client = Some(ClientAddr(
        "10.1.2.3:40000".parse::<SocketAddr>().expect("addr"),
    ));
    let payload = Bytes::from(
        Workload::new(WorkloadConfig::default())
            .batch(100)
            .encode_to_vec(),
    );

    let mut g = c.benchmark_group("gate");
    g.bench_function("scan_100_span_request", |b| {
        b.iter(|| scan_request(&payload).expect("valid"));
    });
    g.bench_function("authenticate_only", |b| {
        b.iter(|| {
            open.admit(Class::Ingest, client, &headers)
                .expect("admitted")
        });
    });
    g.bench_function("limits_and_authenticate", |b| {
        b.iter(|| {
            limited
                .admit(Class::Ingest, client, &headers)
                .expect("admitted")
        });
    });
    g.finish();

    let plain =
        "checkout p99 rose from 120 ms to 2.1 s after deploy 4f2a9c1 of payments (PROJ-1234)";
    let secret = "sync failed for ops@example.com: Authorization: Bearer abcdef123456, retry";
    let mut g = c.benchmark_group("redact");
    g.bench_function("line_without_secrets", |b| {
        b.iter(|| redact(std::hint::black_box(plain)))
    });
    g.bench_function("line_with_email_and_token", |b| {
        b.iter(|| redact(std::hint::black_box(secret)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
