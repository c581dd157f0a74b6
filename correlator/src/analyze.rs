//! The analysis of one incident: localize the culprit among the services,
//! explain it (symptoms, evidence, its callers and neighbours), and rank
//! the changes and tickets that could be its cause.

use super::*;

/// The words that describe the incident's symptoms at `culprit`.
fn symptoms(culprit: &localize::Candidate, anomalies: &[Anomaly]) -> Vec<String> {
    let mut text = culprit.service.clone();
    for e in &culprit.evidence {
        match e {
            Evidence::EventPattern {
                operation,
                template,
                ..
            } => {
                text.push(' ');
                text.push_str(operation);
                text.push(' ');
                text.push_str(template);
            }
            Evidence::ErrorOrigin { operation, .. } | Evidence::SelfTime { operation, .. } => {
                text.push(' ');
                text.push_str(operation);
            }
            _ => {}
        }
    }
    for a in anomalies {
        if a.subject.services().contains(&culprit.service.as_str())
            && let Some(d) = &a.detail
        {
            text.push(' ');
            text.push_str(d);
        }
    }
    changes::words(&text)
}

/// The cause the localization evidence points at.
fn evidence_cause(e: Option<&Evidence>) -> CauseKind {
    match e {
        Some(Evidence::ErrorOrigin { .. }) => CauseKind::CodeError,
        Some(Evidence::EventPattern {
            template, score, ..
        }) => {
            let t = template.to_ascii_lowercase();
            if *score > 0.0
                && (t.starts_with("error") || t.starts_with("fatal") || t.starts_with("exception"))
            {
                CauseKind::CodeError
            } else {
                CauseKind::BehaviourChange
            }
        }
        Some(Evidence::SelfTime { .. }) => CauseKind::Resource,
        _ => CauseKind::Traffic,
    }
}

