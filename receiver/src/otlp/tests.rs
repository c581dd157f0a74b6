//! Tests of the OTLP ingest path: the wire scan against prost, bodies,
//! JSON conformance, and the HTTP front end's status codes.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use causeway_benches::{Rng, Workload, WorkloadConfig};
use causeway_model::{QueuedBatch, TenantId};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use prost::Message;
use sha2::Digest;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::body::{Encoding, decompress, json_to_protobuf};
use super::wire::{WireError, scan_request};
use crate::admission::Admission;
use crate::config::QueueConfig;
use crate::error::ReceiveError;
use crate::metrics::ReceiverMetrics;
use crate::otlp::ingest::Ingest;
use causeway_server::config::ApiKeyConfig;
use causeway_server::{Authenticator, Gate};

fn workload_batch(seed: u64, spans: usize) -> ExportTraceServiceRequest {
    Workload::new(WorkloadConfig {
        seed,
        error_rate: 0.05,
        ..WorkloadConfig::default()
    })
    .batch(spans)
}

/// Counts per service, errors included, straight from prost structs.
fn prost_counts(req: &ExportTraceServiceRequest) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    for rs in &req.resource_spans {
        let name = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| "unknown_service".into());
        let spans: Vec<_> = rs.scope_spans.iter().flat_map(|s| &s.spans).collect();
        let errors = spans
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.code == OtlpStatus::Error as i32)
            })
            .count() as u64;
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.1 += spans.len() as u64;
                e.2 += errors;
            }
            None => out.push((name, spans.len() as u64, errors)),
        }
    }
    out.retain(|e| e.1 > 0);
    out
}

#[test]
fn scan_counts_match_a_full_prost_decode() {
    let mut errors = 0;
    for seed in 1..20 {
        let req = workload_batch(seed, 300);
        let bytes = req.encode_to_vec();
        let scan = scan_request(&bytes).expect("well-formed");
        let got: Vec<_> = scan
            .services
            .iter()
            .map(|s| (s.name.clone(), s.spans, s.errors))
            .collect();
        assert_eq!(got, prost_counts(&req), "seed {seed}");
        assert_eq!(scan.invalid, 0);
        errors += scan.services.iter().map(|s| s.errors).sum::<u64>();
        let first = scan.services.iter().map(|s| s.first_ns).min().unwrap_or(0);
        assert!(first >= WorkloadConfig::default().start_ns);
    }
    assert!(errors > 0, "the workload has failed spans");
}

/// `resources` resources of one span each, naming `distinct` services in
/// turn: what a hostile client sends to make per-service bookkeeping cost
/// more than the request.
fn many_services(resources: usize, distinct: usize) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let template = workload_batch(7, 1).resource_spans[0].clone();
    let mut req = ExportTraceServiceRequest::default();
    for i in 0..resources {
        let mut rs = template.clone();
        rs.scope_spans.truncate(1);
        rs.scope_spans[0].spans.truncate(1);
        if let Some(kv) = rs
            .resource
            .as_mut()
            .and_then(|r| r.attributes.iter_mut().find(|kv| kv.key == "service.name"))
        {
            kv.value = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(Value::StringValue(format!("svc-{}", i % distinct))),
            });
        }
        req.resource_spans.push(rs);
    }
    req
}

#[test]
fn many_services_in_one_request_are_counted_each_in_order_of_appearance() {
    let req = many_services(6_000, 3_000);
    let scan = scan_request(&req.encode_to_vec()).expect("well-formed");
    let got: Vec<_> = scan
        .services
        .iter()
        .map(|s| (s.name.clone(), s.spans, s.errors))
        .collect();
    assert_eq!(got.len(), 3_000);
    assert_eq!(got, prost_counts(&req));
    assert!(scan.services.iter().all(|s| s.spans == 2));
}

#[test]
fn empty_request_is_valid_and_empty() {
    let scan = scan_request(&[]).expect("empty is valid");
    assert_eq!(scan.spans, 0);
    assert!(scan.services.is_empty());
}

