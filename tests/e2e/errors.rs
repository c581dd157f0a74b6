//! Every malformed, oversized, bomb-compressed or partially invalid request
//! gets the status OTLP prescribes; the process stays healthy, its memory
//! bounded, and valid traffic keeps flowing.

use std::io::Write;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use prost::Message;

use crate::harness::{Options, Server, grpc};

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn gzip_zeros(mib: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        e.write_all(&chunk).expect("gzip");
    }
    e.finish().expect("gzip")
}

fn spans_in(b: &[u8]) -> u64 {
    let req =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(b)
            .expect("decode");
    causeway_benches::span_count(&req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_specified_status_and_nothing_breaks() {
    let server = Server::start_opts(Options {
        grpc: "max_recv_msg_size_mib: 4".into(),
        http: "max_request_body_size: 4194304".into(),
        ..Options::default()
    });
    let good = Bytes::from(
        Workload::new(WorkloadConfig::default())
            .batch(500)
            .encode_to_vec(),
    );

    // gRPC: undecodable → INVALID_ARGUMENT.
    let err = grpc::export(
        server.grpc,
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0x01]),
        None,
        false,
    )
    .await
    .expect_err("garbage");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    // gRPC: over the limit, plain → RESOURCE_EXHAUSTED.
    let big = Bytes::from(vec![0u8; 5 << 20]);
    let err = grpc::export(server.grpc, big, None, false)
        .await
        .expect_err("oversize");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    // gRPC: a gzip bomb (1 GiB of zeros in ~1 MiB) → RESOURCE_EXHAUSTED, and
    // the server never holds the inflated gigabyte.
    let bomb = gzip_zeros(1024);
    assert!(bomb.len() < 2 << 20);
    let body = {
        // Send the bomb as an already-compressed gRPC message: tonic's client
        // would compress again, so frame it by hand over HTTP/2.
        bomb.clone()
    };
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let resp = client
        .post(format!("http://{}{}", server.grpc, grpc::PATH))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .expect("bomb sent");
    assert_eq!(
        resp.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or("")),
        Some("8"),
        "{:?}",
        resp.headers()
    );
    // gRPC: corrupt gzip → INVALID_ARGUMENT.
    let mut frame = vec![1u8, 0, 0, 0, 4];
    frame.extend_from_slice(b"nope");
    let resp = client
        .post(format!("http://{}{}", server.grpc, grpc::PATH))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .expect("corrupt gzip sent");
    assert_eq!(
        resp.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or("")),
        Some("3"),
        "{:?}",
        resp.headers()
    );

    // HTTP: the same bomb → 413.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("http bomb");
    assert_eq!(resp.status(), 413);

    // gRPC partial success: two spans with bad ids are rejected, the rest kept.
    let mut req = Workload::new(WorkloadConfig {
        seed: 5,
        ..WorkloadConfig::default()
    })
    .batch(100);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
    req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![];
    let total = spans_in(&req.encode_to_vec());
    let resp = grpc::export(server.grpc, Bytes::from(req.encode_to_vec()), None, false)
        .await
        .expect("partial");
    let partial = resp.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("span_id must be 8 bytes"),
        "{}",
        partial.error_message
    );

    // Empty request → success.
    let resp = grpc::export(server.grpc, Bytes::new(), None, false)
        .await
        .expect("empty");
    assert!(resp.partial_success.is_none());

    // Still healthy, memory bounded, valid traffic counted exactly.
    grpc::export(server.grpc, good.clone(), None, true)
        .await
        .expect("good after bad");
    assert_eq!(server.get("/readyz", None).await.0, 200);
    let services = server.services(None).await;
    let counted: u64 = services.values().map(|(s, _)| s).sum();
    assert_eq!(counted, spans_in(&good) + total - 2);
    let peak = peak_rss_mib(server.pid());
    assert!(peak < 256.0, "peak RSS {peak} MiB: a bomb was inflated");
    let (_, metrics) = server.get("/metrics", None).await;
    assert!(metrics.contains("reason=\"too_large\""), "{metrics}");
    assert!(metrics.contains("reason=\"malformed\""), "{metrics}");
    assert!(metrics.contains("reason=\"invalid_id\""), "{metrics}");
}
