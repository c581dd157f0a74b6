//! A zero-copy walk over an `ExportTraceServiceRequest` in protobuf encoding.
//!
//! The ingest path needs three things from a request: is it well-formed, which
//! spans have invalid ids, and how many spans (and errors) each service sent.
//! Decoding into prost structs answers all three but allocates a `String` or
//! `Vec` for every id, name and attribute of every span; that allocation is
//! most of the CPU an OTLP receiver spends. This module answers the same
//! questions by walking the bytes once, validating the structure of every
//! message the OTLP trace schema defines (tags, wire types, lengths, nesting),
//! and allocating only one `String` per distinct service name.
//!
//! What it deliberately does not check: UTF-8 validity of strings other than
//! `service.name`. Downstream stages decode strings lossily, as the
//! OpenTelemetry Collector does.
//!
//! Field numbers are those of opentelemetry-proto's `trace.proto`,
//! `resource.proto` and `common.proto` (v1).

use std::collections::HashMap;

use causeway_model::ServiceCount;
use causeway_model::wire::{I32, I64, LEN, Reader, VARINT, expect};
pub use causeway_model::wire::{MAX_DEPTH, WireError, id_problem};

/// What a walk over a request found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Spans with valid ids.
    pub spans: u64,
    /// Spans with invalid ids.
    pub invalid: u64,
    /// A description of the first few invalid spans.
    pub invalid_reasons: Vec<String>,
    /// Per-service counts of the valid spans.
    pub services: Vec<ServiceCount>,
}

/// How many invalid-span reasons a scan keeps for the error message.
const MAX_REASONS: usize = 3;

/// Walks a whole request. `Ok` means the request is well-formed; individual
/// spans may still be invalid (see [`Scan::invalid`]).
pub fn scan_request(buf: &[u8]) -> Result<Scan, WireError> {
    let mut scan = Scan::default();
    // Where each service's counts are in `scan.services`: a request whose
    // every resource names another service costs a hash lookup per
    // resource, not a search through those seen before (a 12 MiB request
    // of 150,000 services took 20 s of CPU with the search). SipHash: the
    // names are the client's, chosen to collide if they could.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut r = Reader::new(buf);
    let mut resource_index = 0usize;
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 {
            expect(wire, LEN, "ExportTraceServiceRequest", "resource_spans")?;
            let rs = r.bytes("resource_spans")?;
            scan_resource_spans(rs, resource_index, &mut scan, &mut index)?;
            resource_index += 1;
        } else {
            r.skip(wire)?;
        }
    }
    Ok(scan)
}

/// Counts of one `ResourceSpans`, attributed once its resource is known
/// (the resource may come after the spans on the wire).
#[derive(Default)]
struct Tally {
    spans: u64,
    errors: u64,
    first_ns: u64,
    last_ns: u64,
}

fn scan_resource_spans(
    buf: &[u8],
    index: usize,
    scan: &mut Scan,
    services: &mut HashMap<String, usize>,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    let mut service: Option<&[u8]> = None;
    let mut tally = Tally::default();
    let mut span_index = 0usize;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "ResourceSpans", "resource")?;
                let res = r.bytes("resource")?;
                // A repeated singular message merges; the last service.name wins.
                if let Some(s) = scan_resource(res)? {
                    service = Some(s);
                }
            }
            2 => {
                expect(wire, LEN, "ResourceSpans", "scope_spans")?;
                let ss = r.bytes("scope_spans")?;
                scan_scope_spans(ss, index, &mut span_index, &mut tally, scan)?;
            }
            3 => {
                expect(wire, LEN, "ResourceSpans", "schema_url")?;
                r.bytes("schema_url")?;
            }
            _ => r.skip(wire)?,
        }
    }
    if tally.spans == 0 {
        return Ok(());
    }
    scan.spans += tally.spans;
    let name = match service {
        // Cut as the processor cuts it, so catalog and series agree.
        Some(raw) => String::from_utf8_lossy(causeway_model::wire::cap_value(raw).0),
        None => "unknown_service".into(),
    };
    match services
        .get(name.as_ref())
        .and_then(|&i| scan.services.get_mut(i))
    {
        Some(s) => {
            s.spans += tally.spans;
            s.errors += tally.errors;
            s.first_ns = min_nonzero(s.first_ns, tally.first_ns);
            s.last_ns = s.last_ns.max(tally.last_ns);
        }
        None => {
            services.insert(name.clone().into_owned(), scan.services.len());
            scan.services.push(ServiceCount {
                name: name.into_owned(),
                spans: tally.spans,
                errors: tally.errors,
                first_ns: tally.first_ns,
                last_ns: tally.last_ns,
            });
        }
    }
    Ok(())
}

