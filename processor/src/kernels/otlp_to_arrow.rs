//! OTLP `ExportTraceServiceRequest` bytes → one Arrow `RecordBatch` of spans
//! ([`causeway_model::schema`]), in one pass over the bytes.
//!
//! No prost structs: values are read as slices of the request and appended
//! to column builders. Resource-level columns are built as dictionaries whose
//! keys are the resource's ordinal, so a resource's service name is stored
//! once however many spans it has. Spans with invalid ids are skipped (the
//! receiver has already rejected them; replayed files may still hold some).
//! Strings that are not valid UTF-8 are replaced lossily.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int8Builder, Int32Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampNanosecondBuilder,
};
use arrow_array::types::UInt32Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::ArrowError;
use causeway_model::TenantId;
use causeway_model::schema::span_schema;
use causeway_model::template::{self, EVENTS_PER_SPAN};
use causeway_model::wire::{I32, I64, LEN, Reader, VARINT, WireError, id_problem};

use crate::error::Error;

pub use causeway_model::wire::MAX_VALUE_BYTES;

/// Spans of one request in the span schema, and how many strings were cut
/// at [`MAX_VALUE_BYTES`].
#[derive(Debug)]
pub struct Converted {
    /// The spans.
    pub batch: RecordBatch,
    /// Strings cut.
    pub truncated: u64,
}

/// Converts one request's spans to a batch in the span schema.
pub fn otlp_to_arrow(tenant: &TenantId, payload: &[u8]) -> Result<RecordBatch, Error> {
    convert(tenant, payload).map(|c| c.batch)
}

/// [`otlp_to_arrow`], also counting the strings it cut.
pub fn convert(tenant: &TenantId, payload: &[u8]) -> Result<Converted, Error> {
    let mut b = Builders::with_capacity(estimate_spans(payload));
    let mut r = Reader::new(payload);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 && wire == LEN {
            resource_spans(r.bytes("resource_spans")?, &mut b)?;
        } else {
            r.skip(wire)?;
        }
    }
    let truncated = b.truncated;
    Ok(Converted {
        batch: b.finish(tenant)?,
        truncated,
    })
}

/// `raw` cut to [`MAX_VALUE_BYTES`], counting a cut in `cut`.
#[inline]
fn capped<'a>(raw: &'a [u8], cut: &mut u64) -> &'a [u8] {
    let (kept, was_cut) = causeway_model::wire::cap_value(raw);
    *cut += u64::from(was_cut);
    kept
}

/// A rough span count for builder capacity (~250 bytes per span).
fn estimate_spans(payload: &[u8]) -> usize {
    payload.len() / 250 + 8
}

/// Per-resource values of the resource-level columns.
#[derive(Default, Clone, Copy)]
struct ResourceValues<'a> {
    service_name: Option<&'a [u8]>,
    service_version: Option<&'a [u8]>,
    instance_id: Option<&'a [u8]>,
    environment: Option<&'a [u8]>,
    environment_legacy: Option<&'a [u8]>,
    host_name: Option<&'a [u8]>,
    pod_name: Option<&'a [u8]>,
}

/// An attribute value, borrowed.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a [u8]),
    Int(i64),
    Other,
}

impl<'a> Val<'a> {
    fn str(self) -> Option<&'a [u8]> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    fn int(self) -> Option<i32> {
        match self {
            Val::Int(i) => i32::try_from(i).ok(),
            Val::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            Val::Other => None,
        }
    }
}

/// Span attribute slots: (current value, priority of the key it came from).
/// Current semantic-convention names outrank their deprecated aliases.
const HTTP_METHOD: usize = 0;
const HTTP_ROUTE: usize = 1;
const HTTP_STATUS: usize = 2;
const RPC_SYSTEM: usize = 3;
const RPC_SERVICE: usize = 4;
const RPC_METHOD: usize = 5;
const RPC_GRPC_STATUS: usize = 6;
const DB_SYSTEM: usize = 7;
const DB_OPERATION: usize = 8;
const PEER_SERVICE: usize = 9;
const SERVER_ADDRESS: usize = 10;
const MESSAGING_SYSTEM: usize = 11;
const MESSAGING_DESTINATION: usize = 12;
const SLOTS: usize = 13;

