"""Sends spans with the OpenTelemetry Python SDK's OTLP exporters.

usage: python_sdk.py GRPC_ADDR HTTP_ADDR N
Emits N spans as service py-grpc (OTLP/gRPC, gzip) and N as py-http
(OTLP/HTTP protobuf); every 10th span has status ERROR.
"""
import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def emit(exporter, service, n):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    tracer = provider.get_tracer("causeway-e2e")
    for i in range(n):
        with tracer.start_as_current_span(f"op-{i % 3}") as span:
            span.set_attribute("http.route", "/items/{id}")
            if i % 10 == 0:
                span.set_status(Status(StatusCode.ERROR, "boom"))
    assert provider.force_flush(30_000), "flush timed out"
    provider.shutdown()


def main():
    grpc_addr, http_addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    emit(GrpcExporter(endpoint=f"http://{grpc_addr}", insecure=True, compression=GrpcCompression.Gzip), "py-grpc", n)
    emit(HttpExporter(endpoint=f"http://{http_addr}/v1/traces"), "py-http", n)


if __name__ == "__main__":
    main()