/// Whether prost's failure is one the scan deliberately does not check.
fn prost_only_error(e: &prost::DecodeError) -> bool {
    let m = e.to_string();
    // Strings are decoded lossily downstream; groups never appear in OTLP
    // and the scan refuses them.
    m.contains("UTF-8") || m.contains("utf-8") || m.contains("group")
}

#[test]
fn scan_agrees_with_prost_on_mutated_requests() {
    let mut rng = Rng::new(7);
    let base = workload_batch(3, 60).encode_to_vec();
    let mut disagreements = Vec::new();
    for _ in 0..4000 {
        let mut bytes = base.clone();
        for _ in 0..=rng.below(3) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = rng.next_u64() as u8;
        }
        let prost = ExportTraceServiceRequest::decode(bytes.as_slice());
        let scan = scan_request(&bytes);
        match (&prost, &scan) {
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) if prost_only_error(e) => {}
            // The scan refuses groups, which prost skips.
            (Ok(_), Err(WireError::BadTag { wire: 3 | 4, .. })) => {}
            _ => disagreements.push(format!(
                "prost={:?} scan={:?}",
                prost.map(|_| ()),
                scan.map(|_| ())
            )),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements, e.g. {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(5)]
    );
}

#[test]
fn every_truncation_is_refused_or_a_valid_prefix() {
    let bytes = workload_batch(5, 20).encode_to_vec();
    for cut in 0..bytes.len() {
        let prefix = &bytes[..cut];
        let prost_ok = ExportTraceServiceRequest::decode(prefix).is_ok();
        assert_eq!(scan_request(prefix).is_ok(), prost_ok, "cut at {cut}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value::Value};
    let mut v = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..200 {
        v = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    let mut req = workload_batch(1, 1);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "deep".into(),
            value: Some(v),
            key_strindex: 0,
        });
    let bytes = req.encode_to_vec();
    assert_eq!(scan_request(&bytes), Err(WireError::TooDeep));
}

#[test]
fn invalid_ids_are_rejected_per_span_and_dropped_from_the_payload() {
    let mut req = workload_batch(2, 50);
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    {
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        spans[0].trace_id = vec![0; 16];
        spans[1].span_id = vec![1, 2, 3];
    }
    req.resource_spans[1].scope_spans[0].spans[0].parent_span_id = vec![9; 4];
    let bytes = req.encode_to_vec();
    let scan = scan_request(&bytes).expect("well-formed");
    assert_eq!(scan.invalid, 3);
    assert_eq!(scan.spans as usize, total - 3);
    assert!(
        scan.invalid_reasons[0].contains("trace_id is all zeroes"),
        "{:?}",
        scan.invalid_reasons
    );
    let cleaned = super::body::drop_invalid_spans(&bytes).expect("re-encode");
    let rescan = scan_request(&cleaned).expect("well-formed");
    assert_eq!(rescan.invalid, 0);
    assert_eq!(rescan.spans, scan.spans);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn decompresses_gzip_deflate_zstd() {
    let data = workload_batch(4, 100).encode_to_vec();
    let limit = 1 << 20;
    let gz = gzip(&data);
    assert_eq!(
        decompress(Bytes::from(gz), Encoding::Gzip, limit).expect("gzip"),
        data
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&data).expect("zlib");
    let z = z.finish().expect("zlib");
    assert_eq!(
        decompress(Bytes::from(z), Encoding::Deflate, limit).expect("deflate"),
        data
    );
    let zs = zstd::encode_all(&data[..], 1).expect("zstd");
    assert_eq!(
        decompress(Bytes::from(zs), Encoding::Zstd, limit).expect("zstd"),
        data
    );
    let garbage = Bytes::from_static(b"definitely not gzip");
    assert!(matches!(
        decompress(garbage, Encoding::Gzip, limit),
        Err(ReceiveError::Decompress { .. })
    ));
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    // 256 MiB of zeros compress to about 250 KiB.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..256 {
        e.write_all(&chunk).expect("gzip");
    }
    let bomb = e.finish().expect("gzip");
    assert!(bomb.len() < 1 << 20);
    let err = decompress(Bytes::from(bomb), Encoding::Gzip, 4 << 20).expect_err("bomb");
    assert!(matches!(err, ReceiveError::TooLarge { limit } if limit == 4 << 20));
    let zbomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 3).expect("zstd");
    let err = decompress(Bytes::from(zbomb), Encoding::Zstd, 1 << 20).expect_err("bomb");
    assert!(matches!(err, ReceiveError::TooLarge { .. }));
}

