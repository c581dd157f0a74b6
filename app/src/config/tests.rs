use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse("t.yaml", text, &|name| match name {
        "PORT" => Some("4999".into()),
        "EMPTY" => Some(String::new()),
        "MULTI" => Some("a\nb".into()),
        _ => None,
    })
}

#[test]
fn empty_and_comment_only_files_are_the_defaults() {
    for text in ["", "\n\n", "# nothing here\n"] {
        let c = parse(text).expect("defaults");
        assert_eq!(c.exporters.api.endpoint.port(), 4319);
        assert!(c.receivers.otlp.protocols.grpc.is_some());
    }
}

#[test]
fn the_shipped_minimal_config_is_the_embedded_default() {
    let text = include_str!("../../../configs/minimal.yaml");
    let file = parse(text).expect("minimal.yaml");
    let default = Config::default();
    assert_eq!(format!("{file:?}"), format!("{default:?}"));
}

#[test]
fn a_protocol_listed_without_settings_runs_with_defaults_and_unlisted_is_off() {
    let c = parse("receivers:\n  otlp:\n    protocols:\n      grpc:\n").expect("grpc only");
    let g = c.receivers.otlp.protocols.grpc.expect("grpc on");
    assert_eq!(g.endpoint.port(), 4317);
    assert!(c.receivers.otlp.protocols.http.is_none());
}

#[test]
fn env_references_are_substituted_with_defaults_and_escapes() {
    let c = parse(
        "exporters:\n  api:\n    endpoint: 127.0.0.1:${env:PORT}\nstorage:\n  data_dir: /d/${NOPE:-fallback}/$$x\n",
    )
    .expect("substituted");
    assert_eq!(c.exporters.api.endpoint.port(), 4999);
    assert_eq!(
        c.storage.data_dir,
        std::path::PathBuf::from("/d/fallback/$x")
    );
    // Comments are not substituted.
    parse("# ${env:UNSET}\n").expect("comment ignored");
}

#[test]
fn env_errors_name_line_and_variable() {
    let err = parse("insecure: false\nstorage:\n  data_dir: ${env:UNSET}\n").expect_err("unset");
    assert_eq!(err.0[0].line, Some(3));
    assert!(err.0[0].message.contains("UNSET is not set"), "{err}");
    let err = parse("storage:\n  data_dir: ${env:MULTI}\n").expect_err("newline");
    assert!(err.0[0].message.contains("newline"), "{err}");
    let err = parse("storage:\n  data_dir: ${env:bad-name}\n").expect_err("name");
    assert!(err.0[0].message.contains("not a valid"), "{err}");
    let err = parse("storage:\n  data_dir: ${env:PORT\n").expect_err("unterminated");
    assert!(err.0[0].message.contains("unterminated"), "{err}");
}

#[test]
fn type_errors_carry_position_and_path() {
    let err = parse("processors:\n  queue:\n    capacity: lots\n").expect_err("type");
    let p = &err.0[0];
    assert_eq!(p.line, Some(3));
    assert_eq!(p.field, "processors.queue.capacity");
    assert!(p.message.contains("invalid type"), "{err}");
    let err = parse("processors:\n  queue:\n    enqueue_timeout: soon\n").expect_err("duration");
    assert_eq!(err.0[0].field, "processors.queue.enqueue_timeout");
}

#[test]
fn insecure_allows_public_addresses_and_keys_do_too() {
    let public =
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n";
    assert!(parse(public).is_err());
    parse(&format!("{public}insecure: true\n")).expect("insecure");
    // Keys alone are not enough beyond loopback: they would cross the
    // network in clear.
    let keyed = format!(
        "{public}auth:\n  api_keys:\n    - tenant: a\n      key_sha256: {}\n",
        "ab".repeat(32)
    );
    let err = parse(&keyed).expect_err("plaintext public listener");
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].field, "receivers.otlp.protocols.grpc.endpoint");
    assert!(err.0[0].message.contains("without TLS"), "{err}");
    parse(&format!("{keyed}insecure: true\n")).expect("insecure, said so");
    // With TLS on the public listener, keys suffice.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let tls = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n        tls:\n          cert_file: {}\n          key_file: {}\n\
         auth:\n  api_keys:\n    - tenant: a\n      key_sha256: {}\n",
        data.join("test-cert.pem").display(),
        data.join("test-key.pem").display(),
        "ab".repeat(32)
    );
    parse(&tls).expect("TLS and keys");
}

#[test]
fn limits_are_configurable_and_checked() {
    let ok = "limits:\n  api:\n    per_client: {per_second: 5, burst: 10}\n    per_tenant: {per_second: 0, burst: 0}\n  sql_concurrency: 4\n  body_idle_timeout: 5s\n";
    let c = parse(ok).expect("valid limits");
    assert_eq!(c.limits.api.per_client.burst, 10);
    assert!(!c.limits.api.per_tenant.enabled());
    assert_eq!(c.limits.sql_concurrency, 4);
    let err = parse("limits:\n  sql_concurrency: 0\n").expect_err("zero slots");
    assert_eq!(err.0[0].field, "limits.sql_concurrency");
    assert_eq!(err.0[0].line, Some(2));
}

#[test]
fn duplicate_keys_and_listeners_are_refused() {
    let text = format!(
        "auth:\n  api_keys:\n    - tenant: a\n      key_sha256: {h}\n    - tenant: b\n      key_sha256: {h}\n\
         exporters:\n  api:\n    endpoint: 127.0.0.1:4317\n",
        h = "cd".repeat(32)
    );
    let err = parse(&text).expect_err("dupes");
    let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"auth.api_keys[1].key_sha256"), "{err}");
    assert!(fields.contains(&"exporters.api.endpoint"), "{err}");
    assert_eq!(
        err.0
            .iter()
            .find(|p| p.field == "auth.api_keys[1].key_sha256")
            .and_then(|p| p.line),
        Some(6)
    );
}
