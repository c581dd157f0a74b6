//! The crates depend on each other in flow order only, as
//! `docs/architecture.md` draws it; read from `cargo metadata`, the same
//! manifests the build uses.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each workspace crate and the causeway crates its normal (non-dev)
/// dependencies name.
fn workspace_deps() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut deps = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_owned();
        let normal: BTreeSet<String> = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|n| n.starts_with("causeway"))
            .map(str::to_owned)
            .collect();
        deps.insert(name, normal);
    }
    deps
}

#[test]
fn no_crate_depends_on_one_later_in_the_flow() {
    let deps = workspace_deps();
    // Earlier stages never reach later ones.
    let forbidden: &[(&str, &[&str])] = &[
        ("causeway-model", &["causeway-"]),
        (
            "causeway-store",
            &[
                "causeway-server",
                "causeway-receiver",
                "causeway-processor",
                "causeway-connectors",
                "causeway-correlator",
                "causeway-exporter",
                "causeway-api",
            ],
        ),
        (
            "causeway-server",
            &[
                "causeway-receiver",
                "causeway-processor",
                "causeway-connectors",
                "causeway-correlator",
                "causeway-exporter",
                "causeway-api",
            ],
        ),
        (
            "causeway-receiver",
            &["causeway-correlator", "causeway-exporter", "causeway-api"],
        ),
        (
            "causeway-processor",
            &["causeway-correlator", "causeway-exporter", "causeway-api"],
        ),
        (
            "causeway-connectors",
            &["causeway-correlator", "causeway-exporter", "causeway-api"],
        ),
        (
            "causeway-correlator",
            &["causeway-exporter", "causeway-api"],
        ),
        ("causeway-exporter", &["causeway-api"]),
    ];
    for (krate, later) in forbidden {
        let of = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is a member"));
        for d in of {
            assert!(
                !later.iter().any(|l| d.starts_with(l)),
                "{krate} depends on {d}, later in the flow"
            );
        }
    }
    // No serving crate pulls in the lab or the benchmarks.
    for (krate, of) in &deps {
        if krate == "causeway-lab" || krate == "causeway-benches" || krate == "causeway" {
            continue;
        }
        assert!(
            !of.contains("causeway-lab") && !of.contains("causeway-benches"),
            "serving crate {krate} depends on {of:?}"
        );
    }
}
