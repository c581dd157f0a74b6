//! Joining a localized fault with what changed and what people reported:
//! candidate changes (deploys, releases, merged pull requests, commits)
//! and tickets and messages, scored by time, service and content.
//!
//! Content matching is BM25 (Okapi, k1 = 1.2, b = 0.75) between the
//! incident's symptoms (service and operation names, event templates,
//! exception types) and each signal's title, body and changed paths, with
//! identifiers split into words (`getRouteById` → get, route, by, id), so
//! a commit touching `RouteServiceImpl.java` matches a symptom in
//! `route-service`'s `RouteController`. No external service is involved.

use std::collections::{HashMap, HashSet};

use causeway_model::rca::Evidence;
use causeway_model::{Signal, SignalKind};

/// Words that carry no content in symptoms or commit messages.
const STOP: [&str; 24] = [
    "the", "and", "for", "with", "from", "into", "this", "that", "service", "api", "http", "https",
    "get", "post", "put", "info", "error", "warn", "id", "of", "to", "in", "on", "is",
];

/// Lower-case words of `text`: split on non-alphanumerics and inside
/// camelCase; 2+ characters, no stop words, no numbers.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        let mut word = String::new();
        let mut prev_lower = false;
        for c in token.chars() {
            if c.is_uppercase() && prev_lower && !word.is_empty() {
                push_word(&mut out, std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        }
        push_word(&mut out, word);
    }
    out
}

fn push_word(out: &mut Vec<String>, w: String) {
    if w.chars().count() >= 2
        && !w.chars().all(|c| c.is_ascii_digit())
        && !STOP.contains(&w.as_str())
    {
        out.push(w);
    }
}

/// BM25 scores of `query` against each document.
pub fn bm25(query: &[String], docs: &[Vec<String>]) -> Vec<f64> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let n = docs.len() as f64;
    if docs.is_empty() {
        return Vec::new();
    }
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for d in docs {
        let uniq: HashSet<&str> = d.iter().map(String::as_str).collect();
        for w in uniq {
            *df.entry(w).or_default() += 1.0;
        }
    }
    let q: HashSet<&str> = query.iter().map(String::as_str).collect();
    docs.iter()
        .map(|d| {
            let mut tf: HashMap<&str, f64> = HashMap::new();
            for w in d {
                if q.contains(w.as_str()) {
                    *tf.entry(w).or_default() += 1.0;
                }
            }
            let len = d.len() as f64;
            tf.iter()
                .map(|(w, f)| {
                    let df = df.get(w).copied().unwrap_or(0.0);
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * len / avg.max(1.0)))
                })
                .sum()
        })
        .collect()
}

/// The words of a signal: title, body, changed paths, repository.
fn signal_words(s: &Signal) -> Vec<String> {
    let mut w = words(&s.title);
    w.extend(words(&s.body));
    for p in &s.changed_paths {
        w.extend(words(p));
    }
    if let Some(r) = &s.repository {
        w.extend(words(r));
    }
    w
}

/// How a signal relates to the culprit.
fn service_match(s: &Signal, culprit: &str, neighbours: &[String]) -> (f64, &'static str) {
    if s.services.iter().any(|x| x == culprit) {
        (1.0, "service")
    } else if s.services.iter().any(|x| neighbours.contains(x)) {
        (0.4, "neighbour")
    } else if s.services.is_empty() {
        // Unmapped: content alone may still tie it to the culprit.
        (0.15, "unmapped")
    } else {
        (0.05, "other service")
    }
}

#[allow(missing_docs)] // fields named for what they hold
/// A scored signal.
#[derive(Debug, Clone)]
pub struct Match {
    pub score: f64,
    pub evidence: Evidence,
    pub kind: SignalKind,
}

fn evidence_of(s: &Signal, matched: Vec<String>) -> Evidence {
    Evidence::Signal {
        kind: s.kind.as_str().to_owned(),
        source: s.source.clone(),
        external_id: s.external_id.clone(),
        title: s.title.clone(),
        url: s.url.clone(),
        time_ns: s.created_ns,
        matched,
    }
}

#[allow(missing_docs)] // fields named for what they hold
/// What the correlator knows when matching.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub culprit: &'a str,
    pub neighbours: &'a [String],
    pub onset_ns: i64,
    /// Symptom words.
    pub symptoms: &'a [String],
    /// Changes this long before onset are considered.
    pub lookback_ns: i64,
    /// A change's weight halves every this long before onset.
    pub half_life_ns: i64,
}

