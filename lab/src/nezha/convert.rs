//! One case minute of the Nezha CSVs (spans, and logs that name a trace)
//! as one OTLP request: pods to resources, rows to spans with their kind
//! inferred from structure, log lines to span events of the span they name.

use super::*;

/// One span row, ids decoded.
struct Row {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// `None` for `root`.
    parent: Option<[u8; 8]>,
    pod: usize,
    name: String,
    start: u64,
    end: u64,
}

/// Converts one minute: spans from `trace_csv`, errors and hosts from
/// `log_csv`.
pub(crate) fn convert_minute(
    trace_csv: &Path,
    log_csv: Option<&Path>,
) -> Result<(ExportTraceServiceRequest, MinuteStats), NezhaError> {
    convert_files(&[(trace_csv.to_owned(), log_csv.map(Path::to_owned))])
}

/// Converts several minutes as one: consecutive minute files share some
/// spans, which count once, and a parent in the previous minute's file
/// still decides its child's kind.
pub(crate) fn convert_files(
    files: &[(PathBuf, Option<PathBuf>)],
) -> Result<(ExportTraceServiceRequest, MinuteStats), NezhaError> {
    let mut stats = MinuteStats::default();
    let mut pods = Pods::default();
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for (trace_csv, _) in files {
        read_spans(trace_csv, &mut pods, &mut stats, &mut seen, &mut rows)?;
    }
    stats.spans = rows.len() as u64;
    let index: HashMap<([u8; 16], [u8; 8]), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.trace_id, r.span_id), i))
        .collect();
    // Rows with a child in another service: outgoing calls, whatever
    // their name (see `infer_kind`).
    let mut calls_out = vec![false; rows.len()];
    for row in &rows {
        if let Some(&pi) = row.parent.and_then(|p| index.get(&(row.trace_id, p)))
            && pods.service(rows[pi].pod) != pods.service(row.pod)
        {
            calls_out[pi] = true;
        }
    }
    let mut spans: Vec<Span> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let parent_service = row.parent.map(|p| {
                index
                    .get(&(row.trace_id, p))
                    .map(|&i| pods.service(rows[i].pod))
            });
            Span {
                trace_id: row.trace_id.to_vec(),
                span_id: row.span_id.to_vec(),
                parent_span_id: row.parent.map(|p| p.to_vec()).unwrap_or_default(),
                name: row.name.clone(),
                kind: infer_kind(
                    &row.name,
                    pods.service(row.pod),
                    parent_service,
                    calls_out[i],
                ) as i32,
                start_time_unix_nano: row.start,
                end_time_unix_nano: row.end,
                ..Default::default()
            }
        })
        .collect();
    let mut nodes = HashMap::new();
    let mut lines = Vec::new();
    for log_csv in files.iter().filter_map(|(_, log)| log.as_deref()) {
        lines.extend(read_logs(log_csv, &mut nodes, &mut stats)?);
    }
    attach_logs(lines, &index, &mut spans, &mut stats);

    let mut by_pod: BTreeMap<&str, (usize, Vec<Span>)> = BTreeMap::new();
    for (row, span) in rows.iter().zip(spans) {
        by_pod
            .entry(pods.name(row.pod))
            .or_insert_with(|| (row.pod, Vec::new()))
            .1
            .push(span);
    }
    stats.pods = by_pod.len() as u64;
    let resource_spans = by_pod
        .into_iter()
        .map(|(pod, (id, spans))| {
            let mut attributes = vec![
                string_attr("service.name", pods.service(id)),
                string_attr("k8s.pod.name", pod),
            ];
            if let Some(node) = nodes.get(pod) {
                attributes.push(string_attr("host.name", node));
            }
            ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    Ok((ExportTraceServiceRequest { resource_spans }, stats))
}

/// The span kind the CSV does not record, from the call structure:
///
/// - an operation named `HTTP <method>` is an outgoing call: CLIENT (this
///   wins over the rules below);
/// - a root (`ParentID` `root`), or a span whose parent is in another
///   service, handles an incoming call: SERVER;
/// - a span of its own service's code whose child runs in another service
///   (`calls_out`) makes that call: CLIENT. Applications name client spans
///   differently (Java's `HTTP GET`, gRPC's `hipstershop.CartService/GetCart`
///   on both sides, Node's `grpc.…`), so the structure decides, not the name;
/// - otherwise INTERNAL, which includes a parent that is not in this
///   minute's file (`parent_service` `Some(None)`): it may be in the
///   previous minute or lost, and guessing SERVER there would invent
///   service boundaries.
///
/// `parent_service`: `None` for a root, `Some(None)` for an unknown parent.
pub(crate) fn infer_kind(
    operation: &str,
    service: &str,
    parent_service: Option<Option<&str>>,
    calls_out: bool,
) -> SpanKind {
    if operation.starts_with("HTTP ") {
        return SpanKind::Client;
    }
    match parent_service {
        None => SpanKind::Server,
        Some(Some(parent)) if parent != service => SpanKind::Server,
        Some(Some(_)) if calls_out => SpanKind::Client,
        Some(_) => SpanKind::Internal,
    }
}

/// Pod names, each with its service, interned.
#[derive(Default)]
struct Pods {
    names: Vec<(String, String)>,
    ids: HashMap<String, usize>,
}

impl Pods {
    fn intern(&mut self, pod: &str) -> usize {
        if let Some(&id) = self.ids.get(pod) {
            return id;
        }
        let id = self.names.len();
        self.names
            .push((pod.to_owned(), service_of(pod).to_owned()));
        self.ids.insert(pod.to_owned(), id);
        id
    }

    fn name(&self, id: usize) -> &str {
        &self.names[id].0
    }

    fn service(&self, id: usize) -> &str {
        &self.names[id].1
    }
}

/// A CSV reader over `path` and the indices of `columns` in its header.
fn open_csv<const N: usize>(
    path: &Path,
    columns: [&'static str; N],
) -> Result<(csv::Reader<File>, [usize; N]), NezhaError> {
    let file = File::open(path).map_err(|source| NezhaError::Io {
        path: path.to_owned(),
        source,
    })?;
    // Flexible: a row with a wrong field count is skipped and counted, not
    // fatal (one log file has rows where two writes interleaved).
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let header = reader.byte_headers().map_err(|source| NezhaError::Csv {
        path: path.to_owned(),
        line: 1,
        source,
    })?;
    let names: Vec<&[u8]> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.strip_prefix("\u{feff}".as_bytes()).unwrap_or(h)
            } else {
                h
            };
            h.trim_ascii()
        })
        .collect();
    let mut indices = [0; N];
    for (slot, column) in indices.iter_mut().zip(columns) {
        *slot = names
            .iter()
            .position(|n| *n == column.as_bytes())
            .ok_or_else(|| NezhaError::MissingColumn {
                path: path.to_owned(),
                column,
            })?;
    }
    Ok((reader, indices))
}

