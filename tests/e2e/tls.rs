//! TLS (rustls) on the receivers and the API, with the default TLS 1.3
//! minimum.

use std::path::PathBuf;

use bytes::Bytes;
use causeway_benches::{Workload, WorkloadConfig};
use prost::Message;

use crate::harness::{Options, Server};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn client(max: Option<reqwest::tls::Version>, h2: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(data("test-cert.pem")).expect("cert");
    let cert = reqwest::Certificate::from_pem(&pem).expect("cert pem");
    let mut b = reqwest::Client::builder().tls_certs_only([cert]);
    if let Some(v) = max {
        b = b.tls_version_max(v);
    }
    if h2 {
        b = b.http2_prior_knowledge();
    }
    b.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_and_api_serve_tls_13() {
    let tls = format!(
        // No min_version: TLS 1.3 is the default.
        "tls:\n  cert_file: {}\n  key_file: {}",
        data("test-cert.pem").display(),
        data("test-key.pem").display()
    );
    let server = Server::start_opts(Options {
        grpc: tls.clone(),
        http: tls.clone(),
        api: tls,
        https: true,
        ..Options::default()
    });
    let c = client(None, false);
    let health = c
        .get(format!("https://localhost:{}/healthz", server.api.port()))
        .send()
        .await
        .expect("https API");
    assert_eq!(health.status(), 200);

    let req = Workload::new(WorkloadConfig::default()).batch(50);
    let n: u64 = causeway_benches::span_count(&req);
    let body = Bytes::from(req.encode_to_vec());
    let resp = c
        .post(format!(
            "https://localhost:{}/v1/traces",
            server.http.port()
        ))
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .expect("OTLP/HTTP over TLS");
    assert_eq!(resp.status(), 200);

    // OTLP/gRPC over TLS (HTTP/2 negotiated by ALPN).
    let g = client(None, true);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let resp = g
        .post(format!(
            "https://localhost:{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            server.grpc.port()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .expect("OTLP/gRPC over TLS");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(
        resp.bytes().await.expect("body").len() >= 5,
        "a gRPC response message"
    );

    let services = c
        .get(format!(
            "https://localhost:{}/api/v1/services",
            server.api.port()
        ))
        .send()
        .await
        .expect("services")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let total: u64 = services["services"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["spans"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 2 * n);

    // A client that stops at TLS 1.2 is refused.
    let old = client(Some(reqwest::tls::Version::TLS_1_2), false);
    assert!(
        old.get(format!("https://localhost:{}/healthz", server.api.port()))
            .send()
            .await
            .is_err()
    );
    // Plaintext to a TLS port fails too.
    assert!(
        reqwest::get(format!("http://{}/healthz", server.api))
            .await
            .is_err()
    );
}
