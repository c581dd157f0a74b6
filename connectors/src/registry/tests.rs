use std::collections::HashSet;

use super::*;
use crate::config::ConnectorsConfig;

/// The keys each system requires beside `type:`, one YAML line each.
const MINIMAL: &[(&str, &[&str])] = &[
    ("github", &["repositories: [acme/shop]"]),
    ("gitlab", &["projects: [acme/cart]"]),
    ("bitbucket", &["repositories: [acme/shop]"]),
    ("azure_devops", &["organization: fab", "project: shop"]),
    ("jira", &["site: https://acme.atlassian.net"]),
    ("linear", &[]),
    ("zendesk", &["subdomain: acme"]),
    ("servicenow", &["instance: acme"]),
    (
        "slack",
        &["channels: [C1]", "workspace_url: https://acme.slack.com"],
    ),
    (
        "salesforce",
        &["instance_url: https://acme.my.salesforce.com"],
    ),
    ("pylon", &["token: { env: PYLON_TOKEN }"]),
    ("git", &["path: /srv/git/shop.git"]),
];

fn parse_source(kind: &str, keys: &[&str]) -> std::result::Result<ConnectorsConfig, String> {
    let mut yaml = format!("sources:\n  - name: s\n    tenant: acme\n    type: {kind}\n");
    for k in keys {
        yaml.push_str(&format!("    {k}\n"));
    }
    serde_yaml_ng::from_str(&yaml).map_err(|e| e.to_string())
}

#[test]
fn every_system_is_registered_once() {
    let mut seen = HashSet::new();
    for n in names() {
        assert!(seen.insert(n), "{n} is registered twice");
    }
    assert_eq!(seen.len(), SYSTEMS.len());
}

#[test]
fn each_registered_name_parses_to_its_system() {
    let sampled: HashSet<&str> = MINIMAL.iter().map(|(n, _)| *n).collect();
    for name in names() {
        // A new system needs its minimal keys here too.
        assert!(sampled.contains(name), "{name} has no minimal settings");
    }
    for (name, keys) in MINIMAL {
        let cfg = parse_source(name, keys).unwrap_or_else(|e| panic!("{name}: {e}"));
        let system = &cfg.sources[0].system;
        assert_eq!(system.name(), *name);
        assert!(std::ptr::eq(system.info(), info(name).expect("registered")));
        assert_eq!(system.read_scopes(), crate::read_scopes(name));
    }
}

#[test]
fn an_unknown_type_names_the_known_ones() {
    let err = parse_source("gitea", &["token: { env: X }"]).expect_err("unknown type");
    assert!(err.contains("source s: unknown type `gitea`"), "{err}");
    for n in names() {
        assert!(err.contains(&format!("`{n}`")), "{n} missing: {err}");
    }
    let untyped = serde_yaml_ng::from_str::<ConnectorsConfig>(
        "sources:\n  - { name: s, tenant: acme, token: { env: X } }\n",
    )
    .expect_err("no type")
    .to_string();
    assert!(untyped.contains("missing field `type`"), "{untyped}");
}

#[test]
fn a_system_still_refuses_keys_it_does_not_know() {
    let err =
        parse_source("github", &["repositories: [a/b]", "colour: red"]).expect_err("unknown key");
    assert!(err.contains("source s: unknown field `colour`"), "{err}");
    // The common keys are taken before the system sees the rest.
    let cfg = parse_source(
        "gitlab",
        &[
            "projects: []",
            "oauth: { client_id: c, refresh_token: { env: R } }",
        ],
    )
    .expect("oauth is a common key");
    assert!(cfg.sources[0].oauth.is_some());
}
