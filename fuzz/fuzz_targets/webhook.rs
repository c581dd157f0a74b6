//! Any bytes as a verified webhook payload of each system: refused or
//! read into records, never a panic.
#![no_main]

use causeway_connectors::webhook::{Source, parse};
use causeway_model::TenantId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let source = Source::ALL[usize::from(which) % Source::ALL.len()];
    let tenant = TenantId::new("acme").expect("tenant");
    let event = (which & 0x80 != 0).then_some("push");
    let _ = parse(source, "fuzz", &tenant, event, body, 1_700_000_000_000_000_000);
});
