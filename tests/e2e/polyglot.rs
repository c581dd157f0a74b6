//! The Python and Node.js OpenTelemetry SDKs' OTLP exporters (gRPC and
//! HTTP) deliver every span.
//!
//! The SDKs are installed on first use from PyPI and npm (versions pinned in
//! tests/polyglot/) into `$CAUSEWAY_POLYGLOT_DEPS` (default
//! `~/.cache/causeway/polyglot`), so `cargo test` works on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Server;

fn deps_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CAUSEWAY_POLYGLOT_DEPS") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache/causeway/polyglot")
}

fn polyglot_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/polyglot")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs the pinned Python packages unless they already are.
fn python_deps() -> PathBuf {
    let dir = deps_dir().join("python");
    let stamp = dir.join(".installed-requirements.txt");
    let wanted =
        std::fs::read_to_string(polyglot_src().join("requirements.txt")).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        std::fs::create_dir_all(&dir).expect("deps dir");
        run(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--upgrade",
                    "--target",
                ])
                .arg(&dir)
                .arg("-r")
                .arg(polyglot_src().join("requirements.txt")),
            "pip install of the OpenTelemetry Python SDK",
        );
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    dir
}

/// Installs the pinned npm packages unless they already are.
fn node_deps() -> PathBuf {
    let dir = deps_dir().join("node");
    let stamp = dir.join(".installed-package.json");
    let wanted =
        std::fs::read_to_string(polyglot_src().join("package.json")).expect("package.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        std::fs::create_dir_all(&dir).expect("deps dir");
        std::fs::write(dir.join("package.json"), &wanted).expect("package.json");
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir),
            "npm install of the OpenTelemetry JS SDK",
        );
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_and_http_deliver_every_span() {
    let deps = tokio::task::spawn_blocking(python_deps)
        .await
        .expect("install");
    let server = Server::start("");
    let (grpc, http) = (server.grpc.to_string(), server.http.to_string());
    let script = polyglot_src().join("python_sdk.py");
    tokio::task::spawn_blocking(move || {
        run(
            Command::new("python3")
                .arg(script)
                .args([&grpc, &http, "1500"])
                .env("PYTHONPATH", deps),
            "python SDK script",
        )
    })
    .await
    .expect("python");
    let s = server.services(None).await;
    assert_eq!(s.get("py-grpc"), Some(&(1500, 150)), "{s:?}");
    assert_eq!(s.get("py-http"), Some(&(1500, 150)), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_grpc_http_json_and_http_proto_deliver_every_span() {
    let deps = tokio::task::spawn_blocking(node_deps)
        .await
        .expect("install");
    let server = Server::start("");
    let (grpc, http) = (server.grpc.to_string(), server.http.to_string());
    // ESM resolves packages relative to the script, so run a copy placed
    // next to node_modules.
    let script = deps.join("node_sdk.mjs");
    std::fs::copy(polyglot_src().join("node_sdk.mjs"), &script).expect("copy script");
    tokio::task::spawn_blocking(move || {
        run(
            Command::new("node")
                .arg(script)
                .args([&grpc, &http, "1500"]),
            "node SDK script",
        )
    })
    .await
    .expect("node");
    let s = server.services(None).await;
    assert_eq!(s.get("node-grpc"), Some(&(1500, 150)), "{s:?}");
    assert_eq!(s.get("node-http-json"), Some(&(1500, 150)), "{s:?}");
    assert_eq!(s.get("node-http-proto"), Some(&(1500, 150)), "{s:?}");
}

/// Installs Rotel 0.0.1a10 (a Rust OTLP collector) from PyPI and returns
/// the command that runs it. Its binary needs glibc 2.38; on an older glibc
/// it runs under the loader of Debian 13's libc6, unpacked beside it (never
/// installed), as benches/compare_rotel.sh does.
fn rotel_command() -> Vec<std::ffi::OsString> {
    let dir = deps_dir().join("rotel");
    let bin = dir.join("rotel/rotel-agent");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).expect("deps dir");
        run(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "rotel==0.0.1a10",
                    "-d",
                ])
                .arg(&dir),
            "pip download of rotel",
        );
        let wheel = std::fs::read_dir(&dir)
            .expect("rotel dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .expect("rotel wheel");
        run(
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&dir),
            "unzip rotel",
        );
    }
    run(Command::new("chmod").arg("+x").arg(&bin), "chmod rotel");
    if Command::new(&bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return vec![bin.into()];
    }
    let glibc = dir.join("glibc/usr/lib/x86_64-linux-gnu");
    if !glibc.join("libc.so.6").exists() {
        let deb = dir.join("libc6.deb");
        run(
            Command::new("curl")
                .args(["-sSfL", "-o"])
                .arg(&deb)
                .arg("http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.41-12_amd64.deb"),
            "download of Debian 13's libc6",
        );
        run(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(dir.join("glibc")),
            "unpack libc6",
        );
    }
    vec![
        glibc.join("ld-linux-x86-64.so.2").into(),
        "--library-path".into(),
        glibc.into(),
        bin.into(),
    ]
}

