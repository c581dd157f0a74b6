//! The span columns the correlator reads, as rows with interned strings,
//! and each span's self time.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{Array, ArrayRef, DictionaryArray, RecordBatch, StringArray};
use causeway_model::schema::{col, status};

use crate::error::{Error, Result};

/// The columns [`SpanSet::from_batches`] needs, for `SpanStore::scan`.
pub const COLUMNS: [&str; 15] = [
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::SERVICE_NAME,
    col::SERVICE_VERSION,
    col::SERVICE_INSTANCE_ID,
    col::K8S_POD_NAME,
    col::SPAN_NAME,
    col::START_TIME,
    col::END_TIME,
    col::STATUS_CODE,
    col::EVENT_TEMPLATES,
    col::DURATION_NS,
    col::STATUS_MESSAGE,
    col::EXCEPTION_MESSAGE,
];

/// Strings by id.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<String, u32, foldhash::fast::RandomState>,
    names: Vec<String>,
}

impl Interner {
    /// The id of `s`, adding it.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }

    /// The id of `s` when known.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The string of `id`.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// One span.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // named as the span schema's columns
pub struct SpanRec {
    pub trace: [u8; 16],
    pub span: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub service: u32,
    pub version: Option<u32>,
    /// `service.instance.id`, else the pod name.
    pub instance: Option<u32>,
    pub operation: u32,
    pub start_ns: i64,
    pub end_ns: i64,
    pub error: bool,
    /// Joined event templates.
    pub events: Option<u32>,
    /// Duration minus the union of its children's intervals (clipped to the
    /// span), ns; the duration when no child is in the set.
    pub self_ns: i64,
    /// Some child in the set has status ERROR.
    pub child_error: bool,
    /// The service of its children in other services, when there is
    /// exactly one (a client span and the server span it called).
    pub remote_child: Option<u32>,
    /// Of a span in error: its status message and exception message,
    /// joined (what it says went wrong).
    pub error_text: Option<u32>,
}

/// Data coverage is counted in buckets of this many seconds.
pub const BUCKET_SECONDS: u64 = 10;

impl SpanRec {
    /// The coverage bucket its start falls in.
    pub fn bucket(&self) -> i64 {
        self.start_ns
            .div_euclid(BUCKET_SECONDS as i64 * 1_000_000_000)
    }
}

/// Spans of one time range, with shared interned strings.
#[derive(Debug, Default)]
pub struct SpanSet {
    /// The spans, in no particular order.
    pub spans: Vec<SpanRec>,
}

impl SpanSet {
    /// Rows of `batches` (projected to [`COLUMNS`]), strings interned into
    /// `strings`; self times computed.
    pub fn from_batches(batches: &[RecordBatch], strings: &mut Interner) -> Result<Self> {
        let mut spans = Vec::new();
        for b in batches {
            read_batch(b, strings, &mut spans)?;
        }
        compute_self_times(&mut spans);
        Ok(Self { spans })
    }

    /// Distinct 10-second buckets with spans, times ten: the seconds of
    /// data the set covers (gaps excluded).
    pub fn covered_seconds(&self) -> u64 {
        let mut buckets: Vec<i64> = self.spans.iter().map(SpanRec::bucket).collect();
        buckets.sort_unstable();
        buckets.dedup();
        buckets.len() as u64 * BUCKET_SECONDS
    }
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| Error::Data(format!("span batch without column {name}")))
}

/// Dictionary keys resolved to interned ids (null → `None`).
fn dict_ids(a: &ArrayRef, strings: &mut Interner) -> Result<Vec<Option<u32>>> {
    let d: &DictionaryArray<UInt32Type> = a
        .as_dictionary_opt()
        .ok_or_else(|| Error::Data("expected a dictionary column".into()))?;
    let values: &StringArray = d
        .values()
        .as_string_opt()
        .ok_or_else(|| Error::Data("expected a string dictionary".into()))?;
    let ids: Vec<u32> = (0..values.len())
        .map(|i| strings.intern(values.value(i)))
        .collect();
    Ok(d.keys()
        .iter()
        .map(|k| k.and_then(|k| ids.get(k as usize).copied()))
        .collect())
}