#[test]
fn unknown_encodings_are_refused() {
    assert!(Encoding::parse(Some("br")).is_err());
    assert_eq!(Encoding::parse(Some("GZIP")).expect("gzip"), Encoding::Gzip);
    assert_eq!(Encoding::parse(None).expect("identity"), Encoding::Identity);
}

/// OTLP/JSON as the specification words it.
mod json {
    use super::*;

    fn decode(json: &str) -> Result<ExportTraceServiceRequest, ReceiveError> {
        let bytes = json_to_protobuf(json.as_bytes())?;
        Ok(ExportTraceServiceRequest::decode(bytes.as_ref()).expect("re-encoded protobuf"))
    }

    const SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
        "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
        "parentSpanId":"","name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
        "attributes":[{"key":"http.response.status_code","value":{"intValue":"500"}},{"key":"n","value":{"intValue":7}}],
        "status":{"code":2,"message":"boom"},"someFutureField":{"x":1}}]}]}]}"#;

    #[test]
    fn hex_ids_in_either_case_int64_as_string_or_number_enums_as_integers() {
        let req = decode(SPAN).expect("valid OTLP/JSON");
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        assert_eq!(
            span.attributes[0]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(Value::IntValue(500))
        );
        assert_eq!(
            span.attributes[1]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(Value::IntValue(7))
        );
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let json = r#"{"resourceSpans":[{"newThing":1,"scopeSpans":[{"spans":[],"x":[1,2]}]}],"extra":"yes"}"#;
        let req = decode(json).expect("unknown fields ignored");
        assert_eq!(req.resource_spans.len(), 1);
    }

    #[test]
    fn empty_object_is_an_empty_request() {
        assert!(decode("{}").expect("empty").resource_spans.is_empty());
        assert!(
            decode(r#"{"resourceSpans":[]}"#)
                .expect("empty")
                .resource_spans
                .is_empty()
        );
    }

    #[test]
    fn malformed_json_is_a_decode_error() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"resourceSpans":5}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        ] {
            assert!(
                matches!(decode(bad), Err(ReceiveError::Decode(_))),
                "{bad:?}"
            );
        }
    }
}

/// The HTTP front end, driven through its router.
mod http_front {
    use super::*;

    const LIMIT: usize = 1 << 20;

    struct Harness {
        router: axum::Router,
        rx: mpsc::Receiver<QueuedBatch>,
    }

    fn harness(keys: &[(&str, &str)], queue: QueueConfig) -> Harness {
        let (tx, rx) = mpsc::channel(queue.capacity);
        let entries: Vec<ApiKeyConfig> = keys
            .iter()
            .map(|(tenant, key)| ApiKeyConfig {
                tenant: TenantId::new(tenant).expect("tenant"),
                key_sha256: sha2::Sha256::digest(key.as_bytes()).into(),
            })
            .collect();
        let auth = Arc::new(Authenticator::new(&entries));
        let admission = Admission::new(tx, &queue, auth.tenants().len());
        let ingest = Arc::new(Ingest::new(admission, ReceiverMetrics::default()));
        Harness {
            router: super::super::http::router(ingest, Gate::open(auth), LIMIT),
            rx,
        }
    }

    fn post(body: impl Into<Body>, content_type: &str) -> http::request::Builder {
        let _ = body;
        Request::post("/v1/traces").header("content-type", content_type)
    }