#[inline]
fn slot_of(key: &[u8]) -> Option<(usize, u8)> {
    Some(match key {
        b"http.request.method" => (HTTP_METHOD, 2),
        b"http.method" => (HTTP_METHOD, 1),
        b"http.route" => (HTTP_ROUTE, 2),
        b"http.response.status_code" => (HTTP_STATUS, 2),
        b"http.status_code" => (HTTP_STATUS, 1),
        b"rpc.system" => (RPC_SYSTEM, 2),
        b"rpc.service" => (RPC_SERVICE, 2),
        b"rpc.method" => (RPC_METHOD, 2),
        b"rpc.grpc.status_code" => (RPC_GRPC_STATUS, 2),
        b"db.system.name" => (DB_SYSTEM, 2),
        b"db.system" => (DB_SYSTEM, 1),
        b"db.operation.name" => (DB_OPERATION, 2),
        b"db.operation" => (DB_OPERATION, 1),
        b"peer.service" => (PEER_SERVICE, 2),
        b"server.address" => (SERVER_ADDRESS, 2),
        b"net.peer.name" => (SERVER_ADDRESS, 1),
        b"messaging.system" => (MESSAGING_SYSTEM, 2),
        b"messaging.destination.name" => (MESSAGING_DESTINATION, 2),
        b"messaging.destination" => (MESSAGING_DESTINATION, 1),
        _ => return None,
    })
}

type Dict = StringDictionaryBuilder<UInt32Type>;

struct Builders<'a> {
    resources: Vec<ResourceValues<'a>>,
    resource_of_span: Vec<u32>,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent: FixedSizeBinaryBuilder,
    name: Dict,
    kind: Int8Builder,
    start: TimestampNanosecondBuilder,
    end: TimestampNanosecondBuilder,
    duration: Int64Builder,
    status_code: Int8Builder,
    status_message: StringBuilder,
    dicts: [Dict; 11],
    http_status: Int32Builder,
    grpc_status: Int32Builder,
    exception_type: Dict,
    exception_message: StringBuilder,
    events: Dict,
    /// Reused for each span's joined event templates.
    events_buf: String,
    /// Strings cut at [`MAX_VALUE_BYTES`].
    truncated: u64,
}

/// Which dictionary builder holds each string slot (the two int slots are
/// separate builders).
const DICT_SLOTS: [usize; 11] = [
    HTTP_METHOD,
    HTTP_ROUTE,
    RPC_SYSTEM,
    RPC_SERVICE,
    RPC_METHOD,
    DB_SYSTEM,
    DB_OPERATION,
    PEER_SERVICE,
    SERVER_ADDRESS,
    MESSAGING_SYSTEM,
    MESSAGING_DESTINATION,
];

#[inline]
fn text(raw: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(raw)
}

impl<'a> Builders<'a> {
    fn with_capacity(n: usize) -> Self {
        let dict = || Dict::with_capacity(n, 64, 1024);
        Self {
            resources: Vec::new(),
            resource_of_span: Vec::with_capacity(n),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            parent: FixedSizeBinaryBuilder::with_capacity(n, 8),
            name: dict(),
            kind: Int8Builder::with_capacity(n),
            start: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            end: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            duration: Int64Builder::with_capacity(n),
            status_code: Int8Builder::with_capacity(n),
            status_message: StringBuilder::new(),
            dicts: std::array::from_fn(|_| dict()),
            http_status: Int32Builder::with_capacity(n),
            grpc_status: Int32Builder::with_capacity(n),
            exception_type: dict(),
            exception_message: StringBuilder::new(),
            events: dict(),
            events_buf: String::new(),
            truncated: 0,
        }
    }

