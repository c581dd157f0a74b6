//! Any bytes as a gzip, deflate or zstd body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    causeway_receiver::otlp::properties::compressed_body(data, 1 << 20);
});
