//! OTLP bytes → Arrow span batch, per span (the processor's first step).

use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::TenantId;
use causeway_processor::kernels::otlp_to_arrow::otlp_to_arrow;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

fn bench(c: &mut Criterion) {
    let request = Workload::new(WorkloadConfig::default()).batch(1000);
    let spans: u64 = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum();
    let bytes = request.encode_to_vec();
    let tenant = TenantId::default_tenant();
    let mut group = c.benchmark_group("processor_1000_span_request");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("otlp_to_arrow", |b| {
        b.iter(|| otlp_to_arrow(&tenant, std::hint::black_box(&bytes)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
