//! The fuzz corpora (`fuzz/corpus/<target>/`) replayed through the code
//! each target exercises, and, where `cargo fuzz` is installed, a short
//! coverage-guided run of each target that needs no database
//! (`CAUSEWAY_FUZZ_SECONDS` per target, default 20; 0 skips).

use std::path::{Path, PathBuf};
use std::process::Command;

use causeway_connectors::webhook::{Source, parse};
use causeway_model::TenantId;
use causeway_receiver::otlp::properties;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds a corpus", dir.display());
    files
}

#[test]
fn otlp_corpora_hold_their_properties() {
    for (_, data) in corpus("otlp_protobuf") {
        properties::protobuf_request(&data);
    }
    for (_, data) in corpus("otlp_json") {
        properties::json_request(&data);
    }
    for (_, data) in corpus("otlp_compressed") {
        properties::compressed_body(&data, 1 << 20);
    }
}

#[test]
fn webhook_corpus_is_read_or_refused() {
    let tenant = TenantId::new("acme").expect("tenant");
    let mut read = 0;
    for (path, data) in corpus("webhook") {
        let Some((&which, body)) = data.split_first() else {
            continue;
        };
        let source = Source::ALL[usize::from(which) % Source::ALL.len()];
        let event = (which & 0x80 != 0).then_some("push");
        if parse(
            source,
            "fuzz",
            &tenant,
            event,
            body,
            1_700_000_000_000_000_000,
        )
        .is_ok()
        {
            read += 1;
        } else {
            eprintln!("{} refused", path.display());
        }
    }
    assert!(read >= 4, "the seed payloads are ones each system sends");
}

#[test]
fn config_corpus_parses_or_lists_problems() {
    for (path, data) in corpus("config") {
        let text = String::from_utf8_lossy(&data);
        let _ = causeway_app::config::Config::parse(&path.display().to_string(), &text, &|_| None);
    }
}

/// A short libFuzzer run of each light target, when cargo-fuzz is there.
#[test]
fn light_targets_survive_a_short_fuzzing_run() {
    let seconds: u64 = std::env::var("CAUSEWAY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if seconds == 0 || !installed {
        eprintln!(
            "skipped: cargo-fuzz is not installed (cargo install cargo-fuzz) or CAUSEWAY_FUZZ_SECONDS=0"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Beside the workspace's build cache when there is one (CI keeps it
    // between runs), else fuzz/target: the instrumented build is apart.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(format!("{}-fuzz", PathBuf::from(d).display())))
        .unwrap_or_else(|| root.join("fuzz/target"));
    for target in ["otlp_protobuf", "otlp_json", "otlp_compressed"] {
        // A scratch copy of the corpus: libFuzzer adds what it finds.
        let work =
            std::env::temp_dir().join(format!("causeway-fuzz-{}-{target}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("scratch corpus");
        for (path, data) in corpus(target) {
            std::fs::write(work.join(path.file_name().expect("name")), data).expect("copy");
        }
        let out = Command::new(&cargo)
            .current_dir(root)
            // cargo-fuzz passes the sanitizer-coverage flags it needs;
            // the stable toolchain accepts them with this.
            .env("RUSTC_BOOTSTRAP", "1")
            .env_remove("CARGO_TARGET_DIR")
            .args(["fuzz", "run", "--sanitizer", "none", "--target-dir"])
            .arg(&target_dir)
            .arg(target)
            .arg(&work)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=65536",
            ])
            .output()
            .expect("cargo fuzz runs");
        let _ = std::fs::remove_dir_all(&work);
        assert!(
            out.status.success(),
            "{target}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
