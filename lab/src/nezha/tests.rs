use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;

use super::*;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "causeway-nezha-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(&path, text).expect("write fixture");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TRACE_HEADER: &str =
    "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n";
const T1: &str = "0123456789abcdef0123456789abcdef";
const T2: &str = "fedcba9876543210fedcba9876543210";
const GATEWAY: &str = "ts-gateway-service-6f6cfc45b-h5m2n";
const TRAVEL: &str = "ts-travel-service-64469b5b48-25zj6";
const ROUTE: &str = "ts-route-service-b6c59fb57-zv8dt";

/// `span` as a 16-hex-digit span id: `g1` -> `00000000000000g1` is not hex,
/// so names map to `a0000000000000NN` by their position in `NAMES`.
fn sid(name: &str) -> String {
    const NAMES: [&str; 10] = ["g1", "g2", "g3", "t1", "t2", "t3", "u1", "u2", "r1", "c1"];
    let i = NAMES
        .iter()
        .position(|n| *n == name)
        .expect("known span name");
    format!("a0000000000000{:02x}", i + 1)
}

fn trace_row(trace: &str, span: &str, parent: &str, pod: &str, op: &str, start: u64) -> String {
    let parent = if parent == "root" {
        "root".to_owned()
    } else {
        sid(parent)
    };
    let end = start + 1000;
    format!(
        "{trace},{},{parent},{pod},{op},{start},{end},1\n",
        sid(span)
    )
}

/// A log CSV; `Log` is the container runtime's JSON around `line`.
fn log_csv(rows: &[(&str, &str, &str, &str, u64, &str)]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Timestamp",
        "TimeUnixNano",
        "Node",
        "PodName",
        "Container",
        "TraceID",
        "SpanID",
        "Log",
    ])
    .expect("header");
    for (node, pod, trace, span, time, line) in rows {
        let log =
            serde_json::json!({"log": line, "stream": "stdout", "time": "2023-01-29T10:04:00Z"});
        w.write_record([
            "2023-01-29T10:04:00Z",
            &time.to_string(),
            node,
            pod,
            "server",
            trace,
            span,
            &log.to_string(),
        ])
        .expect("row");
    }
    String::from_utf8(w.into_inner().expect("flush")).expect("utf-8")
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Spans by hex span id, each with its resource attributes.
fn spans_by_id(request: &ExportTraceServiceRequest) -> HashMap<String, (&Span, &[KeyValue])> {
    let mut out = HashMap::new();
    for rs in &request.resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let id: String = span.span_id.iter().map(|b| format!("{b:02x}")).collect();
                out.insert(id, (span, attrs));
            }
        }
    }
    out
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).expect("valid kind")
}

#[test]
fn service_is_the_pod_name_without_its_two_last_parts() {
    assert_eq!(
        service_of("ts-travel-service-5d8b6c8d9c-xk2lq"),
        "ts-travel-service"
    );
    assert_eq!(service_of(GATEWAY), "ts-gateway-service");
    assert_eq!(service_of("redis-abc-0"), "redis");
    // Too few parts to strip: the name whole.
    assert_eq!(service_of("mysql-0"), "mysql-0");
    assert_eq!(service_of("standalone"), "standalone");
    assert_eq!(service_of("-a-b"), "-a-b");
}

