//! What a checkpoint costs the processor's thread on each backend: one
//! `save_checkpoint` of changed series cells and catalog rows (the
//! processor waits for it), DuckDB file against PostgreSQL at
//! 127.0.0.1:5432 (`CAUSEWAY_TEST_PG_URL` elsewhere), side by side in one
//! run, and reading every cell back (what a start does).

use causeway_model::TenantId;
use causeway_store::{CellRow, DuckDbStore, Family, PgSettings, PgStore, ServiceRow, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn cells(n: usize, round: u64) -> Vec<CellRow> {
    let tenant = TenantId::new("acme").expect("tenant");
    (0..n)
        .map(|i| CellRow {
            tenant: tenant.clone(),
            family: Family::Red,
            a: format!("service-{}", i % 50),
            b: format!("GET /route/{}", i / 50),
            c: 2,
            d: 0,
            resolution: 0,
            start_ns: 1_700_000_000_000_000_000,
            calls: round,
            errors: 0,
            // A serialized HDR histogram of a few buckets is about this big.
            hist: vec![7; 120],
            handed_on: false,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("causeway-bench-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let url = std::env::var("CAUSEWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_ckpt_{}", std::process::id());
    let mut stores: Vec<(&str, Box<dyn Store>)> = vec![
        (
            "duckdb",
            Box::new(DuckDbStore::open(&dir.join("causeway.duckdb")).expect("duckdb")),
        ),
        (
            "postgres",
            Box::new(
                PgStore::connect(&PgSettings {
                    url: url.clone(),
                    instance: "bench".into(),
                    schema: Some(schema.clone()),
                })
                .expect("PostgreSQL"),
            ),
        ),
    ];
    let services = vec![ServiceRow {
        tenant: TenantId::new("acme").expect("tenant"),
        name: "service-0".into(),
        spans: 1,
        errors: 0,
        first_ns: 1,
        last_ns: 2,
    }];
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(20);
    for n in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        for (name, store) in &mut stores {
            let mut round = 0u64;
            g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, &n| {
                b.iter(|| {
                    round += 1;
                    // The same keys each round: upserts, as checkpoints are.
                    store
                        .save_checkpoint(&cells(n, round), &services, None)
                        .expect("checkpoint");
                });
            });
        }
    }
    for (name, store) in &stores {
        g.bench_function(BenchmarkId::new(format!("load_{name}"), 10_000), |b| {
            b.iter(|| store.load_cells().expect("load"));
        });
    }
    g.finish();
    drop(stores);
    let _ = std::process::Command::new("psql")
        .args([
            &url,
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .status();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
