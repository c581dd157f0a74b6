//! Any bytes as an OTLP/JSON body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    causeway_receiver::otlp::properties::json_request(data);
});
