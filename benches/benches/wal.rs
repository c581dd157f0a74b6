//! What the write-ahead log adds per accepted request, side by side with
//! the receiver's own validation scan of the same request (the cost reads
//! as a ratio): an append under each fsync policy, and an append with its
//! release (what a checkpoint does for each record).

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig, span_count};
use causeway_model::{TenantId, Transport};
use causeway_receiver::otlp::wire::scan_request;
use causeway_store::wal::{Fsync, Wal};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

fn bench(c: &mut Criterion) {
    let req = Workload::new(WorkloadConfig::default()).batch(1_000);
    let spans = span_count(&req);
    let payload = Bytes::from(req.encode_to_vec());
    let tenant = TenantId::new("acme").expect("tenant");
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(spans));
    g.bench_function(format!("receiver_scan/{spans}_spans"), |b| {
        b.iter(|| scan_request(&payload).expect("valid"));
    });
    for (name, fsync) in [
        ("never", Fsync::Never),
        (
            "interval_1s",
            Fsync::Interval(std::time::Duration::from_secs(1)),
        ),
        ("always", Fsync::Always),
    ] {
        let dir =
            std::env::temp_dir().join(format!("causeway-bench-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wal = Wal::open(&dir, 1 << 30, fsync).expect("wal");
        g.bench_function(format!("append_{name}/{spans}_spans"), |b| {
            b.iter(|| {
                let mark = wal
                    .append(&tenant, Transport::Grpc, spans, &payload)
                    .expect("append");
                // `interval`'s background sync, at most once a second.
                wal.sync_due().expect("sync");
                // What a checkpoint does: release up to the mark (here
                // every record, so the log never grows).
                if wal.held_bytes() > 256 << 20 {
                    wal.release(mark).expect("release");
                }
            });
        });
        drop(wal);
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
