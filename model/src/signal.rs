//! Signals: what changed and what people said, normalized from the systems
//! connectors read (commits, deploys, releases, pull requests, tickets,
//! chat messages), for the correlator to join with anomalies.

use crate::TenantId;

/// What a signal records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A commit to a repository.
    Commit,
    /// A deployment of a version to an environment.
    Deploy,
    /// A published release.
    Release,
    /// A merged pull or merge request.
    PullRequest,
    /// A ticket, issue or incident record.
    Ticket,
    /// A chat message.
    Message,
}

impl SignalKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SignalKind; 6] = [
        SignalKind::Commit,
        SignalKind::Deploy,
        SignalKind::Release,
        SignalKind::PullRequest,
        SignalKind::Ticket,
        SignalKind::Message,
    ];

    /// The stable name (API, storage).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Commit => "commit",
            SignalKind::Deploy => "deploy",
            SignalKind::Release => "release",
            SignalKind::PullRequest => "pull_request",
            SignalKind::Ticket => "ticket",
            SignalKind::Message => "message",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest body excerpt kept, in characters: enough to match symptoms
/// against, not a copy of someone's ticket system.
pub const BODY_EXCERPT_CHARS: usize = 2_000;

/// One normalized record. `(tenant, source, external_id)` identifies it: a
/// record seen again (an overlapping poll, a webhook and a poll of the same
/// deploy) replaces the stored one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    /// Whose.
    pub tenant: TenantId,
    /// What it records.
    pub kind: SignalKind,
    /// The connector instance it came from (`github`, `jira`, or the
    /// name given in the config).
    pub source: String,
    /// The id in the source system (commit sha, issue key, message ts).
    pub external_id: String,
    /// Where a person reads it.
    pub url: Option<String>,
    /// One line: commit subject, ticket summary, release name.
    pub title: String,
    /// The start of the body, at most [`BODY_EXCERPT_CHARS`] characters.
    pub body: String,
    /// Who wrote, merged or deployed it.
    pub author: Option<String>,
    /// When it happened (commit time, deploy time, ticket creation), unix ns.
    pub created_ns: i64,
    /// Last change in the source, unix ns.
    pub updated_ns: i64,
    /// Repository or project it belongs to.
    pub repository: Option<String>,
    /// Paths a commit or pull request changed.
    pub changed_paths: Vec<String>,
    /// Services it concerns (mapping from the config and from names).
    pub services: Vec<String>,
    /// Status in the source (ticket status, deploy state).
    pub status: Option<String>,
    /// Version, tag or ref it names (deploys, releases).
    pub version: Option<String>,
    /// Commit it points at (deploys, merged pull requests).
    pub commit: Option<String>,
}

impl Signal {
    /// A record of `kind` from `source` at `at_ns` (created and updated),
    /// with every optional field empty, for connectors to fill in.
    pub fn new(
        tenant: &TenantId,
        kind: SignalKind,
        source: &str,
        external_id: String,
        at_ns: i64,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            kind,
            source: source.to_owned(),
            external_id,
            url: None,
            title: String::new(),
            body: String::new(),
            author: None,
            created_ns: at_ns,
            updated_ns: at_ns,
            repository: None,
            changed_paths: Vec::new(),
            services: Vec::new(),
            status: None,
            version: None,
            commit: None,
        }
    }
}

/// Text of an HTML fragment (ticket and work-item bodies), whitespace
/// collapsed: tags are dropped, entities left as they are.
pub fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of `s` (on a character boundary), with
/// surrounding whitespace trimmed.
pub fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].trim_end().to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for k in SignalKind::ALL {
            assert_eq!(SignalKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SignalKind::parse("deployment"), None);
    }

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_text("<div>Payment <b>fails</b></div>\n<p>x</p>"),
            "Payment fails x"
        );
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        assert_eq!(excerpt("  héllo wörld ", 7), "héllo w");
        assert_eq!(excerpt("short", 100), "short");
        assert_eq!(excerpt("ab  cd", 3), "ab");
    }
}