#[inline]
fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Validates a `Resource`; returns its `service.name` if it is a string.
fn scan_resource(buf: &[u8]) -> Result<Option<&[u8]>, WireError> {
    let mut r = Reader::new(buf);
    let mut service = None;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "Resource", "attributes")?;
                let kv = r.bytes("attributes")?;
                let (key, value) = scan_key_value(kv, 0)?;
                if key == b"service.name" && value.is_some() {
                    service = value;
                }
            }
            2 => {
                expect(wire, VARINT, "Resource", "dropped_attributes_count")?;
                r.varint()?;
            }
            3 => {
                expect(wire, LEN, "Resource", "entity_refs")?;
                scan_strings(r.bytes("entity_refs")?, "EntityRef")?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(service)
}

/// Validates a `KeyValue`; returns the key and the value if it is a string.
#[inline]
fn scan_key_value(buf: &[u8], depth: u32) -> Result<(&[u8], Option<&[u8]>), WireError> {
    let mut r = Reader::new(buf);
    let mut key: &[u8] = &[];
    let mut value = None;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "KeyValue", "key")?;
                key = r.bytes("key")?;
            }
            2 => {
                expect(wire, LEN, "KeyValue", "value")?;
                let v = r.bytes("value")?;
                value = scan_any_value(v, depth + 1)?;
            }
            3 => {
                expect(wire, VARINT, "KeyValue", "key_strindex")?;
                r.varint()?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

/// Validates an `AnyValue`; returns its string value if it has one.
fn scan_any_value(buf: &[u8], depth: u32) -> Result<Option<&[u8]>, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut r = Reader::new(buf);
    let mut string = None;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "AnyValue", "string_value")?;
                string = Some(r.bytes("string_value")?);
            }
            2 | 3 => {
                expect(wire, VARINT, "AnyValue", "bool_value/int_value")?;
                r.varint()?;
                string = None;
            }
            4 => {
                expect(wire, I64, "AnyValue", "double_value")?;
                r.fixed64()?;
                string = None;
            }
            5 | 6 => {
                // ArrayValue { repeated AnyValue values = 1 } and
                // KeyValueList { repeated KeyValue values = 1 }.
                expect(wire, LEN, "AnyValue", "array_value/kvlist_value")?;
                let inner = r.bytes("array_value")?;
                let mut ir = Reader::new(inner);
                while !ir.done() {
                    let (f, w) = ir.key()?;
                    if f == 1 {
                        expect(w, LEN, "ArrayValue/KeyValueList", "values")?;
                        let v = ir.bytes("values")?;
                        if field == 5 {
                            scan_any_value(v, depth + 1)?;
                        } else {
                            scan_key_value(v, depth + 1)?;
                        }
                    } else {
                        ir.skip(w)?;
                    }
                }
                string = None;
            }
            7 => {
                expect(wire, LEN, "AnyValue", "bytes_value")?;
                r.bytes("bytes_value")?;
                string = None;
            }
            8 => {
                expect(wire, VARINT, "AnyValue", "string_value_strindex")?;
                r.varint()?;
                string = None;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(string)
}

/// Validates a message whose known fields are all strings or repeated
/// strings (`EntityRef`).
fn scan_strings(buf: &[u8], message: &'static str) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if (1..=4).contains(&field) {
            expect(wire, LEN, message, "string field")?;
        }
        r.skip(wire)?;
    }
    Ok(())
}