fn read_batch(b: &RecordBatch, strings: &mut Interner, out: &mut Vec<SpanRec>) -> Result<()> {
    let trace = column(b, col::TRACE_ID)?.as_fixed_size_binary();
    let span = column(b, col::SPAN_ID)?.as_fixed_size_binary();
    let parent = column(b, col::PARENT_SPAN_ID)?.as_fixed_size_binary();
    let service = dict_ids(column(b, col::SERVICE_NAME)?, strings)?;
    let version = dict_ids(column(b, col::SERVICE_VERSION)?, strings)?;
    let instance = dict_ids(column(b, col::SERVICE_INSTANCE_ID)?, strings)?;
    let pod = dict_ids(column(b, col::K8S_POD_NAME)?, strings)?;
    let name = dict_ids(column(b, col::SPAN_NAME)?, strings)?;
    let events = dict_ids(column(b, col::EVENT_TEMPLATES)?, strings)?;
    let start = column(b, col::START_TIME)?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| Error::Data("start_time is not a timestamp".into()))?;
    let end = column(b, col::END_TIME)?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| Error::Data("end_time is not a timestamp".into()))?;
    let duration = column(b, col::DURATION_NS)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Data("duration_ns is not Int64".into()))?;
    let status_code = column(b, col::STATUS_CODE)?
        .as_primitive_opt::<Int8Type>()
        .ok_or_else(|| Error::Data("status_code is not Int8".into()))?;
    // Optional: sources written before these were read have none.
    let text = |name: &str| {
        b.column_by_name(name)
            .and_then(|a| a.as_string_opt::<i32>())
    };
    let (status_message, exception_message) =
        (text(col::STATUS_MESSAGE), text(col::EXCEPTION_MESSAGE));
    for i in 0..b.num_rows() {
        let (Ok(t), Ok(s)) = (
            <[u8; 16]>::try_from(trace.value(i)),
            <[u8; 8]>::try_from(span.value(i)),
        ) else {
            continue;
        };
        let p = if parent.is_null(i) {
            None
        } else {
            <[u8; 8]>::try_from(parent.value(i)).ok()
        };
        let start_ns = start.value(i);
        let error = status_code.value(i) == status::ERROR;
        let error_text = if error {
            fn part(a: Option<&StringArray>, i: usize) -> Option<&str> {
                a.filter(|a| !a.is_null(i))
                    .map(|a| a.value(i))
                    .filter(|v| !v.is_empty())
            }
            match (part(status_message, i), part(exception_message, i)) {
                (None, None) => None,
                (Some(a), None) | (None, Some(a)) => Some(strings.intern(a)),
                (Some(a), Some(b)) => Some(strings.intern(&format!("{a}\n{b}"))),
            }
        } else {
            None
        };
        out.push(SpanRec {
            trace: t,
            span: s,
            parent: p,
            service: service[i].unwrap_or(0),
            version: version[i],
            instance: instance[i].or(pod[i]),
            operation: name[i].unwrap_or(0),
            start_ns,
            end_ns: end.value(i).max(start_ns),
            error,
            events: events[i],
            self_ns: duration.value(i).max(0),
            child_error: false,
            remote_child: None,
            error_text,
        });
    }
    Ok(())
}

/// Self time of every span whose children are in the set: its duration
/// minus the union of the children's intervals clipped to it (parallel
/// calls count once; a child outliving its parent cannot make it
/// negative). Also marks spans with a failing child.
pub fn compute_self_times(spans: &mut [SpanRec]) {
    let index: HashMap<([u8; 16], [u8; 8]), usize, foldhash::fast::RandomState> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.span), i))
        .collect();
    let mut children: HashMap<usize, Vec<(i64, i64)>, foldhash::fast::RandomState> =
        HashMap::default();
    let mut failing = Vec::new();
    // (parent, child's service) of children in another service.
    let mut remote: Vec<(usize, u32)> = Vec::new();
    for s in spans.iter() {
        let Some(p) = s.parent else { continue };
        if let Some(&pi) = index.get(&(s.trace, p)) {
            children.entry(pi).or_default().push((s.start_ns, s.end_ns));
            if s.error {
                failing.push(pi);
            }
            remote.push((pi, s.service));
        }
    }
    for pi in failing {
        spans[pi].child_error = true;
    }
    // Several services below one span: no single remote child.
    const AMBIGUOUS: u32 = u32::MAX;
    for (pi, service) in remote {
        let parent = &mut spans[pi];
        if service == parent.service {
            continue;
        }
        parent.remote_child = match parent.remote_child {
            None => Some(service),
            Some(s) if s == service => Some(s),
            Some(_) => Some(AMBIGUOUS),
        };
    }
    for s in spans.iter_mut() {
        if s.remote_child == Some(AMBIGUOUS) {
            s.remote_child = None;
        }
    }
    for (pi, mut intervals) in children {
        let parent = &mut spans[pi];
        parent.self_ns = self_time(parent.start_ns, parent.end_ns, &mut intervals);
    }
}

/// `end - start` minus the union of `intervals` clipped to it.
pub fn self_time(start: i64, end: i64, intervals: &mut [(i64, i64)]) -> i64 {
    intervals.sort_unstable();
    let mut covered = 0i64;
    let mut cursor = start;
    for &(s, e) in intervals.iter() {
        let (s, e) = (s.max(cursor), e.min(end));
        if e > s {
            covered += e - s;
            cursor = e;
        }
    }
    (end - start - covered).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_time_counts_overlaps_once_and_clips() {
        // Parent 0..100; children 10..30 and 20..40 overlap (30 covered),
        // 90..150 outlives the parent (10 covered).
        let mut iv = vec![(90, 150), (20, 40), (10, 30)];
        assert_eq!(self_time(0, 100, &mut iv), 100 - 30 - 10);
        assert_eq!(self_time(0, 100, &mut []), 100);
        // A child covering everything leaves nothing.
        assert_eq!(self_time(0, 100, &mut [(-5, 200)]), 0);
    }
}
