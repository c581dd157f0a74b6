//! The report: summary, narrative and next steps from templates, a
//! timeline, and a Markdown rendering for chat and tickets.

use std::fmt::Write as _;

use causeway_model::rca::{Evidence, Hypothesis, LinkedReport, RcaReport, TimelineEntry};
use causeway_model::{Anomaly, CauseKind, Incident, TenantId};

#[allow(missing_docs)] // fields named for what they hold
/// What [`build`] assembles.
#[derive(Debug)]
pub struct Parts<'a> {
    pub tenant: &'a TenantId,
    pub incident: &'a Incident,
    pub anomalies: &'a [Anomaly],
    pub window: (i64, i64),
    pub reference_spans: u64,
    pub reference_seconds: u64,
    pub hypotheses: Vec<Hypothesis>,
    pub impacted: Vec<String>,
    pub reports: Vec<LinkedReport>,
    pub now_ns: i64,
}

pub use causeway_model::time::rfc3339;

fn signal_title(e: &Evidence) -> Option<String> {
    match e {
        Evidence::Signal {
            kind,
            external_id,
            title,
            ..
        } => Some(format!("{kind} {} \"{title}\"", short(external_id))),
        Evidence::VersionChange {
            version, service, ..
        } => Some(format!(
            "{service} version {version} (first seen in its spans)"
        )),
        _ => None,
    }
}

