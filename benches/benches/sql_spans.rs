//! SQL over stored spans: ten million spans written as Parquet through the
//! span store, then aggregated through the same engine `POST /api/v1/query`
//! uses. Set `CAUSEWAY_BENCH_SPANS` to change the count.

use std::time::{Duration, Instant};

use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::TenantId;
use causeway_processor::config::{SpansConfig, StorageSettings};
use causeway_processor::kernels::otlp_to_arrow::otlp_to_arrow;
use causeway_processor::persist::Persistence;
use causeway_processor::{ProcessorStage, QueryHandle, SqlConfig, SqlEngine};
use causeway_store::{SpanStore, SpanStoreSettings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

fn bench(c: &mut Criterion) {
    let want: u64 = std::env::var("CAUSEWAY_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = std::env::temp_dir().join(format!("causeway-bench-sql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tenant = TenantId::default_tenant();

    // Write the spans.
    let started = Instant::now();
    let mut store = SpanStore::open(
        &dir.join("spans"),
        SpanStoreSettings {
            flush_rows: 1 << 20,
        },
    )
    .expect("span store");
    let mut workload = Workload::new(WorkloadConfig::default());
    let mut written = 0u64;
    while written < want {
        let req = workload.batch(1000).encode_to_vec();
        let batch = otlp_to_arrow(&tenant, &req).expect("valid");
        written += batch.num_rows() as u64;
        store.append(&tenant, batch).expect("append");
    }
    store.flush_and_wait().expect("flush");
    let files = store.files(&tenant).expect("files");
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "wrote {written} spans in {} Parquet files, {:.1} MiB ({:.1} bytes/span), in {:.1} s",
        files.len(),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / written as f64,
        started.elapsed().as_secs_f64()
    );
    drop(store);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (_data, rx) = tokio::sync::mpsc::channel(1);
    let (qtx, qrx) = tokio::sync::mpsc::channel(4);
    let persist = Persistence::open(StorageSettings::new(dir.clone())).expect("persistence");
    let stage = ProcessorStage::new(rx, qrx, SpansConfig::default(), persist).expect("stage");
    runtime.spawn(stage.run());
    let sql = SqlConfig {
        threads: 2,
        timeout: Duration::from_secs(600),
        memory_limit_mib: 2048,
        ..SqlConfig::default()
    };
    let engine = runtime
        .block_on(async { SqlEngine::start(QueryHandle::new(qtx), sql) })
        .expect("engine");

    let mut group = c.benchmark_group(format!("sql_over_{written}_stored_spans"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(written));
    let queries = [
        ("count", "SELECT count(*) FROM spans"),
        (
            "red_by_operation",
            "SELECT service_name, span_name, count(*) AS calls, \
             sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors, \
             avg(duration_ns) / 1e6 AS avg_ms, \
             approx_percentile_cont(duration_ns, 0.99) / 1e6 AS p99_ms \
             FROM spans GROUP BY 1, 2 ORDER BY calls DESC",
        ),
        (
            "errors_by_exception",
            "SELECT service_name, exception_type, count(*) FROM spans \
             WHERE exception_type IS NOT NULL GROUP BY 1, 2",
        ),
    ];
    for (name, q) in queries {
        let first = runtime
            .block_on(engine.query(tenant.clone(), q.to_owned()))
            .expect("query");
        eprintln!("{name}: {} row(s)", first.rows());
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(engine.query(tenant.clone(), q.to_owned()))
                    .expect("query")
            })
        });
    }
    group.finish();
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
