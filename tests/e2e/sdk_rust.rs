//! The OpenTelemetry Rust SDK's OTLP exporters (gRPC/tonic, HTTP protobuf,
//! HTTP JSON) deliver every span, counted exactly.

use opentelemetry::trace::{Span, Status, Tracer, TracerProvider};
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use crate::harness::Server;

/// Emits `n` spans (every 10th an error) through `exporter`, then flushes.
fn emit(exporter: SpanExporter, service: &str, n: usize) {
    // The SDK drops spans beyond its queue (2048 by default) when they are
    // produced faster than exported; size it so the client loses nothing.
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(n + 1)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("causeway-e2e");
    for i in 0..n {
        let mut span = tracer.start(format!("op-{}", i % 3));
        span.set_attribute(opentelemetry::KeyValue::new("http.route", "/items/{id}"));
        if i % 10 == 0 {
            span.set_status(Status::error("boom"));
        }
        span.end();
    }
    provider.force_flush().expect("flush");
    provider.shutdown().expect("shutdown");
}

#[test]
fn grpc_http_protobuf_and_http_json_deliver_every_span() {
    let server = Server::start("");
    let grpc_endpoint = format!("http://{}", server.grpc);
    let http_endpoint = format!("http://{}/v1/traces", server.http);

    // tonic needs a runtime for its channel; build the exporter inside it.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let grpc = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&grpc_endpoint)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build()
            .expect("grpc exporter");
        tokio::task::spawn_blocking(move || emit(grpc, "sdk-grpc", 1234))
            .await
            .expect("emit");
    });
    let proto = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&http_endpoint)
        .build()
        .expect("http exporter");
    emit(proto, "sdk-http-proto", 2345);
    let json = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .with_endpoint(&http_endpoint)
        .build()
        .expect("http json exporter");
    emit(json, "sdk-http-json", 777);

    let services = rt.block_on(server.services(None));
    assert_eq!(services.get("sdk-grpc"), Some(&(1234, 124)), "{services:?}");
    assert_eq!(
        services.get("sdk-http-proto"),
        Some(&(2345, 235)),
        "{services:?}"
    );
    assert_eq!(
        services.get("sdk-http-json"),
        Some(&(777, 78)),
        "{services:?}"
    );
}