    fn finish(mut self, tenant: &TenantId) -> Result<RecordBatch, ArrowError> {
        let n = self.resource_of_span.len();
        let keys = UInt32Array::from(self.resource_of_span);
        let res = &self.resources;
        let resource_col = |get: &dyn Fn(&ResourceValues<'a>) -> Option<&'a [u8]>| -> ArrayRef {
            let values: StringArray = res
                .iter()
                .map(|r| Some(get(r).map(text).unwrap_or_default()))
                .collect();
            // A resource without the attribute makes its spans' key null.
            let keys: UInt32Array = keys
                .iter()
                .map(|k| k.filter(|&k| get(&res[k as usize]).is_some()))
                .collect();
            Arc::new(DictionaryArray::<UInt32Type>::new(keys, Arc::new(values)))
        };
        let service: ArrayRef = {
            let values: StringArray = res
                .iter()
                .map(|r| {
                    Some(
                        r.service_name
                            .map(text)
                            .unwrap_or(Cow::Borrowed("unknown_service")),
                    )
                })
                .collect();
            Arc::new(DictionaryArray::<UInt32Type>::new(
                keys.clone(),
                Arc::new(values),
            ))
        };
        let tenant_col: ArrayRef = Arc::new(DictionaryArray::<UInt32Type>::new(
            UInt32Array::from(vec![0u32; n]),
            Arc::new(StringArray::from(vec![tenant.as_str()])),
        ));
        let mut dict_cols: Vec<ArrayRef> = self
            .dicts
            .iter_mut()
            .map(|d| Arc::new(d.finish()) as ArrayRef)
            .collect();
        let mut take = |slot: usize| -> ArrayRef {
            let i = DICT_SLOTS.iter().position(|&s| s == slot).unwrap_or(0);
            std::mem::replace(
                &mut dict_cols[i],
                Arc::new(StringArray::from(Vec::<String>::new())),
            )
        };
        let columns: Vec<ArrayRef> = vec![
            tenant_col,
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            service,
            resource_col(&|r| r.service_version),
            resource_col(&|r| r.instance_id),
            resource_col(&|r| r.environment.or(r.environment_legacy)),
            resource_col(&|r| r.host_name),
            resource_col(&|r| r.pod_name),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            take(HTTP_METHOD),
            take(HTTP_ROUTE),
            Arc::new(self.http_status.finish()),
            take(RPC_SYSTEM),
            take(RPC_SERVICE),
            take(RPC_METHOD),
            Arc::new(self.grpc_status.finish()),
            take(DB_SYSTEM),
            take(DB_OPERATION),
            take(PEER_SERVICE),
            take(SERVER_ADDRESS),
            take(MESSAGING_SYSTEM),
            take(MESSAGING_DESTINATION),
            Arc::new(self.exception_type.finish()),
            Arc::new(self.exception_message.finish()),
            Arc::new(self.events.finish()),
        ];
        // The builders above produce exactly the schema's types and
        // nullability, and equal lengths; an error here is a bug.
        RecordBatch::try_new(span_schema(), columns)
    }
}

fn resource_spans<'a>(buf: &'a [u8], b: &mut Builders<'a>) -> Result<(), WireError> {
    // The resource may follow its spans on the wire: find it first.
    let mut values = ResourceValues::default();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 && wire == LEN {
            resource(r.bytes("resource")?, &mut values, &mut b.truncated)?;
        } else {
            r.skip(wire)?;
        }
    }
    let index = u32::try_from(b.resources.len()).unwrap_or(u32::MAX);
    b.resources.push(values);
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 2 && wire == LEN {
            let mut sr = Reader::new(r.bytes("scope_spans")?);
            while !sr.done() {
                let (f, w) = sr.key()?;
                if f == 2 && w == LEN {
                    span(sr.bytes("span")?, index, b)?;
                } else {
                    sr.skip(w)?;
                }
            }
        } else {
            r.skip(wire)?;
        }
    }
    Ok(())
}

fn resource<'a>(buf: &'a [u8], v: &mut ResourceValues<'a>, cut: &mut u64) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field != 1 || wire != LEN {
            r.skip(wire)?;
            continue;
        }
        let (key, val) = key_value(r.bytes("attribute")?, cut)?;
        let Some(s) = val.str() else { continue };
        match key {
            b"service.name" => v.service_name = Some(s),
            b"service.version" => v.service_version = Some(s),
            b"service.instance.id" => v.instance_id = Some(s),
            b"deployment.environment.name" => v.environment = Some(s),
            b"deployment.environment" => v.environment_legacy = Some(s),
            b"host.name" => v.host_name = Some(s),
            b"k8s.pod.name" => v.pod_name = Some(s),
            _ => {}
        }
    }
    Ok(())
}

