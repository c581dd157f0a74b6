//! Starting and stopping the real binary.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A free loopback port (bound, read, released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr")
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("causeway-e2e-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// reqwest is built without a default rustls provider; tests use ring, as
/// causeway does.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// SHA-256 hex of a key, as `auth.api_keys[].key_sha256` wants it.
pub fn key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Extra YAML per listener and at the top level.
#[derive(Debug, Default)]
pub struct Options {
    /// Under `receivers.otlp.protocols.grpc`.
    pub grpc: String,
    /// Under `receivers.otlp.protocols.http`.
    pub http: String,
    /// Under `exporters.api`.
    pub api: String,
    /// Top-level sections other than receivers/exporters/storage/service.
    pub extra: String,
    /// Under `storage` (beside `data_dir`).
    pub storage: String,
    /// The API serves TLS.
    pub https: bool,
    /// Data directory (default: a fresh one in the scratch directory).
    pub data_dir: Option<PathBuf>,
}

/// A running causeway.
pub struct Server {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
    pub scheme: &'static str,
    log: PathBuf,
    config_path: PathBuf,
    _dir: Scratch,
}

/// A web-shop request of about `spans` spans whose every resource is the
/// one service `service` (so counts are easy to check), encoded.
pub fn request_for(service: &str, spans: usize) -> bytes::Bytes {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
    use prost::Message;
    let mut req =
        causeway_benches::Workload::new(causeway_benches::WorkloadConfig::default()).batch(spans);
    for rs in &mut req.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            for kv in &mut r.attributes {
                if kv.key == "service.name" {
                    kv.value = Some(AnyValue {
                        value: Some(Value::StringValue(service.into())),
                    });
                }
            }
        }
    }
    bytes::Bytes::from(req.encode_to_vec())
}

/// Spans in an encoded `ExportTraceServiceRequest`.
pub fn spans_in(b: &bytes::Bytes) -> u64 {
    use prost::Message;
    let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
        b.clone(),
    )
    .expect("decode");
    causeway_benches::span_count(&req)
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_causeway")
}

impl Server {
    /// Starts with `extra` YAML appended to a config that sets the ports
    /// and data directory; waits until `/readyz` answers 200.
    pub fn start(extra: &str) -> Self {
        Self::start_opts(Options {
            extra: extra.to_owned(),
            ..Options::default()
        })
    }

    /// Starts with per-listener YAML (indented under each listener).
    pub fn start_opts(opts: Options) -> Self {
        install_crypto_provider();
        let dir = Scratch::new("server");
        let (grpc, http, api) = (free_addr(), free_addr(), free_addr());
        let indent = |s: &str, n: usize| {
            s.lines()
                .map(|l| format!("{}{l}\n", " ".repeat(n)))
                .collect::<String>()
        };
        let config = format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: {grpc}\n{g}      http:\n        endpoint: {http}\n{h}\
             exporters:\n  api:\n    endpoint: {api}\n{a}\
             storage:\n  data_dir: {data}\n{st}\
             service:\n  shutdown_timeout: 10s\n{extra}",
            g = indent(&opts.grpc, 8),
            h = indent(&opts.http, 8),
            a = indent(&opts.api, 4),
            st = indent(&opts.storage, 2),
            data = opts
                .data_dir
                .clone()
                .unwrap_or_else(|| dir.0.join("data"))
                .display(),
            extra = opts.extra,
        );
        let config_path = dir.0.join("causeway.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.0.join("causeway.log");
        let mut server = Self {
            child: None,
            grpc,
            http,
            api,
            scheme: if opts.https { "https" } else { "http" },
            log,
            config_path,
            _dir: dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start causeway");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Starts again with the same config and data after [`Self::terminate`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "terminate first");
        self.spawn();
    }

    /// POST JSON to an API path with a key; returns status and body.
    pub async fn post_json(
        &self,
        path: &str,
        key: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut req = client.post(self.api_url(path)).json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// DELETE an API path with a key; returns status and body.
    pub async fn delete(&self, path: &str, key: &str) -> (u16, String) {
        let resp = reqwest::Client::new()
            .delete(self.api_url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("API request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("causeway exited early ({status}):\n{}", self.log());
            }
            if self.scheme == "http" {
                if let Ok(mut s) = std::net::TcpStream::connect(self.api) {
                    use std::io::{Read, Write};
                    let _ = s
                        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    if buf.starts_with("HTTP/1.1 200") {
                        return;
                    }
                }
            } else if std::net::TcpStream::connect(self.api).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "causeway not ready after 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGKILL (a crash: nothing runs on the way out) and waits.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits for exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "causeway did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.api)
    }

    /// GET an API path with an optional key; returns status and body.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut req = client.get(self.api_url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// `/api/v1/services` as name → (spans, errors).
    pub async fn services(&self, key: Option<&str>) -> HashMap<String, (u64, u64)> {
        let (status, body) = self.get("/api/v1/services", key).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["services"]
            .as_array()
            .expect("services array")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().expect("name").to_owned(),
                    (
                        s["spans"].as_u64().expect("spans"),
                        s["errors"].as_u64().expect("errors"),
                    ),
                )
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw OTLP/gRPC client: sends request bytes, returns the decoded response.
pub mod grpc {
    use bytes::{Buf, BufMut, Bytes};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::{Request, Status};

    pub const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    #[derive(Debug, Clone, Copy)]
    pub struct Raw;
    impl Codec for Raw {
        type Encode = Bytes;
        type Decode = ExportTraceServiceResponse;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
    impl Encoder for Raw {
        type Item = Bytes;
        type Error = Status;
        fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = ExportTraceServiceResponse;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
            let bytes = src.copy_to_bytes(src.remaining());
            ExportTraceServiceResponse::decode(bytes)
                .map(Some)
                .map_err(|e| Status::internal(e.to_string()))
        }
    }

    /// Sends one export request.
    pub async fn export(
        addr: std::net::SocketAddr,
        body: Bytes,
        key: Option<&str>,
        gzip: bool,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut client = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut req = Request::new(body);
        if let Some(k) = key {
            req.metadata_mut()
                .insert("x-api-key", k.parse().map_err(|_| Status::internal("key"))?);
        }
        client
            .unary(req, http::uri::PathAndQuery::from_static(PATH), Raw)
            .await
            .map(tonic::Response::into_inner)
    }
}