fn scan_scope_spans(
    buf: &[u8],
    resource: usize,
    span_index: &mut usize,
    tally: &mut Tally,
    scan: &mut Scan,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "ScopeSpans", "scope")?;
                scan_scope(r.bytes("scope")?)?;
            }
            2 => {
                expect(wire, LEN, "ScopeSpans", "spans")?;
                let span = r.bytes("span")?;
                match scan_span(span)? {
                    SpanCheck::Valid {
                        error,
                        start_ns,
                        end_ns,
                    } => {
                        tally.spans += 1;
                        tally.errors += u64::from(error);
                        tally.first_ns = min_nonzero(tally.first_ns, start_ns);
                        tally.last_ns = tally.last_ns.max(end_ns);
                    }
                    SpanCheck::Invalid(reason) => {
                        scan.invalid += 1;
                        if scan.invalid_reasons.len() < MAX_REASONS {
                            scan.invalid_reasons.push(format!(
                                "resource_spans[{resource}] span #{}: {reason}",
                                *span_index
                            ));
                        }
                    }
                }
                *span_index += 1;
            }
            3 => {
                expect(wire, LEN, "ScopeSpans", "schema_url")?;
                r.bytes("schema_url")?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scan_scope(buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 | 2 => {
                expect(wire, LEN, "InstrumentationScope", "name/version")?;
                r.bytes("scope name")?;
            }
            3 => {
                expect(wire, LEN, "InstrumentationScope", "attributes")?;
                scan_key_value(r.bytes("attributes")?, 0)?;
            }
            4 => {
                expect(
                    wire,
                    VARINT,
                    "InstrumentationScope",
                    "dropped_attributes_count",
                )?;
                r.varint()?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

enum SpanCheck {
    Valid {
        error: bool,
        start_ns: u64,
        end_ns: u64,
    },
    Invalid(&'static str),
}

/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u64 = 2;

fn scan_span(buf: &[u8]) -> Result<SpanCheck, WireError> {
    let mut r = Reader::new(buf);
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut parent: &[u8] = &[];
    let mut status_code = 0;
    let mut start_ns = 0;
    let mut end_ns = 0;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, LEN, "Span", "trace_id")?;
                trace_id = r.bytes("trace_id")?;
            }
            2 => {
                expect(wire, LEN, "Span", "span_id")?;
                span_id = r.bytes("span_id")?;
            }
            3 | 5 => {
                expect(wire, LEN, "Span", "trace_state/name")?;
                r.bytes("span name")?;
            }
            4 => {
                expect(wire, LEN, "Span", "parent_span_id")?;
                parent = r.bytes("parent_span_id")?;
            }
            6 | 10 | 12 | 14 => {
                expect(wire, VARINT, "Span", "kind/dropped counts")?;
                r.varint()?;
            }
            7 => {
                expect(wire, I64, "Span", "start_time_unix_nano")?;
                start_ns = r.fixed64()?;
            }
            8 => {
                expect(wire, I64, "Span", "end_time_unix_nano")?;
                end_ns = r.fixed64()?;
            }
            9 => {
                expect(wire, LEN, "Span", "attributes")?;
                scan_key_value(r.bytes("attributes")?, 0)?;
            }
            11 => {
                expect(wire, LEN, "Span", "events")?;
                scan_event(r.bytes("event")?)?;
            }
            13 => {
                expect(wire, LEN, "Span", "links")?;
                scan_link(r.bytes("link")?)?;
            }
            15 => {
                expect(wire, LEN, "Span", "status")?;
                status_code = scan_status(r.bytes("status")?)?;
            }
            16 => {
                expect(wire, I32, "Span", "flags")?;
                r.skip(I32)?;
            }
            _ => r.skip(wire)?,
        }
    }
    if let Some(reason) = id_problem(trace_id, span_id, parent) {
        return Ok(SpanCheck::Invalid(reason));
    }
    Ok(SpanCheck::Valid {
        error: status_code == STATUS_CODE_ERROR,
        start_ns,
        end_ns,
    })
}

fn scan_event(buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect(wire, I64, "Event", "time_unix_nano")?;
                r.fixed64()?;
            }
            2 => {
                expect(wire, LEN, "Event", "name")?;
                r.bytes("event name")?;
            }
            3 => {
                expect(wire, LEN, "Event", "attributes")?;
                scan_key_value(r.bytes("attributes")?, 0)?;
            }
            4 => {
                expect(wire, VARINT, "Event", "dropped_attributes_count")?;
                r.varint()?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scan_link(buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1..=3 => {
                expect(wire, LEN, "Link", "trace_id/span_id/trace_state")?;
                r.bytes("link id")?;
            }
            4 => {
                expect(wire, LEN, "Link", "attributes")?;
                scan_key_value(r.bytes("attributes")?, 0)?;
            }
            5 => {
                expect(wire, VARINT, "Link", "dropped_attributes_count")?;
                r.varint()?;
            }
            6 => {
                expect(wire, I32, "Link", "flags")?;
                r.skip(I32)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scan_status(buf: &[u8]) -> Result<u64, WireError> {
    let mut r = Reader::new(buf);
    let mut code = 0;
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            2 => {
                expect(wire, LEN, "Status", "message")?;
                r.bytes("status message")?;
            }
            3 => {
                expect(wire, VARINT, "Status", "code")?;
                code = r.varint()?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(code)
}