#[inline]
fn key_value<'a>(buf: &'a [u8], cut: &mut u64) -> Result<(&'a [u8], Val<'a>), WireError> {
    let mut r = Reader::new(buf);
    let mut key: &[u8] = &[];
    let mut val = Val::Other;
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => key = r.bytes("key")?,
            (2, LEN) => val = any_value(r.bytes("value")?, cut)?,
            _ => r.skip(wire)?,
        }
    }
    Ok((key, val))
}

#[inline]
fn any_value<'a>(buf: &'a [u8], cut: &mut u64) -> Result<Val<'a>, WireError> {
    let mut r = Reader::new(buf);
    let mut val = Val::Other;
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => val = Val::Str(capped(r.bytes("string_value")?, cut)),
            (3, VARINT) => val = Val::Int(r.varint()? as i64),
            _ => {
                r.skip(wire)?;
                val = Val::Other;
            }
        }
    }
    Ok(val)
}

fn span<'a>(buf: &'a [u8], resource: u32, b: &mut Builders<'a>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut name: &[u8] = &[];
    let mut kind = 0i8;
    let (mut start, mut end) = (0u64, 0u64);
    let mut status_code = 0i8;
    let mut status_message: Option<&[u8]> = None;
    let mut slots: [(Option<Val<'a>>, u8); SLOTS] = [(None, 0); SLOTS];
    let mut exception: Option<Exception<'a>> = None;
    b.events_buf.clear();
    let mut n_events = 0;
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => trace_id = r.bytes("trace_id")?,
            (2, LEN) => span_id = r.bytes("span_id")?,
            (4, LEN) => parent = r.bytes("parent_span_id")?,
            (5, LEN) => name = capped(r.bytes("name")?, &mut b.truncated),
            (6, VARINT) => kind = i8::try_from(r.varint()?).unwrap_or(0),
            (7, I64) => start = r.fixed64()?,
            (8, I64) => end = r.fixed64()?,
            (9, LEN) => {
                let (key, val) = key_value(r.bytes("attribute")?, &mut b.truncated)?;
                match slot_of(key) {
                    Some((slot, prio)) if prio >= slots[slot].1 => slots[slot] = (Some(val), prio),
                    _ => {}
                }
            }
            (11, LEN) => {
                let ev = event(r.bytes("event")?, &mut b.truncated)?;
                if exception.is_none() && ev.is_exception {
                    exception = Some((ev.exception_type, ev.exception_message));
                }
                if n_events < EVENTS_PER_SPAN {
                    n_events += 1;
                    if !b.events_buf.is_empty() {
                        b.events_buf.push(template::SEPARATOR);
                    }
                    ev.push_template(&mut b.events_buf);
                }
            }
            (15, LEN) => {
                let mut sr = Reader::new(r.bytes("status")?);
                while !sr.done() {
                    let (f, w) = sr.key()?;
                    match (f, w) {
                        (2, LEN) => {
                            status_message = Some(capped(sr.bytes("message")?, &mut b.truncated))
                        }
                        (3, VARINT) => status_code = i8::try_from(sr.varint()?).unwrap_or(0),
                        _ => sr.skip(w)?,
                    }
                }
            }
            (_, I32) | (_, _) => r.skip(wire)?,
        }
    }
    if id_problem(trace_id, span_id, parent).is_some() {
        return Ok(());
    }
    b.resource_of_span.push(resource);
    // Lengths were checked by `id_problem`; appends cannot fail.
    let _ = b.trace_id.append_value(trace_id);
    let _ = b.span_id.append_value(span_id);
    if parent.is_empty() {
        b.parent.append_null();
    } else {
        let _ = b.parent.append_value(parent);
    }
    b.name.append_value(text(name));
    b.kind.append_value(kind);
    let start_i = i64::try_from(start).unwrap_or(i64::MAX);
    let end_i = i64::try_from(end).unwrap_or(i64::MAX);
    b.start.append_value(start_i);
    b.end.append_value(end_i);
    b.duration
        .append_value(end_i.saturating_sub(start_i).max(0));
    b.status_code.append_value(status_code);
    match status_message.filter(|m| !m.is_empty()) {
        Some(m) => b.status_message.append_value(text(m)),
        None => b.status_message.append_null(),
    }
    for (i, &slot) in DICT_SLOTS.iter().enumerate() {
        match slots[slot].0.and_then(Val::str) {
            Some(s) => b.dicts[i].append_value(text(s)),
            None => b.dicts[i].append_null(),
        }
    }
    b.http_status
        .append_option(slots[HTTP_STATUS].0.and_then(Val::int));
    b.grpc_status
        .append_option(slots[RPC_GRPC_STATUS].0.and_then(Val::int));
    match exception {
        Some((ty, msg)) => {
            match ty {
                Some(t) => b.exception_type.append_value(text(t)),
                None => b.exception_type.append_null(),
            }
            match msg {
                Some(m) => b.exception_message.append_value(text(m)),
                None => b.exception_message.append_null(),
            }
        }
        None => {
            b.exception_type.append_null();
            b.exception_message.append_null();
        }
    }
    if b.events_buf.is_empty() {
        b.events.append_null();
    } else {
        b.events.append_value(&b.events_buf);
    }
    Ok(())
}