/// Services that call or are called by `service` in `window`.
fn neighbours(window: &SpanSet, strings: &Interner, service: &str) -> Vec<String> {
    let Some(id) = strings.get(service) else {
        return Vec::new();
    };
    let by_span: std::collections::HashMap<([u8; 16], [u8; 8]), u32> = window
        .spans
        .iter()
        .map(|s| ((s.trace, s.span), s.service))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for s in &window.spans {
        let Some(p) = s.parent else { continue };
        let Some(&ps) = by_span.get(&(s.trace, p)) else {
            continue;
        };
        let other = if s.service == id && ps != id {
            ps
        } else if ps == id && s.service != id {
            s.service
        } else {
            continue;
        };
        let name = strings.name(other).to_owned();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A value first seen in the window: the value, its first span time, up
/// to three traces.
type FirstSeen = (u32, i64, Vec<String>);

/// Values of `field` for `service` in the window that the reference never
/// showed, and the reference's values. Nothing when the reference has no
/// value at all (then the first one seen is no change).
fn first_seen(
    input: &Input<'_>,
    service: &str,
    field: fn(&spans::SpanRec) -> Option<u32>,
) -> (Vec<FirstSeen>, std::collections::BTreeSet<u32>) {
    let Some(id) = input.strings.get(service) else {
        return Default::default();
    };
    let before: std::collections::BTreeSet<u32> = input
        .reference
        .spans
        .iter()
        .filter(|s| s.service == id)
        .filter_map(field)
        .collect();
    if before.is_empty() {
        return Default::default();
    }
    let mut first: std::collections::BTreeMap<u32, (i64, Vec<String>)> = Default::default();
    for s in input.window.spans.iter().filter(|s| s.service == id) {
        let Some(v) = field(s).filter(|v| !before.contains(v)) else {
            continue;
        };
        let e = first.entry(v).or_insert((s.start_ns, Vec::new()));
        e.0 = e.0.min(s.start_ns);
        if e.1.len() < 3 {
            e.1.push(s.trace.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    (
        first.into_iter().map(|(v, (t, tr))| (v, t, tr)).collect(),
        before,
    )
}

/// Versions of `service` first seen in the window, as deploys seen in
/// traces.
fn version_changes(input: &Input<'_>, service: &str) -> Vec<Evidence> {
    let (new, before) = first_seen(input, service, |s| s.version);
    new.into_iter()
        .map(|(v, t, traces)| Evidence::VersionChange {
            service: service.to_owned(),
            version: input.strings.name(v).to_owned(),
            first_seen_ns: t,
            previous: before
                .iter()
                .map(|&b| input.strings.name(b).to_owned())
                .collect(),
            trace_ids: traces,
        })
        .collect()
}

/// Instances of `service` first seen in the window (restarts, rollouts,
/// scale-out), at most three.
fn new_instances(input: &Input<'_>, service: &str) -> Vec<Evidence> {
    let (new, before) = first_seen(input, service, |s| s.instance);
    new.into_iter()
        .take(3)
        .map(|(v, t, traces)| Evidence::NewInstance {
            service: service.to_owned(),
            instance: input.strings.name(v).to_owned(),
            first_seen_ns: t,
            previous: before.len(),
            trace_ids: traces,
        })
        .collect()
}

/// The hypotheses to report, best first, at most `k`: the evidence's
/// ranking, overruled by what people who looked said about this incident
/// (their latest word per service). A confirmed service leads, even one the
/// evidence ranks low; a rejected one goes after every other candidate
/// with evidence, and is still listed with its evidence when there is room
/// (the evidence did not change; the ranking did).
pub(crate) fn with_feedback<'c>(
    candidates: &'c [localize::Candidate],
    feedback: &[causeway_model::rca::Feedback],
    k: usize,
) -> Vec<&'c localize::Candidate> {
    let mut verdict: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for f in feedback {
        verdict.insert(f.service.as_str(), f.confirmed);
    }
    let group = |c: &localize::Candidate| match verdict.get(c.service.as_str()) {
        Some(true) => 0,
        None => 1,
        Some(false) => 2,
    };
    let mut top: Vec<&localize::Candidate> = candidates
        .iter()
        .filter(|c| c.score > 0.0 || group(c) == 0)
        .collect();
    // Stable: within a group, the evidence's order.
    top.sort_by_key(|c| group(c));
    top.truncate(k);
    top
}

/// Scores of candidates that rest on the incident's anomalies alone
/// ([`from_anomalies`]): far below any localization evidence (which
/// starts at 1), decreasing in the fallback's order.
const FALLBACK_SCORE: f64 = 1e-3;

/// Candidates when no service has localization evidence (a fault that
/// changed what code returned, not its errors, logs or time; or a window
/// too thin to test): the services the incident's anomalies name, each
/// with those anomalies as evidence. Callees come before their callers,
/// since symptoms travel up the call tree and the deepest anomalous
/// service is the likeliest origin; then by the anomalies' scores. The
/// incident's other services follow, so that an incident always gets a
/// ranked list.
fn from_anomalies(
    incident: &Incident,
    anomalies: &[Anomaly],
    window: &SpanSet,
    strings: &Interner,
) -> Vec<localize::Candidate> {
    let mut named: Vec<(String, f64, Vec<Evidence>)> = Vec::new();
    for a in anomalies {
        // An edge's server side first: the call into it is what moved.
        let mut services = a.subject.services();
        services.reverse();
        for s in services {
            let e = Evidence::Anomaly {
                id: a.id,
                metric: a.metric.to_owned(),
                subject: a.subject.to_string(),
                observed: a.observed,
                expected: a.expected,
            };
            match named.iter_mut().find(|(n, ..)| n == s) {
                Some(entry) => {
                    entry.1 = entry.1.max(a.score);
                    entry.2.push(e);
                }
                None => named.push((s.to_owned(), a.score, vec![e])),
            }
        }
    }
    for s in &incident.services {
        if !named.iter().any(|(n, ..)| n == s) {
            named.push((s.clone(), 0.0, Vec::new()));
        }
    }
    let names: Vec<String> = named.iter().map(|(n, ..)| n.clone()).collect();
    // How many of the other named services call each one.
    let callers = |service: &str| {
        let above = callers_of(window, strings, service);
        names
            .iter()
            .filter(|other| other.as_str() != service && above.contains(other))
            .count()
    };
    let mut keyed: Vec<(usize, f64, String, Vec<Evidence>)> = named
        .into_iter()
        .map(|(n, score, ev)| (callers(&n), score, n, ev))
        .collect();
    // Stable: ties keep the anomalies' order (an edge's server first).
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let n = keyed.len().max(1) as f64;
    keyed
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, service, evidence))| localize::Candidate {
            service,
            score: FALLBACK_SCORE * (n - i as f64) / n,
            operation: None,
            evidence,
        })
        .collect()
}

