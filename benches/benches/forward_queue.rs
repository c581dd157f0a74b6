//! What forwarding adds per accepted request: appending it to an
//! endpoint's on-disk queue (the receiver's task pays this), and reading it
//! back and acknowledging it (the sender pays this), side by side with the
//! receiver's own validation scan of the same request, so the cost reads
//! as a ratio.

use std::sync::Arc;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig, span_count};
use causeway_receiver::otlp::wire::scan_request;
use causeway_store::queue::{DiskQueue, Kind};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

fn bench(c: &mut Criterion) {
    let req = Workload::new(WorkloadConfig::default()).batch(1_000);
    let spans = span_count(&req);
    let payload = Bytes::from(req.encode_to_vec());
    let dir = std::env::temp_dir().join(format!("causeway-bench-fq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Large enough never to fill: each iteration takes out what it put in.
    let queue = Arc::new(DiskQueue::open(&dir, 1 << 30).expect("queue"));

    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(spans));
    g.bench_function(format!("receiver_scan/{spans}_spans"), |b| {
        b.iter(|| scan_request(&payload).expect("valid"));
    });
    g.bench_function(format!("queue_append/{spans}_spans"), |b| {
        b.iter(|| {
            queue
                .append(Kind::Traces, spans as u32, &payload)
                .expect("append");
            // Keep the queue from growing without bound across iterations.
            if queue.held_bytes() > 256 << 20 {
                while let Some(r) = queue.peek().expect("peek") {
                    queue.ack(r.next).expect("ack");
                }
            }
        });
    });
    while let Some(r) = queue.peek().expect("peek") {
        queue.ack(r.next).expect("ack");
    }
    g.bench_function(format!("queue_append_peek_ack/{spans}_spans"), |b| {
        b.iter(|| {
            queue
                .append(Kind::Traces, spans as u32, &payload)
                .expect("append");
            let r = queue.peek().expect("peek").expect("a record");
            queue.ack(r.next).expect("ack");
        });
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