/// Reads the next record; `Ok(None)` at the end of the file.
fn next_record(
    reader: &mut csv::Reader<File>,
    record: &mut csv::ByteRecord,
    path: &Path,
) -> Result<Option<u64>, NezhaError> {
    match reader.read_byte_record(record) {
        Ok(true) => Ok(Some(record.position().map_or(0, csv::Position::line))),
        Ok(false) => Ok(None),
        Err(source) => Err(NezhaError::Csv {
            path: path.to_owned(),
            line: source
                .position()
                .map_or_else(|| reader.position().line(), csv::Position::line),
            source,
        }),
    }
}

/// Appends the rows of `path` not already in `seen` to `rows`.
fn read_spans(
    path: &Path,
    pods: &mut Pods,
    stats: &mut MinuteStats,
    seen: &mut HashSet<([u8; 16], [u8; 8])>,
    rows: &mut Vec<Row>,
) -> Result<(), NezhaError> {
    let (mut reader, cols) = open_csv(
        path,
        [
            "TraceID",
            "SpanID",
            "ParentID",
            "PodName",
            "OperationName",
            "StartTimeUnixNano",
            "EndTimeUnixNano",
        ],
    )?;
    let mut record = csv::ByteRecord::new();
    while let Some(line) = next_record(&mut reader, &mut record, path)? {
        let row = parse_span_row(&record, cols, pods);
        let row = match row {
            Ok(row) => row,
            Err(why) => {
                tracing::debug!(file = %path.display(), line, why, "span row skipped");
                stats.skipped_rows += 1;
                continue;
            }
        };
        if seen.insert((row.trace_id, row.span_id)) {
            rows.push(row);
        } else {
            stats.duplicate_rows += 1;
        }
    }
    Ok(())
}