/// Services that call `service` in `window`.
fn callers_of(window: &SpanSet, strings: &Interner, service: &str) -> Vec<String> {
    let Some(id) = strings.get(service) else {
        return Vec::new();
    };
    let by_span: std::collections::HashMap<([u8; 16], [u8; 8]), u32> = window
        .spans
        .iter()
        .map(|s| ((s.trace, s.span), s.service))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for s in window.spans.iter().filter(|s| s.service == id) {
        let Some(&caller) = s.parent.and_then(|p| by_span.get(&(s.trace, p))) else {
            continue;
        };
        if caller != id {
            let name = strings.name(caller).to_owned();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Analyses one incident.
pub fn analyze(mut input: Input<'_>, config: &CorrelatorConfig) -> RcaReport {
    let mut candidates = localize::localize(&input.reference, &input.window, &mut input.strings);
    if candidates.iter().all(|c| c.score <= 0.0) {
        candidates = from_anomalies(
            input.incident,
            input.anomalies,
            &input.window,
            &input.strings,
        );
    }
    // Earlier incidents' verdicts on the same evidence weigh in.
    let mut precedents: std::collections::HashMap<String, Vec<causeway_model::Precedent>> =
        std::collections::HashMap::new();
    if !input.history.is_empty() {
        for c in &mut candidates {
            let p = input.history.precedents(c, input.incident.id);
            if !p.is_empty() {
                c.score = history::weighed(c.score, &p);
                precedents.insert(c.service.clone(), p);
            }
        }
        localize::rank(&mut candidates);
    }
    let top = with_feedback(&candidates, input.feedback, config.hypotheses);
    let max = top.iter().map(|c| c.score).fold(0.0, f64::max);
    let norm: f64 = top.iter().map(|c| (c.score - max).exp()).sum();
    let mut hypotheses = Vec::new();
    let mut symptom_words = Vec::new();
    for (i, c) in top.iter().enumerate() {
        let words = symptoms(c, input.anomalies);
        if i == 0 {
            symptom_words = words.clone();
        }
        let near = neighbours(&input.window, &input.strings, &c.service);
        let ctx = changes::Context {
            culprit: &c.service,
            neighbours: &near,
            onset_ns: input.incident.onset_ns,
            symptoms: &words,
            lookback_ns: config.change_lookback_ns(),
            half_life_ns: config.change_half_life_ns(),
        };
        let mut evidence = c.evidence.clone();
        let mut cause = evidence_cause(evidence.first());
        let mut change = None;
        let versions = version_changes(&input, &c.service);
        let ranked = changes::rank_changes(input.signals, &ctx);
        // A change mapped to this service (or strongly matching it) is the
        // cause; a version first seen in its spans is a deploy even when
        // no connector reported one.
        if let Some(m) = ranked
            .first()
            .filter(|m| m.score >= config.min_change_score)
        {
            let own = matches!(
                &m.evidence,
                Evidence::Signal { matched, .. } if matched.first().is_some_and(|w| w == "service")
            );
            cause = match m.kind {
                // A change of a neighbour: the dependency changed.
                _ if !own => CauseKind::Dependency,
                causeway_model::SignalKind::Deploy | causeway_model::SignalKind::Release => {
                    CauseKind::Deploy
                }
                _ => CauseKind::Commit,
            };
            change = Some(m.evidence.clone());
            evidence.push(m.evidence.clone());
        } else if let Some(v) = versions.first() {
            cause = CauseKind::Deploy;
            change = Some(v.clone());
        }
        evidence.extend(versions);
        for e in new_instances(&input, &c.service) {
            // Localization may have cited the instance already (a restart).
            let cited = |x: &Evidence| {
                matches!((x, &e), (
                    Evidence::NewInstance { instance: a, .. },
                    Evidence::NewInstance { instance: b, .. },
                ) if a == b)
            };
            if !evidence.iter().any(cited) {
                evidence.push(e);
            }
        }
        hypotheses.push(Hypothesis {
            rank: (i + 1) as u32,
            service: c.service.clone(),
            operation: c.operation.clone(),
            cause,
            confidence: (c.score - max).exp() / norm.max(f64::MIN_POSITIVE),
            score: c.score,
            change,
            evidence,
            precedents: precedents.remove(&c.service).unwrap_or_default(),
        });
    }
    let culprit = hypotheses.first().map(|h| h.service.clone());
    let near = culprit
        .as_deref()
        .map(|c| neighbours(&input.window, &input.strings, c))
        .unwrap_or_default();
    let impacted: Vec<String> = input.incident.services.iter().cloned().collect();
    let reports = match &culprit {
        Some(c) => {
            let ctx = changes::Context {
                culprit: c,
                neighbours: &near,
                onset_ns: input.incident.onset_ns,
                symptoms: &symptom_words,
                lookback_ns: config.report_lookback_ns(),
                half_life_ns: config.change_half_life_ns(),
            };
            changes::rank_reports(input.signals, &ctx, &impacted)
                .into_iter()
                .take(config.reports)
                .map(|m| causeway_model::rca::LinkedReport {
                    signal: m.evidence,
                    score: m.score,
                })
                .collect()
        }
        None => Vec::new(),
    };
    report::build(report::Parts {
        tenant: input.tenant,
        incident: input.incident,
        anomalies: input.anomalies,
        window: (input.incident.onset_ns, config.window_end(input.incident)),
        reference_spans: input.reference.spans.len() as u64,
        reference_seconds: input.reference.covered_seconds(),
        hypotheses,
        impacted,
        reports,
        now_ns: input.now_ns,
    })
}
