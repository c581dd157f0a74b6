use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{Array, DictionaryArray, StringArray};
use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::TenantId;
use causeway_model::schema::{col, span_schema};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::otlp_to_arrow;

fn dict_str(batch: &arrow_array::RecordBatch, name: &str, row: usize) -> Option<String> {
    let a = batch.column_by_name(name).expect("column");
    let d: &DictionaryArray<UInt32Type> = a.as_dictionary();
    if d.is_null(row) {
        return None;
    }
    let values: &StringArray = d.values().as_string();
    let k = d.keys().value(row) as usize;
    values.is_valid(k).then(|| values.value(k).to_owned())
}

fn attr<'a>(span: &'a opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn every_span_becomes_a_row_with_the_values_prost_sees() {
    let tenant = TenantId::new("acme").expect("tenant");
    let req = Workload::new(WorkloadConfig {
        error_rate: 0.1,
        ..WorkloadConfig::default()
    })
    .batch(2000);
    let bytes = req.encode_to_vec();
    let batch = otlp_to_arrow(&tenant, &bytes).expect("convert");
    assert_eq!(batch.schema(), span_schema());

    let mut row = 0;
    let mut exceptions = 0;
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            });
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            assert_eq!(dict_str(&batch, col::TENANT, row).as_deref(), Some("acme"));
            assert_eq!(dict_str(&batch, col::SERVICE_NAME, row), service);
            assert_eq!(
                dict_str(&batch, col::DEPLOYMENT_ENVIRONMENT, row).as_deref(),
                Some("production")
            );
            assert_eq!(
                dict_str(&batch, col::SPAN_NAME, row).as_deref(),
                Some(span.name.as_str())
            );
            let ids = batch
                .column_by_name(col::TRACE_ID)
                .expect("trace_id")
                .as_fixed_size_binary();
            assert_eq!(ids.value(row), span.trace_id.as_slice());
            let parents = batch
                .column_by_name(col::PARENT_SPAN_ID)
                .expect("parent")
                .as_fixed_size_binary();
            assert_eq!(parents.is_null(row), span.parent_span_id.is_empty());
            let kind = batch
                .column_by_name(col::SPAN_KIND)
                .expect("kind")
                .as_primitive::<Int8Type>();
            assert_eq!(i32::from(kind.value(row)), span.kind);
            let start = batch
                .column_by_name(col::START_TIME)
                .expect("start")
                .as_primitive::<TimestampNanosecondType>();
            assert_eq!(start.value(row) as u64, span.start_time_unix_nano);
            let dur = batch
                .column_by_name(col::DURATION_NS)
                .expect("dur")
                .as_primitive::<Int64Type>();
            assert_eq!(
                dur.value(row) as u64,
                span.end_time_unix_nano - span.start_time_unix_nano
            );
            let status = batch
                .column_by_name(col::STATUS_CODE)
                .expect("status")
                .as_primitive::<Int8Type>();
            assert_eq!(
                i32::from(status.value(row)),
                span.status.as_ref().map_or(0, |s| s.code)
            );
            let route = attr(span, "http.route").and_then(|v| match v {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            });
            assert_eq!(dict_str(&batch, col::HTTP_ROUTE, row), route);
            let code = batch
                .column_by_name(col::HTTP_STATUS_CODE)
                .expect("http")
                .as_primitive::<Int32Type>();
            let want = attr(span, "http.response.status_code").and_then(|v| match v {
                Value::IntValue(i) => Some(*i as i32),
                _ => None,
            });
            assert_eq!(code.is_valid(row).then(|| code.value(row)), want);
            let db = attr(span, "db.system").and_then(|v| match v {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            });
            assert_eq!(dict_str(&batch, col::DB_SYSTEM, row), db);
            let ex = span
                .events
                .iter()
                .find(|e| e.name == "exception")
                .and_then(|e| {
                    e.attributes
                        .iter()
                        .find(|kv| kv.key == "exception.type")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                });
            exceptions += usize::from(ex.is_some());
            assert_eq!(dict_str(&batch, col::EXCEPTION_TYPE, row), ex);
            row += 1;
        }
    }
    assert_eq!(batch.num_rows(), row);
    assert!(exceptions > 0, "the workload has exception events");
}

#[test]
fn deprecated_attribute_names_are_read_and_current_names_win() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    let kv = |k: &str, v: Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        key_strindex: 0,
    };
    let mut req = Workload::new(WorkloadConfig::default()).batch(1);
    let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
    span.attributes = vec![
        kv("http.status_code", Value::StringValue("404".into())),
        kv("http.method", Value::StringValue("GET".into())),
        kv("http.request.method", Value::StringValue("POST".into())),
        kv("net.peer.name", Value::StringValue("old.example".into())),
    ];
    let batch = otlp_to_arrow(&TenantId::default_tenant(), &req.encode_to_vec()).expect("convert");
    let code = batch
        .column_by_name(col::HTTP_STATUS_CODE)
        .expect("col")
        .as_primitive::<Int32Type>();
    assert_eq!(code.value(0), 404);
    assert_eq!(
        dict_str(&batch, col::HTTP_METHOD, 0).as_deref(),
        Some("POST")
    );
    assert_eq!(
        dict_str(&batch, col::SERVER_ADDRESS, 0).as_deref(),
        Some("old.example")
    );
}

#[test]
fn invalid_spans_are_skipped_and_empty_requests_give_empty_batches() {
    let mut req = Workload::new(WorkloadConfig::default()).batch(10);
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    let batch = otlp_to_arrow(&TenantId::default_tenant(), &req.encode_to_vec()).expect("convert");
    assert_eq!(batch.num_rows(), total - 1);
    let empty = otlp_to_arrow(&TenantId::default_tenant(), &[]).expect("empty");
    assert_eq!(empty.num_rows(), 0);
    assert!(otlp_to_arrow(&TenantId::default_tenant(), &[0x0a, 0x05, 1]).is_err());
    let _ = ExportTraceServiceRequest::default();
}

#[test]
fn names_and_values_over_the_limit_are_cut_at_a_character_boundary_and_counted() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::{MAX_VALUE_BYTES, convert};

    let string = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v)),
        }),
        ..Default::default()
    };
    // "é" is two bytes: a cut at the limit would land inside one.
    let long_name = format!("x{}", "é".repeat(MAX_VALUE_BYTES));
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", "s".repeat(MAX_VALUE_BYTES * 3))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: long_name,
                    kind: 2,
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: vec![string("http.route", "/short".into())],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let tenant = TenantId::default_tenant();
    let c = convert(&tenant, &req.encode_to_vec()).expect("converts");
    assert_eq!(c.truncated, 2, "the span name and the service name");
    let name = dict_str(&c.batch, col::SPAN_NAME, 0).expect("name");
    assert!(name.len() <= MAX_VALUE_BYTES && name.len() >= MAX_VALUE_BYTES - 1);
    assert!(
        name.starts_with('x') && name.ends_with('é'),
        "no broken character"
    );
    let service = dict_str(&c.batch, col::SERVICE_NAME, 0).expect("service");
    assert_eq!(service.len(), MAX_VALUE_BYTES);
    assert_eq!(
        dict_str(&c.batch, col::HTTP_ROUTE, 0).as_deref(),
        Some("/short")
    );
}