/// Changes (deploys, releases, pull requests, commits) ranked as the cause
/// of a fault at `ctx.culprit`: time proximity (exponential decay before
/// onset; a change after onset is not a cause) × service match × kind
/// weight × (1 + normalized content match). Best first; zero scores left
/// out.
pub fn rank_changes(signals: &[Signal], ctx: &Context<'_>) -> Vec<Match> {
    let candidates: Vec<&Signal> = signals
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                SignalKind::Deploy
                    | SignalKind::Release
                    | SignalKind::PullRequest
                    | SignalKind::Commit
            ) && s.created_ns <= ctx.onset_ns
                && s.created_ns >= ctx.onset_ns - ctx.lookback_ns
        })
        .collect();
    let docs: Vec<Vec<String>> = candidates.iter().map(|s| signal_words(s)).collect();
    let content = bm25(ctx.symptoms, &docs);
    let max_content = content.iter().copied().fold(0.0, f64::max);
    let mut out: Vec<Match> = candidates
        .iter()
        .zip(content)
        .map(|(s, c)| {
            let (svc, why) = service_match(s, ctx.culprit, ctx.neighbours);
            let age = (ctx.onset_ns - s.created_ns).max(0) as f64;
            let time = 0.5f64.powf(age / ctx.half_life_ns.max(1) as f64);
            let kind = match s.kind {
                SignalKind::Deploy => 1.0,
                SignalKind::Release => 0.9,
                SignalKind::PullRequest => 0.8,
                _ => 0.7,
            };
            let c_norm = if max_content > 0.0 {
                c / max_content
            } else {
                0.0
            };
            let mut matched = vec![
                why.to_owned(),
                format!("{:.0} min before onset", age / 6e10),
            ];
            if c > 0.0 {
                let terms: HashSet<String> = signal_words(s).into_iter().collect();
                let mut hits: Vec<&String> =
                    ctx.symptoms.iter().filter(|w| terms.contains(*w)).collect();
                hits.sort();
                hits.dedup();
                matched.extend(hits.into_iter().take(6).map(|w| format!("term:{w}")));
            }
            Match {
                score: svc * time * kind * (1.0 + c_norm),
                evidence: evidence_of(s, matched),
                kind: s.kind,
            }
        })
        .filter(|m| m.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Tickets and messages that report the symptoms: created from
/// `lookback` before onset on, matching by content (BM25 > 0) and tied
/// to the incident's services or strongly by content. Best first.
pub fn rank_reports(signals: &[Signal], ctx: &Context<'_>, services: &[String]) -> Vec<Match> {
    let candidates: Vec<&Signal> = signals
        .iter()
        .filter(|s| {
            matches!(s.kind, SignalKind::Ticket | SignalKind::Message)
                && s.created_ns >= ctx.onset_ns - ctx.lookback_ns
        })
        .collect();
    let docs: Vec<Vec<String>> = candidates.iter().map(|s| signal_words(s)).collect();
    let content = bm25(ctx.symptoms, &docs);
    let mut out: Vec<Match> = candidates
        .iter()
        .zip(content)
        .filter_map(|(s, c)| {
            let mapped = s
                .services
                .iter()
                .any(|x| services.contains(x) || x == ctx.culprit);
            if c <= 0.0 && !mapped {
                return None;
            }
            // After onset is when reports come; before, they may be about
            // something else.
            let time = if s.created_ns >= ctx.onset_ns {
                1.0
            } else {
                0.5
            };
            let score = (c + if mapped { 2.0 } else { 0.0 }) * time;
            let terms: HashSet<String> = signal_words(s).into_iter().collect();
            let mut matched: Vec<String> = Vec::new();
            if mapped {
                matched.push("service".into());
            }
            let mut hits: Vec<&String> =
                ctx.symptoms.iter().filter(|w| terms.contains(*w)).collect();
            hits.sort();
            hits.dedup();
            matched.extend(hits.into_iter().take(6).map(|w| format!("term:{w}")));
            (score >= 1.0).then(|| Match {
                score,
                evidence: evidence_of(s, matched),
                kind: s.kind,
            })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_identifiers() {
        assert_eq!(
            words("Fix getRouteById NPE in RouteServiceImpl.java (#42)"),
            vec!["fix", "route", "by", "npe", "route", "impl", "java"]
        );
        assert_eq!(words("ts-route-service"), vec!["ts", "route"]);
    }

    #[test]
    fn bm25_prefers_the_matching_document() {
        let q = words("route query failed NullPointerException");
        let docs = vec![
            words("Bump lodash"),
            words("route: guard against a null station in query"),
            words("docs: README"),
        ];
        let s = bm25(&q, &docs);
        assert!(s[1] > s[0] && s[1] > s[2], "{s:?}");
        assert_eq!(s[0], 0.0);
    }
}