    async fn send(
        router: &axum::Router,
        req: Request<Body>,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, body)
    }

    fn rpc_status(body: &[u8]) -> tonic_types::Status {
        tonic_types::Status::decode(body).expect("google.rpc.Status body")
    }

    #[tokio::test]
    async fn protobuf_gzip_and_json_are_accepted_and_queued() {
        let mut h = harness(&[], QueueConfig::default());
        let req = workload_batch(9, 100);
        let bytes = req.encode_to_vec();
        let (status, headers, body) = send(
            &h.router,
            post((), "application/x-protobuf")
                .body(Body::from(bytes.clone()))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/x-protobuf");
        let resp = ExportTraceServiceResponse::decode(body).expect("response");
        assert!(resp.partial_success.is_none());
        let queued = h.rx.try_recv().expect("queued");
        assert_eq!(queued.batch.tenant.as_str(), "default");
        assert_eq!(queued.batch.payload.as_ref(), bytes.as_slice());

        let (status, _, _) = send(
            &h.router,
            post((), "application/x-protobuf")
                .header("content-encoding", "gzip")
                .body(Body::from(gzip(&bytes)))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(h.rx.try_recv().is_ok());

        let json = serde_json::to_vec(&req).expect("json");
        let (status, headers, body) = send(
            &h.router,
            post((), "application/json; charset=utf-8")
                .body(Body::from(json))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body.as_ref(), b"{}");
        let q = h.rx.try_recv().expect("queued");
        assert_eq!(q.batch.spans, scan_request(&bytes).expect("scan").spans);
    }

    #[tokio::test]
    async fn partial_success_reports_rejected_spans_in_json() {
        let mut h = harness(&[], QueueConfig::default());
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok"},
            {"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b174","name":"short trace id"}]}]}]}"#;
        let (status, _, body) = send(
            &h.router,
            post((), "application/json")
                .body(Body::from(json))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
        assert!(
            v["partialSuccess"]["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("trace_id"))
        );
        let q = h.rx.try_recv().expect("valid span queued");
        assert_eq!(q.batch.spans, 1);
    }

    #[tokio::test]
    async fn error_statuses_follow_the_otlp_specification() {
        let h = harness(&[], QueueConfig::default());
        // 415: neither protobuf nor JSON.
        let (status, _, body) = send(
            &h.router,
            post((), "text/plain").body(Body::from("x")).expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(rpc_status(&body).code, tonic::Code::InvalidArgument as i32);
        // 415: unknown content encoding.
        let (status, _, _) = send(
            &h.router,
            post((), "application/x-protobuf")
                .header("content-encoding", "br")
                .body(Body::from("x"))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // 400: undecodable protobuf, with a google.rpc.Status body.
        let (status, _, body) = send(
            &h.router,
            post((), "application/x-protobuf")
                .body(Body::from(vec![0x0a, 0xff, 0x01]))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let st = rpc_status(&body);
        assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
        assert!(st.message.contains("invalid protobuf"), "{}", st.message);
        // 400 in JSON when the request was JSON.
        let (status, headers, body) = send(
            &h.router,
            post((), "application/json")
                .body(Body::from("{"))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json status");
        assert_eq!(v["code"], 3);
        // 400: corrupt gzip.
        let (status, _, _) = send(
            &h.router,
            post((), "application/x-protobuf")
                .header("content-encoding", "gzip")
                .body(Body::from("nope"))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // 413: over the limit, plain and as a bomb.
        let (status, _, _) = send(
            &h.router,
            post((), "application/x-protobuf")
                .body(Body::from(vec![0u8; LIMIT + 1]))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let bomb = gzip(&vec![0u8; 32 * LIMIT]);
        let (status, _, body) = send(
            &h.router,
            post((), "application/x-protobuf")
                .header("content-encoding", "gzip")
                .body(Body::from(bomb))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            rpc_status(&body).code,
            tonic::Code::ResourceExhausted as i32
        );
        // 405 for other methods on the path, 404 elsewhere.
        let (status, _, _) = send(
            &h.router,
            Request::get("/v1/traces").body(Body::empty()).expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _, _) = send(
            &h.router,
            Request::post("/v1/metrics")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn empty_request_succeeds_without_queueing() {
        let mut h = harness(&[], QueueConfig::default());
        let (status, _, body) = send(
            &h.router,
            post((), "application/x-protobuf")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            ExportTraceServiceResponse::decode(body)
                .expect("resp")
                .partial_success
                .is_none()
        );
        assert!(h.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn credentials_pick_the_tenant_and_bad_ones_get_401() {
        let mut h = harness(
            &[("acme", "key-a"), ("globex", "key-g")],
            QueueConfig::default(),
        );
        let bytes = workload_batch(1, 10).encode_to_vec();
        for (header, value, tenant) in [
            ("authorization", "Bearer key-a", "acme"),
            ("x-api-key", "key-g", "globex"),
        ] {
            let (status, _, _) = send(
                &h.router,
                post((), "application/x-protobuf")
                    .header(header, value)
                    .body(Body::from(bytes.clone()))
                    .expect("req"),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                h.rx.try_recv().expect("queued").batch.tenant.as_str(),
                tenant
            );
        }
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong")],
            vec![("x-api-key", "key-a ")],
        ] {
            let mut b = post((), "application/x-protobuf");
            for (k, v) in &headers {
                b = b.header(*k, *v);
            }
            let (status, _, body) =
                send(&h.router, b.body(Body::from(bytes.clone())).expect("req")).await;
            if headers.first().is_some_and(|(_, v)| *v == "key-a ") {
                // Surrounding whitespace is not part of a key.
                assert_eq!(status, StatusCode::OK);
                let _ = h.rx.try_recv();
                continue;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
            assert_eq!(rpc_status(&body).code, tonic::Code::Unauthenticated as i32);
        }
        assert!(
            h.rx.try_recv().is_err(),
            "nothing from unauthenticated requests was queued"
        );
    }

    #[tokio::test]
    async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
        let (tx, mut rx) = mpsc::channel(64);
        let queue = QueueConfig::default();
        let auth = Arc::new(Authenticator::new(&[]));
        let admission = Admission::new(tx, &queue, 1);
        let ingest = Arc::new(Ingest::new(admission, ReceiverMetrics::default()));
        let mut limits = causeway_server::LimitsConfig::default();
        limits.ingest.per_client = causeway_server::limits::Rate::new(1, 2);
        let gate = Gate::new(
            auth,
            Arc::new(causeway_server::Limits::new(&limits)),
            Arc::new(causeway_model::NoAudit),
        );
        let router = super::super::http::router(ingest, gate, LIMIT);
        let bytes = workload_batch(1, 10).encode_to_vec();
        let from = |ip: &str| {
            let mut req = post((), "application/x-protobuf")
                .body(Body::from(bytes.clone()))
                .expect("req");
            let addr: std::net::SocketAddr = format!("{ip}:5000").parse().expect("addr");
            req.extensions_mut()
                .insert(causeway_server::ClientAddr(addr));
            req
        };
        assert_eq!(send(&router, from("10.0.0.1")).await.0, StatusCode::OK);
        assert_eq!(send(&router, from("10.0.0.1")).await.0, StatusCode::OK);
        let (status, headers, body) = send(&router, from("10.0.0.1")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "1");
        let rpc = rpc_status(&body);
        assert_eq!(rpc.code, tonic::Code::ResourceExhausted as i32);
        assert!(
            rpc.message.contains("per client address"),
            "{}",
            rpc.message
        );
        assert_eq!(send(&router, from("10.0.0.2")).await.0, StatusCode::OK);
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 3, "the refused request queued nothing");
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after() {
        let queue = QueueConfig {
            capacity: 1,
            enqueue_timeout: std::time::Duration::from_millis(10),
            retry_after: std::time::Duration::from_secs(3),
            ..QueueConfig::default()
        };
        let mut h = harness(&[], queue);
        let bytes = workload_batch(1, 10).encode_to_vec();
        let req = || {
            post((), "application/x-protobuf")
                .body(Body::from(bytes.clone()))
                .expect("req")
        };
        assert_eq!(send(&h.router, req()).await.0, StatusCode::OK);
        let (status, headers, body) = send(&h.router, req()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(rpc_status(&body).code, tonic::Code::Unavailable as i32);
        drop(h.rx.try_recv());
        assert_eq!(send(&h.router, req()).await.0, StatusCode::OK);
    }
}
