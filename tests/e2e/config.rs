//! `causeway validate`, config errors with file/line/field, `${env:VAR}`,
//! the loopback guard, and the embedded default.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Scratch, binary, free_addr, key_hash};

fn validate(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = Scratch::new("validate");
    let path = dir.0.join("c.yaml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run validate");
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "c.yaml");
    (out.status.success(), stderr)
}

#[test]
fn a_valid_config_passes_and_every_shipped_config_is_valid() {
    let (ok, err) = validate(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n      http:\n",
        &[],
    );
    assert!(ok, "{err}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).expect("configs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
            let cert = data.join("test-cert.pem").display().to_string();
            let key = data.join("test-key.pem").display().to_string();
            let (ok, err) = validate(
                &text,
                &[
                    ("CAUSEWAY_ACME_KEY_SHA256", &key_hash("k")),
                    ("CAUSEWAY_TLS_CERT", &cert),
                    ("CAUSEWAY_TLS_KEY", &key),
                ],
            );
            assert!(ok, "{}: {err}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "configs/ holds example configs");
}

#[test]
fn unknown_keys_are_errors_with_line_and_field() {
    let text =
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpiont: 127.0.0.1:4317\n";
    let (ok, err) = validate(text, &[]);
    assert!(!ok);
    assert!(err.contains("c.yaml:5:"), "{err}");
    assert!(err.contains("receivers.otlp.protocols.grpc"), "{err}");
    assert!(err.contains("unknown field `endpiont`"), "{err}");
}

#[test]
fn semantic_problems_are_all_listed_with_their_lines() {
    let text = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  queue:
    capacity: 0
service:
  telemetry:
    logs:
      level: loud
";
    let (ok, err) = validate(text, &[]);
    assert!(!ok);
    assert!(
        err.contains("c.yaml:5: receivers.otlp.protocols.grpc.endpoint: 0.0.0.0:4317 is reachable"),
        "{err}"
    );
    assert!(err.contains("insecure: true"), "{err}");
    assert!(
        err.contains("c.yaml:8: processors.queue.capacity: must be at least 1"),
        "{err}"
    );
    assert!(
        err.contains("c.yaml:12: service.telemetry.logs.level"),
        "{err}"
    );
}

#[test]
fn bad_values_name_their_field() {
    let (ok, err) = validate(
        "auth:\n  api_keys:\n    - tenant: acme\n      key_sha256: abc\n",
        &[],
    );
    assert!(!ok);
    assert!(err.contains("auth.api_keys[0].key_sha256"), "{err}");
    assert!(err.contains("64 hex characters"), "{err}");
    let (ok, err) = validate("exporters:\n  api:\n    endpoint: nowhere\n", &[]);
    assert!(!ok);
    assert!(
        err.contains("c.yaml:3") && err.contains("exporters.api.endpoint"),
        "{err}"
    );
    let (ok, err) = validate(
        "auth:\n  api_keys:\n    - tenant: ../x\n      key_sha256: 00\n",
        &[],
    );
    assert!(!ok && err.contains("tenant"), "{err}");
}

#[test]
fn env_substitution_and_its_errors() {
    let text = "exporters:\n  api:\n    endpoint: 127.0.0.1:${env:CW_TEST_PORT}\ninsecure: ${env:CW_UNSET:-false}\n";
    let (ok, err) = validate(text, &[("CW_TEST_PORT", "5999")]);
    assert!(ok, "{err}");
    let (ok, err) = validate(text, &[]);
    assert!(!ok);
    assert!(
        err.contains("c.yaml:3:") && err.contains("CW_TEST_PORT is not set"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_public_plaintext_listener_even_with_keys() {
    let dir = Scratch::new("public-plaintext");
    let path = dir.0.join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 0.0.0.0:0\n\
             exporters:\n  api:\n    endpoint: {}\n\
             auth:\n  api_keys:\n    - tenant: acme\n      key_sha256: {}\n",
            free_addr(),
            key_hash("k")
        ),
    )
    .expect("write");
    let out = Command::new(binary())
        .current_dir(&dir.0)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("receivers.otlp.protocols.http.endpoint")
            && err.contains("without TLS")
            && err.contains("insecure: true"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_public_address_without_keys() {
    let dir = Scratch::new("public");
    let out = Command::new(binary())
        .current_dir(&dir.0)
        .args(["serve", "--grpc-addr", "0.0.0.0:0"])
        .args([
            "--http-addr",
            &free_addr().to_string(),
            "--api-addr",
            &free_addr().to_string(),
        ])
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reachable from other machines") && err.contains("insecure: true"),
        "{err}"
    );
}

#[test]
fn serve_runs_on_the_embedded_default_without_a_config() {
    let dir = Scratch::new("default");
    // Ports are overridden only because tests run in parallel; everything
    // else is the embedded default (data in ./causeway-data, tenant default).
    let (grpc, http, api) = (free_addr(), free_addr(), free_addr());
    let mut child = Command::new(binary())
        .current_dir(&dir.0)
        .args([
            "serve",
            "--grpc-addr",
            &grpc.to_string(),
            "--http-addr",
            &http.to_string(),
        ])
        .args(["--api-addr", &api.to_string()])
        .env_remove("CAUSEWAY_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "API did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dir.0.join("causeway-data").is_dir(),
        "data dir created in cwd"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
}