/// `exception.type` and `exception.message` of an `exception` event.
type Exception<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// What a span event says, borrowed.
#[derive(Default)]
struct EventInfo<'a> {
    name: &'a [u8],
    is_exception: bool,
    exception_type: Option<&'a [u8]>,
    exception_message: Option<&'a [u8]>,
    /// The log message (`message`, `log.message`, `body`, `event`).
    message: Option<&'a [u8]>,
    severity: Option<&'a [u8]>,
    namespace: Option<&'a [u8]>,
    function: Option<&'a [u8]>,
    lineno: Option<i32>,
}

impl EventInfo<'_> {
    /// Appends its template (see `causeway_model::template`) to `out`: an
    /// exception is `exception <type>` (its message often embeds request
    /// data, the type is the pattern); a log event is its severity, code
    /// location and message.
    fn push_template(&self, out: &mut String) {
        if self.is_exception {
            let what = self
                .exception_type
                .or(self.exception_message)
                .unwrap_or(b"");
            template::push_event_template(out, None, None, &["exception ", &text(what)]);
            return;
        }
        let location = match (self.namespace, self.lineno, self.function) {
            (Some(ns), Some(line), _) => Some(format!("{}#{line}", text(ns))),
            (Some(ns), None, Some(f)) => Some(format!("{}.{}", text(ns), text(f))),
            (None, _, Some(f)) | (Some(f), None, None) => Some(text(f).into_owned()),
            (None, _, None) => None,
        };
        let severity = self.severity.map(text);
        let message = text(self.message.unwrap_or(self.name));
        template::push_event_template(out, severity.as_deref(), location.as_deref(), &[&message]);
    }
}

/// Reads one span event.
fn event<'a>(buf: &'a [u8], cut: &mut u64) -> Result<EventInfo<'a>, WireError> {
    let mut r = Reader::new(buf);
    let mut ev = EventInfo::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (2, LEN) => {
                ev.name = capped(r.bytes("event name")?, cut);
                ev.is_exception = ev.name == b"exception";
            }
            (3, LEN) => {
                let (key, val) = key_value(r.bytes("attribute")?, cut)?;
                match key {
                    b"exception.type" => ev.exception_type = val.str(),
                    b"exception.message" => ev.exception_message = val.str(),
                    b"message" | b"log.message" | b"body" | b"event" => {
                        ev.message = ev.message.or(val.str())
                    }
                    b"log.severity" | b"level" | b"log.level" | b"severity" => {
                        ev.severity = ev.severity.or(val.str())
                    }
                    b"code.namespace" => ev.namespace = val.str(),
                    b"code.function" | b"code.function.name" => ev.function = val.str(),
                    b"code.lineno" | b"code.line.number" => ev.lineno = val.int(),
                    _ => {}
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests;
