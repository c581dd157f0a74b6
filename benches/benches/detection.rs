//! Detection cost per series per window: a tenant's detection fed one
//! sealed window of every RED series and graph edge, after its baselines,
//! references and rates are warm; and the same with each operation's
//! self-time window too (as the pipeline feeds it), side by side.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;

use causeway_processor::detect::{DetectSettings, IncidentSettings, TenantDetection};
use causeway_processor::graph::{ConnectionType, EdgeKey};
use causeway_processor::red::RedKey;
use causeway_processor::series::{CellStats, Sealed};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;

const W: i64 = 10_000_000_000;

/// A window of `calls` spans around `ms`, a little spread.
fn hist(calls: u64, ms: u64, salt: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(2).expect("histogram");
    h.auto(true);
    for i in 0..calls {
        h.record(ms * 1000 + ((i * 7919 + salt) % 13) * 90)
            .expect("record");
    }
    h
}

fn stats(h: &Histogram<u64>, errors: u64) -> CellStats {
    CellStats {
        calls: h.len(),
        errors,
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

/// One window of `services` × `ops` server series and `services` edges.
type Window = (
    Vec<Sealed<RedKey>>,
    Vec<Sealed<EdgeKey>>,
    Vec<Sealed<RedKey>>,
);

/// With `self_times`, also every operation's self-time window (a third of
/// its duration: the rest is its callees').
fn window(services: usize, ops: usize, start: i64, calls: u64, self_times: bool) -> Window {
    let mut red = Vec::with_capacity(services * ops);
    let mut selfs = Vec::new();
    let mut edges = Vec::with_capacity(services);
    for s in 0..services {
        let service: Arc<str> = Arc::from(format!("service-{s}"));
        for o in 0..ops {
            let h = hist(
                calls,
                2 + (o as u64 % 5),
                start as u64 / W as u64 + o as u64,
            );
            let key = RedKey {
                service: Arc::clone(&service),
                operation: Arc::from(format!("GET /resource/{o}")),
                kind: 2,
                status: 0,
            };
            if self_times {
                let own = hist(calls, 1 + (o as u64 % 2), start as u64 / W as u64 + 3);
                selfs.push(Sealed {
                    key: key.clone(),
                    start_ns: start,
                    len_ns: W,
                    stats: stats(&own, 0),
                    hist: own,
                });
            }
            red.push(Sealed {
                key,
                start_ns: start,
                len_ns: W,
                stats: stats(&h, 0),
                hist: h,
            });
        }
        let h = hist(calls, 3, s as u64);
        edges.push(Sealed {
            key: EdgeKey {
                client: Arc::clone(&service),
                server: Arc::from(format!("service-{}", (s + 1) % services)),
                connection: ConnectionType::Direct,
            },
            start_ns: start,
            len_ns: W,
            stats: stats(&h, 0),
            hist: h,
        });
    }
    (red, edges, selfs)
}

fn bench(c: &mut Criterion) {
    for (services, ops) in [(10usize, 10usize), (50, 40)] {
        let series = services * ops + services;
        let links: HashSet<(Arc<str>, Arc<str>)> = (0..services)
            .map(|s| {
                (
                    Arc::from(format!("service-{s}")),
                    Arc::from(format!("service-{}", (s + 1) % services)),
                )
            })
            .collect();
        let mut group = c.benchmark_group(format!("detection_{series}_series"));
        group.throughput(Throughput::Elements(series as u64));
        for (name, self_times) in [
            ("observe_one_window", false),
            ("observe_one_window_with_self_times", true),
        ] {
            let mut d =
                TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
            // Two hours of history: baselines full, references and rates
            // learned.
            for i in 0..720 {
                let (red, edges, selfs) = window(services, ops, i * W, 40, self_times);
                d.observe(red, edges, selfs, &links);
            }
            let next = Cell::new(720i64);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        let i = next.get();
                        next.set(i + 1);
                        window(services, ops, i * W, 40, self_times)
                    },
                    |(red, edges, selfs)| d.observe(red, edges, selfs, &links),
                    BatchSize::LargeInput,
                )
            });
            assert!(
                d.incidents().is_empty(),
                "steady synthetic traffic raised {:?}",
                d.incidents()
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
