//! The processor's per-span work: OTLP bytes → Arrow span batch, then RED
//! series and the service graph.

use causeway_benches::{Workload, WorkloadConfig, span_count};
use causeway_model::TenantId;
use causeway_model::schema::span_schema;
use causeway_processor::config::SpansConfig;
use causeway_processor::graph::GraphState;
use causeway_processor::kernels::otlp_to_arrow::otlp_to_arrow;
use causeway_processor::red;
use causeway_processor::series::SeriesSet;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use prost::Message;

fn bench(c: &mut Criterion) {
    let mut workload = Workload::new(WorkloadConfig::default());
    let requests: Vec<Vec<u8>> = (0..64)
        .map(|_| workload.batch(1000).encode_to_vec())
        .collect();
    let spans = {
        let r = Workload::new(WorkloadConfig::default()).batch(1000);
        span_count(&r)
    };
    let tenant = TenantId::default_tenant();
    let config = SpansConfig::default();
    let mut group = c.benchmark_group("processor_1000_span_request");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("otlp_to_arrow", |b| {
        b.iter(|| otlp_to_arrow(&tenant, std::hint::black_box(&requests[0])).expect("valid"))
    });
    let batches: Vec<_> = requests
        .iter()
        .map(|r| otlp_to_arrow(&tenant, r).expect("valid"))
        .collect();
    group.bench_function("red_record_batch", |b| {
        let mut set = SeriesSet::new(config.red_settings());
        let mut i = 0;
        b.iter(|| {
            red::record_batch(&mut set, &batches[i % batches.len()]).expect("record");
            i += 1;
        })
    });
    group.finish();
    // Pairing needs a realistic store: each iteration replays 4 requests
    // into a fresh one.
    let mut group = c.benchmark_group("processor_4000_span_requests");
    group.throughput(Throughput::Elements(4 * spans));
    group.bench_function("graph_record_batch", |b| {
        b.iter_batched(
            || {
                (
                    SeriesSet::new(config.edge_settings()),
                    SeriesSet::new(config.red_settings()),
                    GraphState::new(config.graph_settings()),
                )
            },
            |(mut edges, mut self_time, mut graph)| {
                for batch in &batches[..4] {
                    graph.record_batch(&mut edges, batch).expect("record");
                    red::record_self_times(&mut self_time, graph.take_self_times());
                }
                // Every span's self time is final once it leaves the store.
                graph.flush(&mut edges);
                red::record_self_times(&mut self_time, graph.take_self_times());
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    // Span files: 64 requests (one file's worth at the default flush size
    // is 65,536 spans) written to memory with the store's settings, and
    // with plain ZSTD settings (dictionaries and statistics on every
    // column) side by side.
    let mut group = c.benchmark_group("span_file_64_requests");
    group.throughput(Throughput::Elements(64 * spans));
    let write = |props: WriterProperties| {
        let mut out = Vec::with_capacity(4 << 20);
        let mut w = ArrowWriter::try_new(&mut out, span_schema(), Some(props)).expect("writer");
        for b in &batches {
            w.write(b).expect("write");
        }
        w.close().expect("close");
        out.len()
    };
    eprintln!(
        "span file bytes: store settings {}, plain {}",
        write(causeway_store::span_writer_props()),
        write(plain_props())
    );
    group.bench_function("store_settings", |b| {
        b.iter(|| write(causeway_store::span_writer_props()))
    });
    group.bench_function("plain_zstd", |b| b.iter(|| write(plain_props())));
    group.finish();
}

fn plain_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

criterion_group!(benches, bench);
criterion_main!(benches);
