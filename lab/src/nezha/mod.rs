//! The Nezha Train Ticket fault data set (one CSV of spans and one of logs
//! per minute, plus fault labels) turned into OTLP export requests, so that
//! labelled incidents can be replayed through causeway.
//!
//! The span CSV has neither span kind nor status. Kind is inferred from the
//! call structure ([`infer_kind`]); errors come from the ERROR log lines,
//! which carry trace and span ids, the way OpenTelemetry instrumentation
//! records an exception: status ERROR and an `exception` span event.

mod cli;
mod convert;
mod eval;
mod logline;
mod requests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

pub use cli::NezhaCommand;
pub(crate) use cli::run;
#[cfg(test)]
use convert::hex_id;
pub(crate) use convert::{convert_files, convert_minute};
pub(crate) use eval::eval_nezha;

/// A fault case spans the injection minute and the two after it, as Nezha
/// evaluates.
const CASE_MINUTES: i64 = 3;
const NANOS_PER_MINUTE: i64 = 60_000_000_000;
/// `Status.message` is cut to this many characters.
const STATUS_MESSAGE_CHARS: usize = 256;
/// A `log` event's message is cut to this many characters (the template
/// needs its start; some lines dump whole objects).
const LOG_MESSAGE_CHARS: usize = 512;
const SCOPE_NAME: &str = "causeway.nezha";

/// Problems that stop a file from being read. Malformed rows are not among
/// them: they are skipped and counted in [`MinuteStats`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum NezhaError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {source}", .path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        source: csv::Error,
    },
    #[error("{}:1: no {column:?} column in the header", .path.display())]
    MissingColumn { path: PathBuf, column: &'static str },
    /// serde_json's message ends with the line and column.
    #[error("{}: {source}", .path.display())]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{}: {message}", .path.display())]
    Layout { path: PathBuf, message: String },
}

/// One labelled fault injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultCase {
    /// The fault list's group key ("08").
    pub(crate) hour: String,
    pub(crate) inject_time_ns: i64,
    /// As written in the file: `2023-01-29 08:43:04`, UTC.
    pub(crate) inject_time: String,
    pub(crate) pod: String,
    /// The root-cause service.
    pub(crate) service: String,
    /// `exception`, `return`, `cpu_contention`, ...
    pub(crate) kind: String,
}

/// What converting one minute did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MinuteStats {
    /// Spans written.
    pub(crate) spans: u64,
    /// Pods, one `ResourceSpans` each.
    pub(crate) pods: u64,
    /// Span rows with malformed ids or times, or too few fields.
    pub(crate) skipped_rows: u64,
    /// Span rows repeating a (trace id, span id) already read; the first
    /// wins (the data set has some exact duplicates).
    pub(crate) duplicate_rows: u64,
    /// Spans with status ERROR.
    pub(crate) error_spans: u64,
    pub(crate) exception_events: u64,
    /// Log lines recorded as `log` span events.
    pub(crate) log_events: u64,
    /// ERROR log lines seen.
    pub(crate) error_lines: u64,
    /// ERROR log lines whose span is not in this minute's span file (or
    /// whose ids are malformed).
    pub(crate) unattached_error_lines: u64,
    /// Log rows with too few fields or an unreadable `Log` column.
    pub(crate) skipped_log_rows: u64,
}

/// Reads a `YYYY-MM-DD-fault_list.json`, cases sorted by injection time.
pub(crate) fn load_fault_list(path: &Path) -> Result<Vec<FaultCase>, NezhaError> {
    #[derive(Deserialize)]
    struct Raw {
        inject_time: InjectTime,
        #[serde(deserialize_with = "non_empty")]
        inject_pod: String,
        inject_type: String,
        // `inject_timestamp` is ignored: 8 hours off on 2023-01-29.
    }
    let text = std::fs::read_to_string(path).map_err(|source| NezhaError::Io {
        path: path.to_owned(),
        source,
    })?;
    let groups: BTreeMap<String, Vec<Raw>> =
        serde_json::from_str(&text).map_err(|source| NezhaError::Json {
            path: path.to_owned(),
            line: source.line(),
            source,
        })?;
    let mut cases: Vec<FaultCase> = groups
        .into_iter()
        .flat_map(|(hour, raws)| {
            raws.into_iter().map(move |r| FaultCase {
                hour: hour.clone(),
                inject_time_ns: r.inject_time.ns,
                inject_time: r.inject_time.text,
                service: service_of(&r.inject_pod).to_owned(),
                pod: r.inject_pod,
                kind: r.inject_type,
            })
        })
        .collect();
    cases.sort_by_key(|c| c.inject_time_ns);
    Ok(cases)
}

