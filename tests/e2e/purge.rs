//! A tenant's deletion removes every byte of it from the data directory:
//! spans, series, catalog, detection state, reports, signals; only the
//! audit trail keeps its record of the deletion (by design, for the audit
//! retention). The scan reads every file's raw bytes after the process
//! stopped, and first checks that it does see the tenant before.

use std::path::{Path, PathBuf};

use crate::harness::{Options, Scratch, Server, grpc, key_hash, request_for, spans_in};

const TENANT: &str = "acmepurge";
const SERVICE: &str = "acmepurge-checkout";
const KEPT_TENANT: &str = "globexkept";

/// Files under `dir` (but the audit trail) whose path or bytes name `what`.
fn files_naming(dir: &Path, what: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.to_string_lossy().contains(what) {
                out.push(path.clone());
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audit.duckdb"))
            {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read file");
            if bytes.windows(what.len()).any(|w| w == what.as_bytes()) {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_leaves_no_byte_in_the_data_directory() {
    let data = Scratch::new("purge");
    let dir = data.0.join("data");
    let extra = format!(
        "auth:\n  api_keys:\n    - tenant: {TENANT}\n      key_sha256: {}\n    - tenant: {KEPT_TENANT}\n      key_sha256: {}\n",
        key_hash("k-purge"),
        key_hash("k-kept")
    );
    let mut server = Server::start_opts(Options {
        extra,
        data_dir: Some(dir.clone()),
        ..Options::default()
    });
    for _ in 0..3 {
        grpc::export(
            server.grpc,
            request_for(SERVICE, 200),
            Some("k-purge"),
            false,
        )
        .await
        .expect("export");
        grpc::export(
            server.grpc,
            request_for("globexkept-billing", 100),
            Some("k-kept"),
            false,
        )
        .await
        .expect("export");
    }
    let (status, body) = server
        .post_json(
            "/api/v1/query",
            Some("k-purge"),
            &serde_json::json!({"sql": "SELECT count(*) AS n FROM spans"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A clean stop writes everything; the scan must see the tenant now.
    assert!(server.terminate().success());
    let before = files_naming(&dir, TENANT);
    assert!(
        !before.is_empty(),
        "the scan finds the tenant in the stored data before the deletion"
    );
    server.restart();
    let (status, body) = server
        .delete(&format!("/api/v1/data?confirm={TENANT}"), "k-purge")
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(server.terminate().success());
    let after = files_naming(&dir, TENANT);
    assert!(after.is_empty(), "still naming {TENANT}: {after:?}");
    assert!(files_naming(&dir, SERVICE).is_empty());
    // The other tenant's data is all there.
    server.restart();
    let services = server.services(Some("k-kept")).await;
    let expected = 3 * spans_in(&request_for("globexkept-billing", 100));
    assert_eq!(
        services.get("globexkept-billing").map(|s| s.0),
        Some(expected),
        "{services:?}"
    );
    let services = server.services(Some("k-purge")).await;
    assert!(services.is_empty(), "{services:?}");
    let (status, body) = server.get("/api/v1/audit", Some("k-purge")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("data.delete"),
        "the deletion is audited: {body}"
    );
}