#[test]
fn kinds_follow_the_call_structure() {
    let dir = TempDir::new("kinds");
    let text = [
        TRACE_HEADER.to_owned(),
        trace_row(T1, "g1", "root", GATEWAY, "/*", 1000),
        trace_row(T1, "g2", "g1", GATEWAY, "FilteringWebHandler.handle", 1100),
        trace_row(T1, "g3", "g2", GATEWAY, "HTTP GET", 1200),
        // The callee's span comes before its parent in the file.
        trace_row(T1, "t2", "t1", TRAVEL, "TravelServiceImpl.query", 1400),
        trace_row(T1, "t1", "g3", TRAVEL, "/api/v1/travelservice/trips", 1300),
        trace_row(T1, "t3", "t1", TRAVEL, "HTTP POST", 1500),
        // A root that is an HTTP call: the HTTP rule wins.
        trace_row(T2, "u1", "root", TRAVEL, "HTTP GET", 2000),
        // Parent not in this file.
        trace_row(T2, "u2", "g1", ROUTE, "/api/v1/routeservice/routes", 2100),
        // A gRPC client span named like its server span: its child in
        // another service makes it the call.
        trace_row(
            T2,
            "r1",
            "u2",
            ROUTE,
            "hipstershop.CartService/GetCart",
            2200,
        ),
        trace_row(
            T2,
            "c1",
            "r1",
            TRAVEL,
            "hipstershop.CartService/GetCart",
            2300,
        ),
    ]
    .concat();
    let trace = dir.write("trace/10_04_trace.csv", &text);
    let (request, stats) = convert_minute(&trace, None).expect("converts");
    assert_eq!(stats.spans, 10);
    assert_eq!(stats.pods, 3);
    assert_eq!(request.resource_spans.len(), 3);
    let spans = spans_by_id(&request);
    let expect = [
        ("g1", SpanKind::Server),
        ("g2", SpanKind::Internal),
        ("g3", SpanKind::Client),
        ("t1", SpanKind::Server),
        ("t2", SpanKind::Internal),
        ("t3", SpanKind::Client),
        ("u1", SpanKind::Client),
        ("u2", SpanKind::Internal),
        ("r1", SpanKind::Client),
        ("c1", SpanKind::Server),
    ];
    for (name, want) in expect {
        assert_eq!(kind(spans[&sid(name)].0), want, "span {name}");
    }
    let (g1, attrs) = spans[&sid("g1")];
    assert!(g1.parent_span_id.is_empty());
    assert_eq!(g1.trace_id.len(), 16);
    assert_eq!(
        (g1.start_time_unix_nano, g1.end_time_unix_nano),
        (1000, 2000)
    );
    assert_eq!(attr(attrs, "service.name"), Some("ts-gateway-service"));
    assert_eq!(attr(attrs, "k8s.pod.name"), Some(GATEWAY));
    assert_eq!(attr(attrs, "host.name"), None, "no log file, no node");
    let (t1, attrs) = spans[&sid("t1")];
    assert_eq!(t1.parent_span_id, hex_id::<8>(&sid("g3")).expect("id"));
    assert_eq!(attr(attrs, "service.name"), Some("ts-travel-service"));
    assert!(spans.values().all(|(s, _)| s.status.is_none()));
}