/// A collector in front of causeway: Rotel receives OTLP/gRPC from the
/// client and forwards it over OTLP/gRPC or OTLP/HTTP with an API key.
/// (The Go OpenTelemetry Collector cannot be installed on this machine: no
/// Go toolchain, and no registry ships a build with the otlp components.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_forwarding_over_otlp_grpc_and_http_delivers_every_span() {
    use crate::harness::{Scratch, free_addr, grpc, key_hash};
    use bytes::Bytes;
    use causeway_benches::{Workload, WorkloadConfig};
    use prost::Message;

    let rotel = tokio::task::spawn_blocking(rotel_command)
        .await
        .expect("install");
    let extra = format!(
        "auth:\n  api_keys:\n    - tenant: via-grpc\n      key_sha256: {}\n    - tenant: via-http\n      key_sha256: {}\n",
        key_hash("k-grpc"),
        key_hash("k-http")
    );
    let server = Server::start(&extra);
    let dir = Scratch::new("rotel");
    let mut collectors = Vec::new();
    let mut inputs = Vec::new();
    for (protocol, endpoint, key) in [
        ("grpc", format!("http://{}", server.grpc), "k-grpc"),
        // A signal-specific endpoint is used as given, path included.
        (
            "http",
            format!("http://{}/v1/traces", server.http),
            "k-http",
        ),
    ] {
        let (in_grpc, in_http) = (free_addr(), free_addr());
        let child = Command::new(&rotel[0])
            .args(&rotel[1..])
            .arg("start")
            .args([
                "--otlp-grpc-endpoint",
                &in_grpc.to_string(),
                "--otlp-http-endpoint",
                &in_http.to_string(),
            ])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", protocol])
            .args(["--otlp-exporter-traces-endpoint", &endpoint])
            .args([
                "--otlp-exporter-custom-headers",
                &format!("x-api-key={key}"),
            ])
            .args(["--batch-timeout", "100ms", "--log-level", "warn"])
            .arg("--pid-file")
            .arg(dir.0.join(format!("{protocol}.pid")))
            .arg("--log-file")
            .arg(dir.0.join(format!("{protocol}.log")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start rotel");
        collectors.push(child);
        inputs.push(in_grpc);
    }
    for addr in &inputs {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "collector did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let mut workload = Workload::new(WorkloadConfig::default());
    let mut sent = 0u64;
    for i in 0..20 {
        let req = workload.batch(500);
        sent += causeway_benches::span_count(&req);
        let body = Bytes::from(req.encode_to_vec());
        for addr in &inputs {
            grpc::export(*addr, body.clone(), None, i % 2 == 0)
                .await
                .expect("collector accepted");
        }
    }
    let total =
        |s: &std::collections::HashMap<String, (u64, u64)>| s.values().map(|(n, _)| n).sum::<u64>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut via_grpc, mut via_http) = (0, 0);
    while std::time::Instant::now() < deadline {
        via_grpc = total(&server.services(Some("k-grpc")).await);
        via_http = total(&server.services(Some("k-http")).await);
        if via_grpc >= sent && via_http >= sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for mut c in collectors {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(via_grpc, sent, "spans forwarded over OTLP/gRPC");
    assert_eq!(via_http, sent, "spans forwarded over OTLP/HTTP");
}
