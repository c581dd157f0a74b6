//! Any bytes as an OTLP `ExportTraceServiceRequest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    causeway_receiver::otlp::properties::protobuf_request(data);
});