/// The `inject_time` text and its value, parsed while deserializing so that
/// a bad time is reported with its line.
struct InjectTime {
    text: String,
    ns: i64,
}

impl<'de> Deserialize<'de> for InjectTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let ns = parse_utc_time(&text).map_err(D::Error::custom)?;
        Ok(InjectTime { text, ns })
    }
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(D::Error::custom("empty inject_pod"));
    }
    Ok(s)
}

/// The service of a Kubernetes Deployment's pod: the pod name without its
/// two last `-` parts (ReplicaSet hash and pod suffix). A name with fewer
/// parts is returned whole.
pub(crate) fn service_of(pod: &str) -> &str {
    let mut parts = pod.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(service)) if !service.is_empty() => service,
        _ => pod,
    }
}

/// `2023-01-29 08:43:04` (or with `T`, fractional seconds, `Z`), UTC, in
/// unix nanoseconds.
pub(crate) fn parse_utc_time(s: &str) -> Result<i64, String> {
    let bad = || format!("bad time {s:?}: expected YYYY-MM-DD HH:MM:SS (UTC)");
    let bare = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = bare
        .split_once(' ')
        .or_else(|| bare.split_once('T'))
        .ok_or_else(bad)?;
    let num = |part: &str, digits: usize| -> Result<i64, String> {
        if part.len() != digits || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let (y, mo, day) = (num(y, 4)?, num(mo, 2)?, num(day, 2)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let (h, mi, sec) = (num(h, 2)?, num(mi, 2)?, num(sec, 2)?);
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - frac.len() as u32)
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = usize::try_from(mo - 1)
        .ok()
        .and_then(|m| month_days.get(m))
        .is_some_and(|&days| (1..=days).contains(&day))
        && h < 24
        && mi < 60
        && sec < 60;
    if !valid {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + sec;
    Ok(secs * 1_000_000_000 + frac_ns)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `HH_MM` of a unix minute, as the data set names its files.
pub(crate) fn minute_name(unix_minute: i64) -> String {
    let of_day = unix_minute.rem_euclid(24 * 60);
    format!("{:02}_{:02}", of_day / 60, of_day % 60)
}

/// `HH_MM` of a `HH_MM_trace.csv` path.
pub(crate) fn minute_of(trace_csv: &Path) -> Option<&str> {
    trace_csv.file_name()?.to_str()?.strip_suffix("_trace.csv")
}

/// The span and log files of a case's minutes that exist, in order; a
/// missing one is skipped with a warning.
pub(crate) fn case_minutes(day_dir: &Path, case: &FaultCase) -> Vec<(PathBuf, Option<PathBuf>)> {
    let first = case.inject_time_ns.div_euclid(NANOS_PER_MINUTE);
    (first..first + CASE_MINUTES)
        .filter_map(|minute| {
            let name = minute_name(minute);
            let trace = day_dir.join("trace").join(format!("{name}_trace.csv"));
            if !trace.is_file() {
                tracing::warn!(file = %trace.display(), case = %case.inject_time, "no span file for this minute of the case");
                return None;
            }
            let log = day_dir.join("log").join(format!("{name}_log.csv"));
            let log = if log.is_file() {
                Some(log)
            } else {
                tracing::warn!(file = %log.display(), case = %case.inject_time, "no log file for this minute of the case");
                None
            };
            Some((trace, log))
        })
        .collect()
}

/// How many of a case's minutes have no span file: the case is then
/// incomplete, and is reported as such rather than scored as if whole.
pub(crate) fn missing_minutes(day_dir: &Path, case: &FaultCase) -> usize {
    let first = case.inject_time_ns.div_euclid(NANOS_PER_MINUTE);
    (first..first + CASE_MINUTES)
        .filter(|&minute| {
            !day_dir
                .join("trace")
                .join(format!("{}_trace.csv", minute_name(minute)))
                .is_file()
        })
        .count()
}
