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

use causeway_model::ServiceCount;

/// Why a request is not a well-formed `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends inside a field.
    #[error("truncated message: {0} runs past the end of its enclosing message")]
    Truncated(&'static str),
    /// A varint longer than 10 bytes.
    #[error("invalid varint")]
    BadVarint,
    /// Field number 0 or wire type 6/7, or a group.
    #[error("invalid tag: field {field}, wire type {wire}")]
    BadTag {
        /// The field number.
        field: u64,
        /// The wire type.
        wire: u8,
    },
    /// A known field with the wrong wire type.
    #[error("invalid wire type {wire} for {message}.{field}")]
    WrongWireType {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Wire type seen.
        wire: u8,
    },
    /// `AnyValue`s nested deeper than [`MAX_DEPTH`].
    #[error("attribute values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// How deep `AnyValue` arrays and key-value lists may nest (prost's limit is 100).
pub const MAX_DEPTH: u32 = 64;

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

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// How many invalid-span reasons a scan keeps for the error message.
const MAX_REASONS: usize = 3;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Truncated("varint"))?;
        self.pos += 1;
        if b < 0x80 {
            return Ok(u64::from(b));
        }
        let mut value = u64::from(b & 0x7f);
        let mut shift = 7;
        loop {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(WireError::Truncated("varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(WireError::BadVarint);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(WireError::BadVarint);
            }
        }
    }

    /// Reads a tag; returns (field number, wire type).
    #[inline]
    fn key(&mut self) -> Result<(u64, u8), WireError> {
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let field = key >> 3;
        if field == 0
            || field > u64::from(u32::MAX >> 3)
            || !matches!(wire, VARINT | I64 | LEN | I32)
        {
            return Err(WireError::BadTag { field, wire });
        }
        Ok((field, wire))
    }

    #[inline]
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, WireError> {
        let end = self.pos + 8;
        let raw = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Truncated("fixed64"))?;
        self.pos = end;
        let mut le = [0u8; 8];
        le.copy_from_slice(raw);
        Ok(u64::from_le_bytes(le))
    }

    #[inline]
    fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes("length-delimited field").map(drop),
            _ => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(WireError::Truncated("fixed32"));
                }
                self.pos = end;
                Ok(())
            }
        }
    }
}

#[inline]
fn expect(wire: u8, want: u8, message: &'static str, field: &'static str) -> Result<(), WireError> {
    if wire == want {
        Ok(())
    } else {
        Err(WireError::WrongWireType {
            message,
            field,
            wire,
        })
    }
}

/// Walks a whole request. `Ok` means the request is well-formed; individual
/// spans may still be invalid (see [`Scan::invalid`]).
pub fn scan_request(buf: &[u8]) -> Result<Scan, WireError> {
    let mut scan = Scan::default();
    let mut r = Reader::new(buf);
    let mut resource_index = 0usize;
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 {
            expect(wire, LEN, "ExportTraceServiceRequest", "resource_spans")?;
            let rs = r.bytes("resource_spans")?;
            scan_resource_spans(rs, resource_index, &mut scan)?;
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

fn scan_resource_spans(buf: &[u8], index: usize, scan: &mut Scan) -> Result<(), WireError> {
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
        Some(raw) => String::from_utf8_lossy(raw),
        None => "unknown_service".into(),
    };
    match scan.services.iter_mut().find(|s| s.name == name) {
        Some(s) => {
            s.spans += tally.spans;
            s.errors += tally.errors;
            s.first_ns = min_nonzero(s.first_ns, tally.first_ns);
            s.last_ns = s.last_ns.max(tally.last_ns);
        }
        None => scan.services.push(ServiceCount {
            name: name.into_owned(),
            spans: tally.spans,
            errors: tally.errors,
            first_ns: tally.first_ns,
            last_ns: tally.last_ns,
        }),
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

/// Checks ids as the OTLP specification defines them: a trace id is 16 bytes,
/// a span id 8, neither all zeroes; a parent span id is empty or 8 bytes.
pub fn id_problem(trace_id: &[u8], span_id: &[u8], parent: &[u8]) -> Option<&'static str> {
    if trace_id.len() != 16 {
        return Some("trace_id must be 16 bytes");
    }
    if trace_id.iter().all(|&b| b == 0) {
        return Some("trace_id is all zeroes");
    }
    if span_id.len() != 8 {
        return Some("span_id must be 8 bytes");
    }
    if span_id.iter().all(|&b| b == 0) {
        return Some("span_id is all zeroes");
    }
    if !parent.is_empty() && parent.len() != 8 {
        return Some("parent_span_id must be empty or 8 bytes");
    }
    None
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
