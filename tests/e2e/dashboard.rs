//! The dashboard in headless Chromium, on real data: a simulated bad
//! deploy is replayed into a data directory, causeway serves it, and the
//! browser signs in, opens the incident, sees its RCA, a trace waterfall,
//! the service graph and RED charts. Screenshots of each page land in
//! `$CARGO_TARGET_TMPDIR/screenshots/`. Also: an OpenAPI-driven fuzz of the
//! API with schemathesis finds no server error.
//!
//! Chromium comes from Debian's package (`.ci/run` installs it);
//! playwright-core and schemathesis are installed on first use (pinned in
//! tests/browser/ and below) into `$CAUSEWAY_POLYGLOT_DEPS`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{Options, Scratch, Server, binary, key_hash};

const KEY: &str = "k-dashboard-acme";

fn deps_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CAUSEWAY_POLYGLOT_DEPS") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache/causeway/polyglot")
}

/// Runs `cmd`; whether it succeeded, and its stdout and stderr.
fn output(cmd: &mut Command, what: &str) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn run(cmd: &mut Command, what: &str) {
    let (ok, text) = output(cmd, what);
    assert!(ok, "{what} failed:\n{text}");
}

/// A data directory holding a simulated web shop with a bad deploy of
/// `shipping`, replayed through the pipeline for tenant acme (built once
/// per test run, copied per test).
fn incident_data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-data");
        let _ = std::fs::remove_dir_all(&dir);
        let files = dir.join("otlp");
        run(
            Command::new(binary())
                .args([
                    "simulate",
                    "--duration",
                    "40m",
                    "--rate",
                    "4",
                    "--seed",
                    "3",
                    "--fault",
                    "bad-deploy:shipping@25m",
                    "--out",
                ])
                .arg(&files),
            "causeway simulate",
        );
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&files)
            .expect("simulated files")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pb"))
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "simulate wrote no OTLP files");
        run(
            Command::new(binary())
                .args(["replay", "--tenant", "acme", "--data-dir"])
                .arg(dir.join("data"))
                .args(&inputs),
            "causeway replay",
        );
        dir.join("data")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn serve_incident(tag: &str) -> (Server, Scratch) {
    let scratch = Scratch::new(tag);
    let data = scratch.0.join("data");
    copy_dir(incident_data(), &data);
    let server = Server::start_opts(Options {
        extra: format!(
            "auth:\n  api_keys:\n    - tenant: acme\n      key_sha256: {}\n    - tenant: globex\n      key_sha256: {}\n\
             processors:\n  correlator:\n    interval: 2s\n",
            key_hash(KEY),
            key_hash("k-dashboard-globex")
        ),
        data_dir: Some(data),
        ..Options::default()
    });
    (server, scratch)
}

fn playwright() -> PathBuf {
    let dir = deps_dir().join("browser");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let wanted = std::fs::read_to_string(src.join("package.json")).expect("package.json");
    let stamp = dir.join(".installed-package.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        std::fs::create_dir_all(&dir).expect("deps dir");
        std::fs::copy(src.join("package.json"), dir.join("package.json")).expect("copy");
        if src.join("package-lock.json").exists() {
            std::fs::copy(src.join("package-lock.json"), dir.join("package-lock.json"))
                .expect("copy lock");
        }
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--omit=dev"])
                .current_dir(&dir),
            "npm install playwright-core",
        );
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    dir.join("node_modules")
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "Chromium is needed for the dashboard test: `apt-get install chromium` (.ci/run does), \
         or set CHROMIUM to its path"
    );
    path
}

#[test]
fn dashboard_in_chromium_shows_the_incident_its_rca_graph_and_red_charts() {
    let chromium = chromium();
    let modules = playwright();
    let (server, _scratch) = serve_incident("dashboard");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let (ok, text) = output(
        Command::new("node")
            .arg(&script)
            .arg(server.api_url(""))
            .arg(KEY)
            .arg(&shots)
            .env("NODE_PATH", &modules)
            .env("CHROMIUM", &chromium),
        "node dashboard.mjs",
    );
    assert!(
        ok,
        "browser test failed:\n{text}\n--- causeway log ---\n{}",
        server.log()
    );
    for page in ["incidents", "rca", "trace", "graph", "red"] {
        let shot = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "{} missing or empty:\n{text}", shot.display());
    }
    eprintln!("screenshots in {}", shots.display());
}

/// The newcomer's path: causeway without API keys (as `serve` runs with no
/// config) serves the dashboard without sign-in; a span sent the way the
/// README's quickstart sends it shows up on the services page.
#[test]
fn keyless_dashboard_opens_without_sign_in_and_shows_what_was_sent() {
    let chromium = chromium();
    let modules = playwright();
    let server = Server::start("");
    let span = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
      "name":"POST /orders","kind":2,"startTimeUnixNano":"1764000000000000000",
      "endTimeUnixNano":"1764000000250000000","status":{"code":2}}]}]}]}"#;
    let (ok, text) = output(
        Command::new("curl")
            .args([
                "-sS",
                "--fail-with-body",
                "-H",
                "content-type: application/json",
                "-d",
                span,
            ])
            .arg(format!("http://{}/v1/traces", server.http)),
        "curl the quickstart span",
    );
    assert!(ok, "the quickstart span was refused: {text}");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/keyless.mjs");
    let (ok, text) = output(
        Command::new("node")
            .arg(&script)
            .arg(server.api_url(""))
            .arg("checkout")
            .arg(&shots)
            .env("NODE_PATH", &modules)
            .env("CHROMIUM", &chromium),
        "node keyless.mjs",
    );
    assert!(
        ok,
        "keyless dashboard test failed:\n{text}\n--- causeway log ---\n{}",
        server.log()
    );
    assert!(
        server
            .log()
            .contains(&format!("dashboard={}", server.api_url("/"))),
        "the ready line does not name the dashboard URL:\n{}",
        server.log()
    );
}

/// schemathesis, pinned, in its own virtualenv under the deps directory.
fn schemathesis() -> PathBuf {
    const VERSION: &str = "4.32.5";
    let venv = deps_dir().join("schemathesis");
    let bin = venv.join("bin/schemathesis");
    let stamp = venv.join(".installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(VERSION) {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("schemathesis=={VERSION}")),
            "pip install schemathesis",
        );
        std::fs::write(&stamp, VERSION).expect("stamp");
    }
    bin
}

#[test]
fn openapi_fuzz_finds_no_server_error() {
    let bin = schemathesis();
    let (server, scratch) = serve_incident("fuzz");
    let report = scratch.0.join("junit.xml");
    let (ok, text) = output(
        Command::new(&bin)
            .args([
                "run",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "30",
            ])
            .args(["--exclude-path", "/api/v1/events"])
            // Signing out or deleting the tenant's data mid-run would only make
            // the rest of the run less interesting.
            .args(["--exclude-path", "/api/v1/data"])
            .args(["--header", &format!("Authorization: Bearer {KEY}")])
            .args(["--url", &server.api_url("")])
            .arg("--report=junit")
            .arg(format!("--report-junit-path={}", report.display()))
            .arg(server.api_url("/api/v1/openapi.json"))
            .env("NO_COLOR", "1")
            // Its cache directory goes where it runs: not into the checkout.
            .current_dir(&scratch.0),
        "schemathesis",
    );
    assert!(
        ok,
        "schemathesis found problems:\n{text}\n--- causeway log ---\n{}",
        server.log()
    );
    // Its summary (operations tested, test cases generated) in the test log.
    let summary: Vec<&str> = text.lines().rev().take(25).collect();
    eprintln!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