fn parse_span_row(
    record: &csv::ByteRecord,
    [trace, span, parent, pod, op, start, end]: [usize; 7],
    pods: &mut Pods,
) -> Result<Row, &'static str> {
    let field = |i: usize| -> Result<&str, &'static str> {
        let raw = record.get(i).ok_or("too few fields")?;
        std::str::from_utf8(raw).map_err(|_| "not UTF-8")
    };
    let trace_id = hex_id::<16>(field(trace)?).ok_or("malformed TraceID")?;
    let span_id = hex_id::<8>(field(span)?).ok_or("malformed SpanID")?;
    let parent = match field(parent)? {
        "root" => None,
        p => Some(hex_id::<8>(p).ok_or("malformed ParentID")?),
    };
    let pod_name = field(pod)?;
    if pod_name.is_empty() {
        return Err("empty PodName");
    }
    let name = field(op)?.to_owned();
    let start: u64 = field(start)?
        .parse()
        .map_err(|_| "malformed StartTimeUnixNano")?;
    let end: u64 = field(end)?
        .parse()
        .map_err(|_| "malformed EndTimeUnixNano")?;
    if start == 0 || end < start {
        return Err("end before start, or zero start");
    }
    Ok(Row {
        trace_id,
        span_id,
        parent,
        pod: pods.intern(pod_name),
        name,
        start,
        end,
    })
}

/// A lowercase or uppercase hex id of exactly `N` bytes, not all zero (OTLP
/// receivers reject all-zero ids).
pub(super) fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim().as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *byte = (hi * 16 + lo) as u8;
    }
    out.iter().any(|&b| b != 0).then_some(out)
}

/// A log line with trace context.
struct LogEvent {
    time: u64,
    ids: Option<([u8; 16], [u8; 8])>,
    level: &'static str,
    /// `code.namespace` and `code.lineno` from logback's `Class#line`.
    namespace: Option<String>,
    lineno: Option<i64>,
    message: String,
    /// For ERROR lines: the status message and the exception.
    error: Option<(String, logline::ExceptionInfo)>,
}

/// Reads the log file: each pod's node into `nodes`, and the lines.
fn read_logs(
    path: &Path,
    nodes: &mut HashMap<String, String>,
    stats: &mut MinuteStats,
) -> Result<Vec<LogEvent>, NezhaError> {
    let (mut reader, [time, node, pod, trace, span, log]) = open_csv(
        path,
        [
            "TimeUnixNano",
            "Node",
            "PodName",
            "TraceID",
            "SpanID",
            "Log",
        ],
    )?;
    let mut record = csv::ByteRecord::new();
    let mut lines = Vec::new();
    while let Some(line) = next_record(&mut reader, &mut record, path)? {
        let field = |i: usize| record.get(i).map(String::from_utf8_lossy);
        let (Some(pod), Some(log)) = (field(pod), field(log)) else {
            tracing::debug!(file = %path.display(), line, "log row with too few fields skipped");
            stats.skipped_log_rows += 1;
            continue;
        };
        if let Some(node) = field(node).filter(|n| !n.is_empty())
            && !nodes.contains_key(pod.as_ref())
        {
            nodes.insert(pod.to_string(), node.into_owned());
        }
        let Some(text) = application_line(&log) else {
            tracing::debug!(file = %path.display(), line, "unreadable Log column skipped");
            stats.skipped_log_rows += 1;
            continue;
        };
        // A structured record is read as the text layout it encodes.
        let text = logline::normalize_json(&text).unwrap_or(text);
        let Some(parsed) = logline::parse(&text) else {
            continue;
        };
        let ids = match (field(trace), field(span)) {
            (Some(t), Some(s)) => hex_id::<16>(&t).zip(hex_id::<8>(&s)),
            _ => None,
        };
        let error = matches!(parsed.level, "ERROR" | "FATAL").then(|| {
            stats.error_lines += 1;
            (
                logline::truncate_chars(parsed.message, STATUS_MESSAGE_CHARS).to_owned(),
                parsed.exception(),
            )
        });
        let (namespace, lineno) = match parsed.logger.map(|l| l.split_once('#').unwrap_or((l, "")))
        {
            Some((ns, line)) => (Some(ns.to_owned()), line.parse().ok()),
            None => (None, None),
        };
        lines.push(LogEvent {
            time: field(time).and_then(|t| t.trim().parse().ok()).unwrap_or(0),
            ids,
            level: parsed.level,
            namespace,
            lineno,
            message: logline::truncate_chars(parsed.message, LOG_MESSAGE_CHARS).to_owned(),
            error,
        });
    }
    Ok(lines)
}

