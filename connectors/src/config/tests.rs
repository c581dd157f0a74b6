use super::*;

fn parse(yaml: &str) -> ConnectorsConfig {
    serde_yaml_ng::from_str(yaml).expect("parse")
}

#[test]
fn every_system_parses_and_builds_from_references() {
    let cfg = parse(
        r#"
interval: 1m
mapping:
  - { repository: acme/monorepo, path_prefix: pay/, services: [payments] }
sources:
  - { name: gh, tenant: acme, type: github, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [acme/shop] }
  - { name: gl, tenant: acme, type: gitlab, token: { env: CAUSEWAY_TEST_TOKEN }, projects: [acme/cart] }
  - { name: bb, tenant: acme, type: bitbucket, email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [acme/shop] }
  - { name: ado, tenant: acme, type: azure_devops, organization: fab, project: shop, token: { env: CAUSEWAY_TEST_TOKEN }, repositories: [checkout], work_items: true }
  - { name: jira, tenant: acme, type: jira, site: "https://acme.atlassian.net", email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN }, jql: "project = OPS" }
  - { name: lin, tenant: acme, type: linear, key: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: zd, tenant: acme, type: zendesk, subdomain: acme, email: a@b.c, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: sn, tenant: acme, type: servicenow, instance: acme, user: bot, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: sl, tenant: acme, type: slack, token: { env: CAUSEWAY_TEST_TOKEN }, channels: [C1], workspace_url: "https://acme.slack.com" }
  - { name: sf, tenant: acme, type: salesforce, instance_url: "https://acme.my.salesforce.com", token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: py, tenant: acme, type: pylon, token: { env: CAUSEWAY_TEST_TOKEN } }
  - { name: repo, tenant: acme, type: git, path: /srv/git/shop.git, branch: main }
"#,
    );
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    assert_eq!(cfg.interval, Duration::from_secs(60));
    let no_sealed = |_: &TenantId, n: &str| -> Result<Secret> {
        Err(Error::Credential {
            name: n.into(),
            message: "none".into(),
        })
    };
    // Unset: every build fails naming the variable, never a value.
    for s in cfg.sources.iter().filter(|s| s.system.name() != "git") {
        let err = s
            .build(RetryPolicy::default(), &no_sealed, None)
            .expect_err("unset");
        assert!(err.to_string().contains("env:CAUSEWAY_TEST_TOKEN"), "{err}");
    }
    let file = std::env::temp_dir().join(format!("causeway-token-{}", std::process::id()));
    std::fs::write(&file, "tok").expect("write");
    let with_file = format!(
        "sources:\n  - {{ name: gh, tenant: acme, type: github, token: {{ file: {} }}, repositories: [acme/shop] }}\n",
        file.display()
    );
    let cfg = parse(&with_file);
    let c = cfg.sources[0]
        .build(RetryPolicy::default(), &no_sealed, None)
        .expect("build");
    assert_eq!(c.streams().len(), 5);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn problems_name_their_field() {
    let cfg = parse(
        r#"
sources:
  - { name: gh, tenant: "bad tenant!", type: github, token: { sealed: gh }, repositories: [a/b] }
  - { name: gh, tenant: "bad tenant!", type: pylon, token: { env: X }, webhook_secret: { env: Y } }
"#,
    );
    let p = cfg.problems();
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert!(fields.contains(&"connectors.sources[0].tenant"), "{p:?}");
    assert!(fields.contains(&"connectors.sources[1].name"), "{p:?}");
    assert!(
        fields.contains(&"connectors.sources[1].webhook_secret"),
        "{p:?}"
    );
    assert!(fields.contains(&"connectors.seal_key"), "{p:?}");
    let unknown: std::result::Result<ConnectorsConfig, _> = serde_yaml_ng::from_str(
        "sources:\n  - { name: x, tenant: a, type: github, token: { env: X }, repositories: [], colour: red }\n",
    );
    assert!(unknown.is_err());
    let bad_type: std::result::Result<ConnectorsConfig, _> = serde_yaml_ng::from_str(
        "sources:\n  - { name: x, tenant: a, type: gitea, token: { env: X } }\n",
    );
    assert!(bad_type.is_err());
}
