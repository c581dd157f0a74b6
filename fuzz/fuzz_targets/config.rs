//! Any text as `causeway.yaml`: a config or a list of problems, never a
//! panic.
#![no_main]

use causeway_app::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse("fuzz.yaml", text, &|name| match name {
        "SET" => Some("4317".to_owned()),
        _ => None,
    });
});