/// The application line inside the `Log` column: the `log` field of the
/// container runtime's JSON record, or the column itself when it is not
/// JSON. Trailing bytes after the JSON object are ignored (interleaved
/// writes left a few rows with garbage after a valid record).
fn application_line(column: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Record {
        log: String,
    }
    if !column.trim_start().starts_with('{') {
        return Some(column.to_owned());
    }
    let mut records = serde_json::Deserializer::from_str(column).into_iter::<Record>();
    records.next()?.ok().map(|r| r.log)
}

/// Records every log line on its span as a `log` event (severity, code
/// location, message), as a tracing bridge for logs does, and marks the
/// spans of ERROR lines: the earliest line's message becomes the status
/// message, and each distinct exception type (a line without one counts
/// as one type) adds an `exception` event.
fn attach_logs(
    mut lines: Vec<LogEvent>,
    index: &HashMap<([u8; 16], [u8; 8]), usize>,
    spans: &mut [Span],
    stats: &mut MinuteStats,
) {
    // Log rows are not in time order; a stable sort keeps file order on ties.
    lines.sort_by_key(|e| e.time);
    let mut types_seen: HashMap<usize, Vec<Option<String>>> = HashMap::new();
    for line in lines {
        let Some(&i) = line.ids.as_ref().and_then(|ids| index.get(ids)) else {
            if line.error.is_some() {
                stats.unattached_error_lines += 1;
            }
            continue;
        };
        let span = &mut spans[i];
        let time = if line.time == 0 {
            span.start_time_unix_nano
        } else {
            line.time
        };
        let mut attributes = vec![string_attr("log.severity", line.level)];
        if let Some(ns) = &line.namespace {
            attributes.push(string_attr("code.namespace", ns));
        }
        if let Some(n) = line.lineno {
            attributes.push(KeyValue {
                key: "code.lineno".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(n)),
                }),
                ..Default::default()
            });
        }
        attributes.push(string_attr("message", &line.message));
        span.events.push(Event {
            time_unix_nano: time,
            name: "log".to_owned(),
            attributes,
            dropped_attributes_count: 0,
        });
        stats.log_events += 1;
        let Some((status, ex)) = line.error else {
            continue;
        };
        if span.status.is_none() {
            span.status = Some(Status {
                message: status,
                code: StatusCode::Error as i32,
            });
            stats.error_spans += 1;
        }
        let seen = types_seen.entry(i).or_default();
        if seen.contains(&ex.ty) {
            continue;
        }
        let mut attributes = Vec::with_capacity(3);
        if let Some(ty) = &ex.ty {
            attributes.push(string_attr("exception.type", ty));
        }
        attributes.push(string_attr("exception.message", &ex.message));
        if let Some(stack) = &ex.stacktrace {
            attributes.push(string_attr("exception.stacktrace", stack));
        }
        span.events.push(Event {
            time_unix_nano: time,
            name: "exception".to_owned(),
            attributes,
            dropped_attributes_count: 0,
        });
        seen.push(ex.ty);
        stats.exception_events += 1;
    }
}

fn string_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}
