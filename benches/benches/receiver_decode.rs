//! Decode → internal representation, per span.
//!
//! `wire_scan` is causeway's ingest path (validate structure and ids, count
//! spans and errors per service, no per-span allocation); `prost_decode` is
//! what a receiver built on generated prost types (Rotel, tonic's default)
//! does with the same bytes; `json_to_protobuf` is the OTLP/JSON path.
//! Throughput is in spans, so criterion prints spans/s directly.

use causeway_benches::{Workload, WorkloadConfig, span_count};
use causeway_receiver::otlp::body::json_to_protobuf;
use causeway_receiver::otlp::wire::scan_request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn bench(c: &mut Criterion) {
    let mut workload = Workload::new(WorkloadConfig::default());
    let request = workload.batch(1000);
    let spans: u64 = span_count(&request);
    let bytes = request.encode_to_vec();
    let json = serde_json::to_vec(&request).expect("json");

    let mut group = c.benchmark_group("decode_1000_span_request");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("wire_scan", |b| {
        b.iter(|| scan_request(std::hint::black_box(&bytes)).expect("valid"))
    });
    group.bench_function("prost_decode", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(std::hint::black_box(bytes.as_slice()))
                .expect("valid")
        })
    });
    group.bench_function("json_to_protobuf", |b| {
        b.iter(|| json_to_protobuf(std::hint::black_box(&json)).expect("valid"))
    });
    group.finish();

    // One span per resource, each resource another service: the cost must
    // stay linear in the request (a hostile client's cheapest lever on the
    // per-service bookkeeping).
    let mut group = c.benchmark_group("decode_20000_services_request");
    let many = many_services(&mut workload, 20_000);
    group.throughput(Throughput::Elements(span_count(&many)));
    let many = many.encode_to_vec();
    group.sample_size(20);
    group.bench_function("wire_scan", |b| {
        b.iter(|| scan_request(std::hint::black_box(&many)).expect("valid"))
    });
    group.bench_function("prost_decode", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(std::hint::black_box(many.as_slice())).expect("valid")
        })
    });
    group.finish();
}

/// `n` resources of one span each, every one naming its own service.
fn many_services(workload: &mut Workload, n: usize) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
    let mut template = workload.batch(1).resource_spans.remove(0);
    template.scope_spans.truncate(1);
    template.scope_spans[0].spans.truncate(1);
    let mut req = ExportTraceServiceRequest::default();
    for i in 0..n {
        let mut rs = template.clone();
        if let Some(kv) = rs
            .resource
            .as_mut()
            .and_then(|r| r.attributes.iter_mut().find(|kv| kv.key == "service.name"))
        {
            kv.value = Some(AnyValue {
                value: Some(Value::StringValue(format!("svc-{i}"))),
            });
        }
        req.resource_spans.push(rs);
    }
    req
}

criterion_group!(benches, bench);
criterion_main!(benches);