#[test]
fn error_lines_become_status_and_exception_events() {
    let dir = TempDir::new("errors");
    let text = [
        TRACE_HEADER.to_owned(),
        trace_row(T1, "g1", "root", GATEWAY, "/*", 1000),
        trace_row(T1, "t1", "g1", TRAVEL, "/api/v1/travelservice/trips", 1300),
        trace_row(T1, "t2", "t1", TRAVEL, "TravelServiceImpl.query", 1400),
    ]
    .concat();
    let trace = dir.write("trace/10_04_trace.csv", &text);
    let ctx = |span: &str| format!("TraceID: {T1} SpanID: {}", sid(span));
    let t1 = sid("t1");
    let t2 = sid("t2");
    let stack = format!(
        "16:42:22.382 ERROR  t.s.TravelServiceImpl#532 {} [queryInfo][boom]\n\
         java.lang.IllegalStateException: No instances available for ts-basic-service\n\
         \tat org.example.Client.call(Client.java:10)\n\
         \tat org.example.Service.query(Service.java:20)\n\
         Caused by: java.io.IOException: refused\n",
        ctx("t1")
    );
    let same_type_later = stack.replace("[boom]", "[again]");
    // One space after the level, and the exception only named inside
    // Spring's wrapper message.
    let nested = format!(
        "16:42:22.100 ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 {} Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception [Request processing failed; nested exception is org.springframework.web.client.HttpServerErrorException$InternalServerError: 500 Internal Server Error: [{{\"status\":500}}]] with root cause\n",
        ctx("t1")
    );
    let long = format!(
        "16:42:23.000 ERROR f.s.FoodServiceImpl#302 {} [getAllFood][{}]\n",
        ctx("t2"),
        "x".repeat(300)
    );
    let plain = format!(
        "16:42:24.000 ERROR f.s.FoodServiceImpl#302 {} [getAllFood][Get the Get Food Request Failed!]\n",
        ctx("t2")
    );
    let info = format!(
        "16:42:21.000 INFO  t.s.TravelServiceImpl#500 {} [queryInfo][start]\n",
        ctx("t1")
    );
    let warn = format!(
        "16:42:21.500 WARN  t.s.TravelServiceImpl#501 {} java.lang.RuntimeException: not an error line\n",
        ctx("t1")
    );
    let unknown_span =
        format!("16:42:25.000 ERROR x.Y#1 TraceID: {T1} SpanID: bbbbbbbbbbbbbbbb [elsewhere]\n");
    let node = "33.33.33.116";
    let log = log_csv(&[
        (node, TRAVEL, T1, &t1, 5_000, &info),
        (node, TRAVEL, T1, &t1, 5_500, &warn),
        (node, TRAVEL, T1, &t1, 6_000, &stack),
        (node, TRAVEL, T1, &t1, 7_000, &same_type_later),
        (node, TRAVEL, T1, &t1, 4_000, &nested),
        (node, TRAVEL, T1, &t2, 8_000, &long),
        (node, TRAVEL, T1, &t2, 9_000, &plain),
        (node, TRAVEL, T1, "bbbbbbbbbbbbbbbb", 9_500, &unknown_span),
        (node, TRAVEL, T1, "zz", 9_600, &unknown_span),
    ]);
    let log = dir.write("log/10_04_log.csv", &log);
    let (request, stats) = convert_minute(&trace, Some(&log)).expect("converts");
    assert_eq!(stats.error_lines, 7);
    assert_eq!(stats.unattached_error_lines, 2);
    assert_eq!(stats.error_spans, 2);
    assert_eq!(stats.exception_events, 3);
    assert_eq!(stats.skipped_log_rows, 0);

    let spans = spans_by_id(&request);
    let (t1_span, attrs) = spans[&t1];
    assert_eq!(attr(attrs, "host.name"), Some(node));
    let status = t1_span.status.as_ref().expect("t1 has a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    // The earliest ERROR line (the nested one, at 4000) gives the message.
    assert!(
        status
            .message
            .starts_with("Servlet.service() for servlet [dispatcherServlet]"),
        "{}",
        status.message
    );
    let exceptions: Vec<_> = t1_span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .cloned()
        .collect();
    assert_eq!(exceptions.len(), 2, "one event per exception type");
    // Every log line of the span is a `log` event too.
    assert!(t1_span.events.iter().any(|e| e.name == "log"));
    let [first, second] = &exceptions[..] else {
        panic!("two events");
    };
    assert_eq!(first.name, "exception");
    assert_eq!(first.time_unix_nano, 4_000);
    assert_eq!(
        attr(&first.attributes, "exception.type"),
        Some("org.springframework.web.client.HttpServerErrorException$InternalServerError")
    );
    assert_eq!(
        attr(&first.attributes, "exception.message"),
        Some("500 Internal Server Error: [{\"status\":500}]")
    );
    assert_eq!(attr(&first.attributes, "exception.stacktrace"), None);
    assert_eq!(second.time_unix_nano, 6_000);
    assert_eq!(
        attr(&second.attributes, "exception.type"),
        Some("java.lang.IllegalStateException")
    );
    assert_eq!(
        attr(&second.attributes, "exception.message"),
        Some("No instances available for ts-basic-service")
    );
    let trace_text = attr(&second.attributes, "exception.stacktrace").expect("stack");
    assert!(
        trace_text.starts_with("java.lang.IllegalStateException: No instances")
            && trace_text.contains("\tat org.example.Client.call(Client.java:10)")
            && trace_text.contains("Caused by: java.io.IOException"),
        "{trace_text}"
    );

    let (t2_span, _) = spans[&t2];
    let status = t2_span.status.as_ref().expect("t2 has a status");
    assert_eq!(status.message.chars().count(), 256, "status message is cut");
    assert!(status.message.starts_with("[getAllFood][xxx"));
    // Two lines without an exception class: one exception event, no type
    // (and the two lines as log events).
    let exceptions: Vec<_> = t2_span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .collect();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(t2_span.events.iter().filter(|e| e.name == "log").count(), 2);
    let event = exceptions[0];
    assert_eq!(attr(&event.attributes, "exception.type"), None);
    assert!(
        attr(&event.attributes, "exception.message")
            .is_some_and(|m| m.starts_with("[getAllFood][xxx"))
    );

    let (g1_span, attrs) = spans[&sid("g1")];
    assert!(g1_span.status.is_none() && g1_span.events.is_empty());
    assert_eq!(attr(attrs, "host.name"), None, "the gateway logged nothing");
}

#[test]
fn malformed_rows_are_skipped_and_counted() {
    let dir = TempDir::new("malformed");
    let good = trace_row(T1, "g1", "root", GATEWAY, "/*", 1000);
    let text = [
        TRACE_HEADER.to_owned(),
        good.clone(),
        trace_row(T1, "g2", "g1", GATEWAY, "ok", 1100),
        // Short trace id, non-hex span id, bad parent, bad times, end
        // before start, all-zero trace id, too few fields.
        format!("0123,{},root,{GATEWAY},a,1,2,1\n", sid("g3")),
        format!("{T1},zzzzzzzzzzzzzzzz,root,{GATEWAY},a,1,2,1\n"),
        format!("{T1},{},nope,{GATEWAY},a,1,2,1\n", sid("t1")),
        format!("{T1},{},root,{GATEWAY},a,abc,2,1\n", sid("t2")),
        format!("{T1},{},root,{GATEWAY},a,5,2,1\n", sid("t3")),
        format!("{},{},root,{GATEWAY},a,1,2,1\n", "0".repeat(32), sid("u1")),
        format!("{T1},{}\n", sid("u2")),
        // An exact duplicate.
        good,
    ]
    .concat();
    let trace = dir.write("trace/08_50_trace.csv", &text);
    let error_line = format!(
        "16:42:22.382 ERROR  x.Y#1 TraceID: {T1} SpanID: {} [fails]\n",
        sid("g2")
    );
    let mut log = log_csv(&[("n1", GATEWAY, T1, &sid("g2"), 10, &error_line)]);
    // Too few fields, and a JSON record followed by garbage (interleaved
    // writes), which still reads.
    log.push_str("2023-01-29T10:04:00Z,11,n1\n");
    let garbage = format!(
        "{{\"log\":\"16:42:22.383 ERROR  x.Y#1 TraceID: {T1} SpanID: {} [again]\\n\",\"stream\":\"stdout\"}}:\"tail\"}}",
        sid("g1")
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["t", "12", "n1", GATEWAY, "server", T1, &sid("g1"), &garbage])
        .expect("row");
    log.push_str(&String::from_utf8(w.into_inner().expect("flush")).expect("utf-8"));
    let log = dir.write("log/08_50_log.csv", &log);

    let (request, stats) = convert_minute(&trace, Some(&log)).expect("converts");
    assert_eq!(stats.spans, 2);
    assert_eq!(stats.skipped_rows, 7);
    assert_eq!(stats.duplicate_rows, 1);
    assert_eq!(stats.skipped_log_rows, 1);
    assert_eq!(stats.error_lines, 2);
    assert_eq!(stats.error_spans, 2);
    assert_eq!(stats.unattached_error_lines, 0);
    let spans = spans_by_id(&request);
    assert_eq!(spans.len(), 2);
}

#[test]
fn a_missing_column_names_the_file_and_line() {
    let dir = TempDir::new("header");
    let trace = dir.write(
        "trace/08_50_trace.csv",
        "TraceID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano\n",
    );
    let err = convert_minute(&trace, None).expect_err("no SpanID column");
    assert!(matches!(
        err,
        NezhaError::MissingColumn {
            column: "SpanID",
            ..
        }
    ));
    let text = err.to_string();
    assert!(text.contains("08_50_trace.csv:1:"), "{text}");
    let err = convert_minute(&dir.0.join("trace/nope.csv"), None).expect_err("no file");
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn fault_list_cases_are_sorted_with_service_and_time() {
    let dir = TempDir::new("faults");
    let path = dir.write(
        "2023-01-29-fault_list.json",
        r#"{
    "09": [
        {"inject_time": "2023-01-29 09:25:39", "inject_timestamp": "1", "inject_pod": "ts-basic-service-5dc8d4f9fd-46997", "inject_type": "exception"},
        {"inject_time": "2023-01-29 09:03:53", "inject_timestamp": "1", "inject_pod": "ts-basic-service-5dc8d4f9fd-46997", "inject_type": "return"}
    ],
    "08": [
        {"inject_time": "2023-01-29 08:43:04", "inject_timestamp": "1674953044", "inject_pod": "ts-contacts-service-866bd68c97-xcqfx", "inject_type": "return"}
    ]
}"#,
    );
    let cases = load_fault_list(&path).expect("loads");
    let times: Vec<&str> = cases.iter().map(|c| c.inject_time.as_str()).collect();
    assert_eq!(
        times,
        [
            "2023-01-29 08:43:04",
            "2023-01-29 09:03:53",
            "2023-01-29 09:25:39"
        ]
    );
    assert_eq!(
        cases[0],
        FaultCase {
            hour: "08".to_owned(),
            // date -u -d "2023-01-29 08:43:04" +%s
            inject_time_ns: 1_674_981_784_000_000_000,
            inject_time: "2023-01-29 08:43:04".to_owned(),
            pod: "ts-contacts-service-866bd68c97-xcqfx".to_owned(),
            service: "ts-contacts-service".to_owned(),
            kind: "return".to_owned(),
        }
    );
    assert_eq!(cases[2].service, "ts-basic-service");
    assert_eq!(cases[2].kind, "exception");

    let bad = dir.write(
        "bad.json",
        "{\"08\": [\n  {\"inject_time\": \"2023-01-29 8:43\", \"inject_pod\": \"p-a-b\", \"inject_type\": \"return\"}\n]}",
    );
    let err = load_fault_list(&bad).expect_err("bad time");
    assert!(matches!(err, NezhaError::Json { line: 2, .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("bad.json") && text.contains("line 2") && text.contains("8:43"),
        "{text}"
    );
}

#[test]
fn utc_times_parse_to_unix_nanos() {
    let s = 1_674_981_784_000_000_000;
    assert_eq!(parse_utc_time("2023-01-29 08:43:04"), Ok(s));
    assert_eq!(parse_utc_time("2023-01-29T08:43:04Z"), Ok(s));
    assert_eq!(parse_utc_time("2023-01-29 08:43:04.5"), Ok(s + 500_000_000));
    assert_eq!(parse_utc_time("1970-01-01 00:00:00"), Ok(0));
    assert_eq!(
        parse_utc_time("2024-02-29 00:00:00"),
        Ok(1_709_164_800_000_000_000)
    );
    for bad in [
        "",
        "2023-01-29",
        "2023-1-29 08:43:04",
        "2023-02-29 00:00:00",
        "2023-01-29 24:00:00",
        "2023-01-29 08:43",
        "2023-01-29 08:43:04.1234567890",
    ] {
        assert!(parse_utc_time(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_case_is_its_minute_and_the_two_after_that_exist() {
    let dir = TempDir::new("minutes");
    let day = &dir.0;
    for minute in ["09_59", "10_01"] {
        dir.write(&format!("trace/{minute}_trace.csv"), TRACE_HEADER);
    }
    dir.write("log/09_59_log.csv", "");
    let inject_time = "2023-01-29 09:59:30";
    let case = FaultCase {
        hour: "09".to_owned(),
        inject_time_ns: parse_utc_time(inject_time).expect("time"),
        inject_time: inject_time.to_owned(),
        pod: TRAVEL.to_owned(),
        service: "ts-travel-service".to_owned(),
        kind: "exception".to_owned(),
    };
    let minutes = case_minutes(day, &case);
    assert_eq!(
        minutes,
        [
            (
                day.join("trace/09_59_trace.csv"),
                Some(day.join("log/09_59_log.csv"))
            ),
            (day.join("trace/10_01_trace.csv"), None),
        ]
    );
    assert_eq!(minute_of(&minutes[1].0), Some("10_01"));
    assert_eq!(minute_name(0), "00_00");
    assert_eq!(minute_name(24 * 60 + 61), "01_01");
}

#[test]
fn convert_day_writes_one_request_per_minute_and_the_cases() {
    let dir = TempDir::new("day");
    let day = dir.0.join("2023-01-29");
    let rows = [
        TRACE_HEADER.to_owned(),
        trace_row(T1, "g1", "root", GATEWAY, "/*", 1000),
        trace_row(T1, "g2", "g1", GATEWAY, "HTTP GET", 1100),
    ]
    .concat();
    dir.write("2023-01-29/trace/10_04_trace.csv", &rows);
    dir.write("2023-01-29/trace/10_05_trace.csv", TRACE_HEADER);
    dir.write(
        "2023-01-29/2023-01-29-fault_list.json",
        r#"{"10": [{"inject_time": "2023-01-29 10:04:34", "inject_timestamp": "0", "inject_pod": "ts-travel-service-64469b5b48-25zj6", "inject_type": "exception"}]}"#,
    );
    let out = dir.0.join("out");
    super::cli::convert_day(&day, &out).expect("converts");
    let bytes = std::fs::read(out.join("10_04.pb")).expect("10_04.pb");
    let request = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("protobuf");
    assert_eq!(spans_by_id(&request).len(), 2);
    assert!(out.join("10_05.pb").is_file());
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cases.json")).expect("cases.json"))
            .expect("json");
    assert_eq!(
        cases,
        serde_json::json!([{
            "service": "ts-travel-service",
            "kind": "exception",
            "inject_time": "2023-01-29 10:04:34",
            "inject_time_ns": 1_674_986_674_000_000_000_i64,
            "pod": TRAVEL,
            "minutes": ["10_04", "10_05"],
        }])
    );

    // A baseline day: no fault list, no cases.json.
    let baseline = dir.0.join("baseline/2023-01-29");
    dir.write("baseline/2023-01-29/trace/08_50_trace.csv", &rows);
    let out2 = dir.0.join("out2");
    super::cli::convert_day(&baseline, &out2).expect("converts");
    assert!(out2.join("08_50.pb").is_file());
    assert!(!out2.join("cases.json").exists());

    let err = super::cli::convert_day(&dir.0.join("nowhere"), &out2).expect_err("no trace dir");
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn log_lines_parse_level_message_and_exception() {
    let line = logline::parse(
        "16:42:22.382 INFO  t.s.TravelServiceImpl#532 TraceID: abc SpanID: def [m][n]\n",
    )
    .expect("parses");
    assert_eq!((line.level, line.message), ("INFO", "[m][n]"));
    let line = logline::parse("16:42:22.382 ERROR t.s.X#1 TraceID: a SpanID: b msg").expect("e");
    assert_eq!((line.level, line.message), ("ERROR", "msg"));
    // Without trace context: the logger is skipped.
    let line = logline::parse("2023-01-29 16:42:22.382 [ERROR] c.Foo boom").expect("date");
    assert_eq!((line.level, line.message), ("ERROR", "boom"));
    assert!(logline::parse("just text").is_none());
    // A message's first word "error" is not a level.
    assert!(logline::parse("12:00 error while reading").is_none());
    assert!(logline::parse("").is_none());

    // `Error` alone is not a class; `Caused by:` lines are not the first
    // exception.
    let line = logline::parse(
        "t ERROR x.Y#1 TraceID: a SpanID: b oops\nError\nCaused by: a.BException: x\ncom.x.FooError\n",
    )
    .expect("parses");
    let ex = line.exception();
    assert_eq!(ex.ty.as_deref(), Some("com.x.FooError"));
    assert_eq!(ex.message, "oops", "no message on the class line");
    assert_eq!(
        ex.stacktrace.as_deref(),
        Some("Error\nCaused by: a.BException: x\ncom.x.FooError")
    );
    let ex = logline::parse("t ERROR x.Y#1 TraceID: a SpanID: b plain failure")
        .expect("parses")
        .exception();
    assert_eq!(
        ex,
        logline::ExceptionInfo {
            ty: None,
            message: "plain failure".to_owned(),
            stacktrace: None
        }
    );
    let ex = logline::parse(
        "t ERROR x TraceID: a SpanID: b failed; nested exception is java.lang.IllegalStateException: No instances available for ts-food-service] with root cause",
    )
    .expect("parses")
    .exception();
    assert_eq!(ex.ty.as_deref(), Some("java.lang.IllegalStateException"));
    assert_eq!(ex.message, "No instances available for ts-food-service");
}

/// The data set, when this checkout sits next to it (CI clones may not).
fn real_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nezha-trainticket");
    if dir.join("2023-01-29").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no Nezha data at {} (tests over the real data need it)",
            dir.display()
        );
        None
    }
}

fn kinds(request: &ExportTraceServiceRequest) -> HashMap<SpanKind, usize> {
    let mut out = HashMap::new();
    for (span, _) in spans_by_id(request).values() {
        *out.entry(kind(span)).or_default() += 1;
    }
    out
}

#[test]
fn real_fault_list_has_28_service_cases() {
    let Some(data) = real_data() else { return };
    let cases =
        load_fault_list(&data.join("2023-01-29/2023-01-29-fault_list.json")).expect("loads");
    assert_eq!(cases.len(), 28);
    assert!(
        cases
            .iter()
            .all(|c| c.service.starts_with("ts-") && c.service.ends_with("-service")),
        "{cases:?}"
    );
    assert!(
        cases
            .windows(2)
            .all(|w| w[0].inject_time_ns <= w[1].inject_time_ns)
    );
    let count = |kind: &str| cases.iter().filter(|c| c.kind == kind).count();
    assert_eq!(
        (count("exception"), count("return"), count("cpu_contention")),
        (13, 11, 4)
    );
    assert_eq!(cases[0].inject_time, "2023-01-29 08:43:04");
    assert_eq!(cases[0].service, "ts-contacts-service");
}

#[test]
fn real_baseline_minute_converts() {
    let Some(data) = real_data() else { return };
    let day = data.join("baseline/2023-01-29");
    let (request, stats) = convert_minute(
        &day.join("trace/08_50_trace.csv"),
        Some(&day.join("log/08_50_log.csv")),
    )
    .expect("converts");
    eprintln!("baseline 08_50: {stats:?}");
    assert!(stats.spans > 0);
    assert_eq!(stats.skipped_rows, 0);
    assert_eq!(stats.unattached_error_lines, 0);
    let kinds = kinds(&request);
    eprintln!("baseline 08_50 kinds: {kinds:?}");
    assert!(kinds.contains_key(&SpanKind::Server), "{kinds:?}");
    assert!(kinds.contains_key(&SpanKind::Client), "{kinds:?}");
    assert!(kinds.contains_key(&SpanKind::Internal), "{kinds:?}");
    for rs in &request.resource_spans {
        let attrs = &rs.resource.as_ref().expect("resource").attributes;
        let service = attr(attrs, "service.name").expect("service.name");
        assert!(service.starts_with("ts-"), "{service}");
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(span.span_id.len(), 8);
            assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        }
    }
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(spans as u64, stats.spans);
}

#[test]
fn real_exception_case_has_error_spans_with_exception_types() {
    let Some(data) = real_data() else { return };
    let day = data.join("2023-01-29");
    let cases = load_fault_list(&day.join("2023-01-29-fault_list.json")).expect("loads");
    let case = cases
        .iter()
        .find(|c| c.kind == "exception")
        .expect("an exception case");
    let minutes = case_minutes(&day, case);
    assert_eq!(minutes.len(), 3, "{minutes:?}");
    let mut total = MinuteStats::default();
    let mut typed_events = 0;
    for (trace, log) in &minutes {
        let (request, stats) = convert_minute(trace, log.as_deref()).expect("converts");
        eprintln!("{} {}: {stats:?}", case.inject_time, trace.display());
        total.spans += stats.spans;
        total.error_spans += stats.error_spans;
        total.exception_events += stats.exception_events;
        total.unattached_error_lines += stats.unattached_error_lines;
        for (span, _) in spans_by_id(&request).values() {
            typed_events += span
                .events
                .iter()
                .filter(|e| attr(&e.attributes, "exception.type").is_some())
                .count();
        }
    }
    eprintln!(
        "case {} {} {}: {} spans, {} error spans, {} exception events ({typed_events} typed)",
        case.inject_time,
        case.service,
        case.kind,
        total.spans,
        total.error_spans,
        total.exception_events
    );
    assert!(total.error_spans > 0);
    assert!(total.exception_events >= total.error_spans);
    assert!(typed_events > 0);
    assert_eq!(total.unattached_error_lines, 0);
}

#[test]
fn levels_are_read_in_the_layouts_of_other_languages() {
    let level = |text: &str| logline::parse(text).map(|l| l.level);
    assert_eq!(level("ERROR:root:payment declined"), Some("ERROR"));
    assert_eq!(
        level("time=2023-01-29T10:00:00Z level=error msg=\"boom\""),
        Some("ERROR")
    );
    assert_eq!(level("fail: Microsoft.AspNetCore.Server[0]"), Some("ERROR"));
    assert_eq!(level("crit: Cart.Store[1]"), Some("FATAL"));

    // Go (logrus), Node (pino, numeric), Python, log4j2 JSON, Serilog.
    let json = |text: &str| logline::normalize_json(text).expect("a JSON record");
    let go = json(r#"{"message":"failed to get cart","severity":"error","timestamp":"t"}"#);
    let line = logline::parse(&go).expect("parses");
    assert_eq!(
        (line.level, line.logger, line.message),
        ("ERROR", None, "failed to get cart")
    );
    let node = json(
        r#"{"level":50,"time":1,"name":"paymentservice","msg":"card declined","err":{"type":"CreditCardError","stack":"CreditCardError: declined\n    at charge (charge.js:10)"}}"#,
    );
    let line = logline::parse(&node).expect("parses");
    assert_eq!((line.level, line.logger), ("ERROR", Some("paymentservice")));
    assert_eq!(line.message, "card declined");
    let ex = line.exception();
    assert_eq!(ex.ty.as_deref(), Some("CreditCardError"));
    assert!(ex.stacktrace.is_some_and(|s| s.contains("charge.js")));
    let py = json(
        r#"{"timestamp": 1, "severity": "WARNING", "name": "emailservice", "message": "slow"}"#,
    );
    assert_eq!(logline::parse(&py).map(|l| l.level), Some("WARNING"));
    let java = json(
        r#"{"instant":{},"level":"SEVERE","loggerName":"hipstershop.AdService","message":"no ads"}"#,
    );
    assert_eq!(logline::parse(&java).map(|l| l.level), Some("ERROR"));
    let serilog = json(r#"{"@t":"t","@l":"Fatal","@m":"store down"}"#);
    assert_eq!(logline::parse(&serilog).map(|l| l.level), Some("FATAL"));
    // Not a record, or no level in it: left to the text reading.
    assert!(logline::normalize_json("plain text").is_none());
    assert!(logline::normalize_json(r#"{"message":"no level"}"#).is_none());
    assert!(logline::normalize_json("{not json").is_none());
}
