// Sends spans with the OpenTelemetry JS SDK's OTLP exporters.
//
// usage: node node_sdk.mjs GRPC_ADDR HTTP_ADDR N
// Emits N spans each as node-grpc (OTLP/gRPC), node-http-json (OTLP/HTTP
// JSON) and node-http-proto (OTLP/HTTP protobuf); every 10th is an ERROR.
import { SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';

async function emit(exporter, service, n) {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512, maxQueueSize: 100000 })],
  });
  const tracer = provider.getTracer('causeway-e2e');
  for (let i = 0; i < n; i++) {
    const span = tracer.startSpan(`op-${i % 3}`);
    span.setAttribute('http.route', '/items/{id}');
    if (i % 10 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    span.end();
  }
  await provider.forceFlush();
  await provider.shutdown();
}

const [grpcAddr, httpAddr, count] = process.argv.slice(2);
const n = Number(count);
await emit(new GrpcExporter({ url: `http://${grpcAddr}`, compression: 'gzip' }), 'node-grpc', n);
await emit(new JsonExporter({ url: `http://${httpAddr}/v1/traces` }), 'node-http-json', n);
await emit(new ProtoExporter({ url: `http://${httpAddr}/v1/traces` }), 'node-http-proto', n);
