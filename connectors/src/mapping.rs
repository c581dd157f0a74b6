//! Which services a signal concerns: explicit rules from the config
//! (repository, path prefix, Jira component or label, Slack channel,
//! project), then automatic matching of repository, project and path names
//! to the service names seen in traces.

use std::collections::BTreeSet;

/// One explicit rule: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// Repository (`owner/name`, GitLab path, Bitbucket `workspace/repo`).
    #[serde(default)]
    pub repository: Option<String>,
    /// A changed path must start with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A Jira component (or another system's equivalent).
    #[serde(default)]
    pub component: Option<String>,
    /// A ticket label.
    #[serde(default)]
    pub label: Option<String>,
    /// A Slack channel id or name.
    #[serde(default)]
    pub channel: Option<String>,
    /// A project (Jira project key, Linear team, GitLab group path).
    #[serde(default)]
    pub project: Option<String>,
    /// The services it maps to.
    pub services: Vec<String>,
}

/// What a record says about where it belongs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Repository or project path.
    pub repository: Option<String>,
    /// Changed paths.
    pub paths: Vec<String>,
    /// Components.
    pub components: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Chat channel.
    pub channel: Option<String>,
    /// Project or team.
    pub project: Option<String>,
    /// Service names the record states itself (a deploy event's service).
    pub services: Vec<String>,
}

/// Maps hints to services.
#[derive(Debug, Clone, Default)]
pub struct ServiceMapper {
    rules: Vec<MappingRule>,
    /// Known services: (normalized, name).
    known: Vec<(String, String)>,
}

/// Lower case, letters and digits only, with the affixes service names
/// and repositories commonly carry removed (`ts-travel-service` and
/// `travel` both become `travel`).
pub fn normalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut core: &str = &lower;
    for suffix in [
        "-service", "_service", "-svc", "_svc", "-server", "-api", "-app",
    ] {
        if let Some(c) = core.strip_suffix(suffix) {
            core = c;
            break;
        }
    }
    for prefix in ["ts-", "svc-", "service-"] {
        if let Some(c) = core.strip_prefix(prefix) {
            core = c;
            break;
        }
    }
    core.chars().filter(char::is_ascii_alphanumeric).collect()
}

impl ServiceMapper {
    /// A mapper with `rules` and the service names seen in traces.
    pub fn new(rules: Vec<MappingRule>, known: impl IntoIterator<Item = String>) -> Self {
        let mut known: Vec<(String, String)> = known
            .into_iter()
            .map(|s| (normalize(&s), s))
            .filter(|(n, _)| n.len() >= 3)
            .collect();
        known.sort();
        known.dedup();
        Self { rules, known }
    }

    /// The services `h` concerns, sorted and unique.
    pub fn services(&self, h: &Hints) -> Vec<String> {
        let mut out: BTreeSet<String> = h.services.iter().cloned().collect();
        let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (None, _) => true,
            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
            (Some(_), None) => false,
        };
        for rule in &self.rules {
            let ok = eq(&rule.repository, &h.repository)
                && eq(&rule.channel, &h.channel)
                && eq(&rule.project, &h.project)
                && rule
                    .path_prefix
                    .as_ref()
                    .is_none_or(|p| h.paths.iter().any(|x| x.starts_with(p.as_str())))
                && rule
                    .component
                    .as_ref()
                    .is_none_or(|c| h.components.iter().any(|x| x.eq_ignore_ascii_case(c)))
                && rule
                    .label
                    .as_ref()
                    .is_none_or(|l| h.labels.iter().any(|x| x.eq_ignore_ascii_case(l)));
            if ok {
                out.extend(rule.services.iter().cloned());
            }
        }
        if out.is_empty() {
            // Automatic: names that match a known service's.
            let mut names: Vec<&str> = Vec::new();
            if let Some(r) = &h.repository {
                names.push(r.rsplit('/').next().unwrap_or(r));
            }
            if let Some(p) = &h.project {
                names.push(p);
            }
            names.extend(h.components.iter().map(String::as_str));
            names.extend(h.labels.iter().map(String::as_str));
            // Monorepos: directory names of changed paths.
            for p in &h.paths {
                let mut dirs: Vec<&str> = p.split('/').collect();
                dirs.pop();
                names.extend(dirs);
            }
            for name in names {
                let n = normalize(name);
                if let Ok(i) = self.known.binary_search_by(|(k, _)| k.as_str().cmp(&n)) {
                    // Every known service with this normalized name.
                    let mut j = i;
                    while j > 0 && self.known[j - 1].0 == n {
                        j -= 1;
                    }
                    while j < self.known.len() && self.known[j].0 == n {
                        out.insert(self.known[j].1.clone());
                        j += 1;
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["ts-travel-service", "checkout", "payments-api", "db"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn repositories_and_paths_match_service_names() {
        let m = ServiceMapper::new(Vec::new(), known());
        let repo = |r: &str| Hints {
            repository: Some(r.into()),
            ..Hints::default()
        };
        assert_eq!(m.services(&repo("acme/checkout-service")), ["checkout"]);
        assert_eq!(m.services(&repo("fudan/travel")), ["ts-travel-service"]);
        assert_eq!(m.services(&repo("acme/Payments")), ["payments-api"]);
        assert!(m.services(&repo("acme/website")).is_empty());
        // Too short to match automatically.
        assert!(m.services(&repo("acme/db")).is_empty());
        let mono = Hints {
            repository: Some("acme/monorepo".into()),
            paths: vec!["services/checkout/src/cart.rs".into(), "README.md".into()],
            ..Hints::default()
        };
        assert_eq!(m.services(&mono), ["checkout"]);
    }

    #[test]
    fn explicit_rules_win_and_need_every_condition() {
        let rules = vec![
            MappingRule {
                repository: Some("acme/monorepo".into()),
                path_prefix: Some("pay/".into()),
                services: vec!["payments-api".into()],
                ..MappingRule::default()
            },
            MappingRule {
                component: Some("Checkout".into()),
                services: vec!["checkout".into()],
                ..MappingRule::default()
            },
            MappingRule {
                channel: Some("C0INCIDENTS".into()),
                services: vec!["checkout".into(), "payments-api".into()],
                ..MappingRule::default()
            },
        ];
        let m = ServiceMapper::new(rules, known());
        let h = Hints {
            repository: Some("acme/monorepo".into()),
            paths: vec!["pay/ledger.go".into()],
            ..Hints::default()
        };
        assert_eq!(m.services(&h), ["payments-api"]);
        let other_repo = Hints {
            repository: Some("acme/other".into()),
            paths: vec!["pay/ledger.go".into()],
            ..Hints::default()
        };
        assert!(m.services(&other_repo).is_empty());
        let ticket = Hints {
            components: vec!["checkout".into()],
            ..Hints::default()
        };
        assert_eq!(m.services(&ticket), ["checkout"]);
        let chat = Hints {
            channel: Some("C0INCIDENTS".into()),
            ..Hints::default()
        };
        assert_eq!(m.services(&chat), ["checkout", "payments-api"]);
    }
}
