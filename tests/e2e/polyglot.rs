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