fn short(id: &str) -> &str {
    // Commit shas are long; 12 characters identify one.
    if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// One line about the strongest evidence.
pub fn describe_evidence(e: &Evidence) -> String {
    match e {
        Evidence::EventPattern {
            service,
            operation,
            template,
            observed,
            expected,
            ..
        } => {
            let verb = if observed > expected {
                "logged more often"
            } else {
                "no longer logged as usual"
            };
            format!(
                "{service} {operation}: \"{template}\" {verb} ({observed:.0} times, {expected:.1} expected)"
            )
        }
        Evidence::ErrorOrigin {
            service,
            operation,
            observed,
            expected,
            ..
        } => format!(
            "{service} {operation}: {observed:.0} errors originate here ({expected:.1} expected)"
        ),
        Evidence::SelfTime {
            service,
            operation,
            observed_ms,
            expected_ms,
            ..
        } => format!(
            "{service} {operation}: own processing time {observed_ms:.1} ms (median), {expected_ms:.1} ms before"
        ),
        Evidence::Anomaly {
            metric,
            subject,
            observed,
            expected,
            ..
        } => format!("{metric} of {subject}: {observed:.2} vs {expected:.2}"),
        Evidence::VersionChange {
            service,
            version,
            previous,
            first_seen_ns,
            ..
        } => format!(
            "{service} runs version {version} since {} (before: {})",
            rfc3339(*first_seen_ns),
            previous.join(", ")
        ),
        Evidence::NewInstance {
            service,
            instance,
            first_seen_ns,
            previous,
            ..
        } => format!(
            "{service} instance {instance} first seen at {} ({previous} instance(s) before): a restart, rollout or scale-out",
            rfc3339(*first_seen_ns)
        ),
        Evidence::Signal {
            kind,
            source,
            external_id,
            title,
            time_ns,
            ..
        } => format!(
            "{kind} {} from {source} at {}: {title}",
            short(external_id),
            rfc3339(*time_ns)
        ),
    }
}

fn next_steps(h: &Hypothesis) -> Vec<String> {
    let mut out = Vec::new();
    let op = h.operation.as_deref().unwrap_or("its busiest operation");
    if let (CauseKind::Deploy | CauseKind::Commit, Some(change)) = (h.cause, &h.change) {
        let what = signal_title(change).unwrap_or_else(|| "the change".into());
        out.push(format!(
            "Review {what}; roll back {} if it is the cause.",
            h.service
        ));
    }
    match h.cause {
        CauseKind::CodeError | CauseKind::BehaviourChange | CauseKind::Deploy | CauseKind::Commit => {
            out.push(format!(
                "Open the example traces of {} {op} and read the events of the failing spans.",
                h.service
            ));
        }
        CauseKind::Resource => out.push(format!(
            "Check CPU, memory and I/O saturation of {} (its own processing slowed down, not its calls).",
            h.service
        )),
        CauseKind::Dependency | CauseKind::Traffic => out.push(format!(
            "Compare the traffic and dependencies of {} before and after onset.",
            h.service
        )),
    }
    out.push("Confirm or reject this hypothesis (POST /api/v1/rca/{id}/feedback): the next analysis of this incident ranks with it.".into());
    out
}

/// Assembles the report.
pub fn build(p: Parts<'_>) -> RcaReport {
    let mut timeline = vec![TimelineEntry {
        time_ns: p.incident.onset_ns,
        what: format!(
            "onset: first anomaly of the incident ({})",
            p.incident
                .services
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }];
    for a in p.anomalies {
        timeline.push(TimelineEntry {
            time_ns: a.detected_ns,
            what: format!("detected {} of {}", a.metric, a.subject),
        });
    }
    if let Some(h) = p.hypotheses.first() {
        for e in &h.evidence {
            match e {
                Evidence::Signal { time_ns, .. } => timeline.push(TimelineEntry {
                    time_ns: *time_ns,
                    what: describe_evidence(e),
                }),
                Evidence::VersionChange { first_seen_ns, .. }
                | Evidence::NewInstance { first_seen_ns, .. } => timeline.push(TimelineEntry {
                    time_ns: *first_seen_ns,
                    what: describe_evidence(e),
                }),
                _ => {}
            }
        }
    }
    for r in &p.reports {
        if let Evidence::Signal { time_ns, .. } = &r.signal {
            timeline.push(TimelineEntry {
                time_ns: *time_ns,
                what: format!("reported: {}", describe_evidence(&r.signal)),
            });
        }
    }
    timeline.sort_by_key(|t| t.time_ns);
    timeline.dedup();

    let (summary, narrative, steps) = match p.hypotheses.first() {
        Some(h) => {
            let op = h
                .operation
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            let change = h
                .change
                .as_ref()
                .and_then(signal_title)
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            let summary = format!(
                "Most likely {}{op}, caused by {}{change} (confidence {:.0}%).",
                h.service,
                h.cause.describe(),
                h.confidence * 100.0
            );
            let mut narrative = format!(
                "The incident began at {} and touches {} service(s). Compared with {} spans of healthy data before it, the strongest change is in {}: {}.",
                rfc3339(p.incident.onset_ns),
                p.impacted.len(),
                p.reference_spans,
                h.service,
                h.evidence
                    .first()
                    .map(describe_evidence)
                    .unwrap_or_else(|| "no specific evidence".into())
            );
            if let Some(next) = p.hypotheses.get(1) {
                let _ = write!(
                    narrative,
                    " The next candidate is {} (confidence {:.0}%).",
                    next.service,
                    next.confidence * 100.0
                );
            }
            if !p.reports.is_empty() {
                let _ = write!(
                    narrative,
                    " {} ticket(s) or message(s) report matching symptoms.",
                    p.reports.len()
                );
            }
            (summary, narrative, next_steps(h))
        }
        None => (
            "No service shows a change in its own behaviour; the cause may be outside the traced services."
                .to_owned(),
            "Localization found no service whose events, errors or own processing time departed from the healthy reference.".to_owned(),
            vec!["Check infrastructure and uninstrumented dependencies.".to_owned()],
        ),
    };
    RcaReport {
        id: p.incident.id,
        tenant: p.tenant.as_str().to_owned(),
        incident: p.incident.id,
        window_start_ns: p.window.0,
        window_end_ns: p.window.1,
        reference_spans: p.reference_spans,
        reference_seconds: p.reference_seconds,
        summary,
        narrative,
        narrative_by: "template".to_owned(),
        hypotheses: p.hypotheses,
        impacted_services: p.impacted,
        reports: p.reports,
        timeline,
        next_steps: steps,
        feedback: Vec::new(),
        computed_ns: p.now_ns,
        incident_updated_ns: p.incident.updated_ns,
    }
}

/// The instructions an LLM narrator gets.
pub const LLM_INSTRUCTIONS: &str = "You explain incidents to on-call engineers. Using ONLY the \
evidence below (no outside knowledge, no guesses beyond it), write 3 to 5 plain sentences: \
what broke, where it most likely started and why, what changed before it, and what to check \
first. Name services, operations, versions, commits and tickets exactly as given. If the \
evidence is weak, say so.";

/// What an LLM narrator sees: the report's findings and evidence, in
/// words, and nothing else (no raw spans, no signal bodies).
pub fn llm_evidence(r: &RcaReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Summary: {}", r.summary);
    let _ = writeln!(
        s,
        "Window: {} to {}; impacted services: {}",
        rfc3339(r.window_start_ns),
        rfc3339(r.window_end_ns),
        r.impacted_services.join(", ")
    );
    for h in &r.hypotheses {
        let _ = writeln!(
            s,
            "Hypothesis {}: {}{} — {} (confidence {:.0}%)",
            h.rank,
            h.service,
            h.operation
                .as_deref()
                .map(|o| format!(" {o}"))
                .unwrap_or_default(),
            h.cause.describe(),
            h.confidence * 100.0
        );
        for e in &h.evidence {
            let _ = writeln!(s, "  evidence: {}", describe_evidence(e));
        }
        for p in &h.precedents {
            let _ = writeln!(s, "  earlier: {}", describe_precedent(p));
        }
    }
    for l in &r.reports {
        let _ = writeln!(s, "Reported: {}", describe_evidence(&l.signal));
    }
    for t in &r.timeline {
        let _ = writeln!(s, "Timeline: {} {}", rfc3339(t.time_ns), t.what);
    }
    s
}

/// An earlier verdict, in words.
fn describe_precedent(p: &causeway_model::Precedent) -> String {
    format!(
        "the same evidence ({}) was {} as the cause of incident {}",
        p.evidence,
        if p.confirmed { "confirmed" } else { "rejected" },
        p.incident
    )
}

/// The report as Markdown.
pub fn markdown(r: &RcaReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# RCA for incident {}\n", r.incident);
    let _ = writeln!(s, "{}\n", r.summary);
    let _ = writeln!(s, "{}\n", r.narrative);
    let _ = writeln!(
        s,
        "Window {} – {}, compared with {} healthy spans ({} s of data).\n",
        rfc3339(r.window_start_ns),
        rfc3339(r.window_end_ns),
        r.reference_spans,
        r.reference_seconds
    );
    let _ = writeln!(s, "## Hypotheses\n");
    for h in &r.hypotheses {
        let _ = writeln!(
            s,
            "{}. **{}**{} — {} (confidence {:.0}%, score {:.1})",
            h.rank,
            h.service,
            h.operation
                .as_deref()
                .map(|o| format!(" `{o}`"))
                .unwrap_or_default(),
            h.cause.describe(),
            h.confidence * 100.0,
            h.score
        );
        for e in &h.evidence {
            let _ = write!(s, "   - {}", describe_evidence(e));
            if let Evidence::Signal { url: Some(u), .. } = e {
                let _ = write!(s, " ([link]({u}))");
            }
            let traces = match e {
                Evidence::EventPattern { trace_ids, .. }
                | Evidence::ErrorOrigin { trace_ids, .. }
                | Evidence::SelfTime { trace_ids, .. }
                | Evidence::VersionChange { trace_ids, .. }
                | Evidence::NewInstance { trace_ids, .. } => trace_ids.as_slice(),
                _ => &[],
            };
            if !traces.is_empty() {
                let _ = write!(s, "; traces {}", traces.join(", "));
            }
            s.push('\n');
        }
        for p in &h.precedents {
            let _ = writeln!(s, "   - earlier: {}", describe_precedent(p));
        }
    }
    if !r.reports.is_empty() {
        let _ = writeln!(s, "\n## Reports\n");
        for l in &r.reports {
            let _ = writeln!(s, "- {}", describe_evidence(&l.signal));
        }
    }
    let _ = writeln!(s, "\n## Timeline\n");
    for t in &r.timeline {
        let _ = writeln!(s, "- {} {}", rfc3339(t.time_ns), t.what);
    }
    let _ = writeln!(s, "\n## Next steps\n");
    for n in &r.next_steps {
        let _ = writeln!(s, "- {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_674_981_742_383_150_913), "2023-01-29T08:42:22Z");
    }
}
