//! What people said about earlier incidents, applied to the next ones.
//!
//! A verdict on a hypothesis (`POST /api/v1/rca/{id}/feedback`) is about
//! the evidence it stood on: "contacts-service's own processing time in
//! `HTTP GET` was not the cause" says that this piece of evidence, on this
//! service, misled once. When the same evidence (the same kind, service,
//! operation or log template) stands behind a candidate of a later
//! incident, the earlier verdicts weigh in, as prior odds updated by
//! Laplace's rule of succession: with `c` confirmations and `r`
//! rejections of matching evidence, the odds that it points at the cause
//! are `(c + 1) / (r + 1)`. A candidate's score is a z-score, whose
//! log-likelihood ratio is about `z² / 2`; the odds are added there, so one
//! rejection costs a weak candidate (z 1.5 → 0.9) more than a strong one
//! (z 6 → 5.9), and no history leaves the score as it is.
//!
//! The latest word per incident and service counts (people change their
//! minds), each incident once per candidate however many of its pieces of
//! evidence match. The incident being analysed is left out: its own
//! feedback overrules the ranking outright (see `with_feedback`).

use std::collections::{BTreeMap, HashMap};

use causeway_model::rca::{Evidence, Feedback, Precedent, RcaReport};

use crate::localize::Candidate;

/// Verdicts of a tenant's earlier incidents, by the evidence they were on.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Evidence key → (incident, confirmed), one per incident.
    verdicts: HashMap<String, Vec<(u64, bool)>>,
}

/// What a piece of evidence is about, independent of its figures: kind,
/// service, and operation or template. Changes, versions and anomalies are
/// particular to one incident and are not matched.
pub fn evidence_key(e: &Evidence) -> Option<String> {
    match e {
        Evidence::EventPattern {
            service, template, ..
        } => Some(format!("event_pattern {service} {template}")),
        Evidence::ErrorOrigin {
            service, operation, ..
        } => Some(format!("error_origin {service} {operation}")),
        Evidence::SelfTime {
            service, operation, ..
        } => Some(format!("self_time {service} {operation}")),
        _ => None,
    }
}

impl History {
    /// Learns from `feedback` (report id, verdict; any order) on `reports`.
    pub fn learn(feedback: &[(u64, Feedback)], reports: &[RcaReport]) -> Self {
        // Latest word per (incident, service).
        let mut latest: BTreeMap<(u64, &str), &Feedback> = BTreeMap::new();
        for (id, f) in feedback {
            let e = latest.entry((*id, f.service.as_str())).or_insert(f);
            if f.at_ns >= e.at_ns {
                *e = f;
            }
        }
        let by_id: HashMap<u64, &RcaReport> = reports.iter().map(|r| (r.id, r)).collect();
        let mut verdicts: HashMap<String, Vec<(u64, bool)>> = HashMap::new();
        for ((id, service), f) in latest {
            let Some(h) = by_id
                .get(&id)
                .and_then(|r| r.hypotheses.iter().find(|h| h.service == service))
            else {
                continue;
            };
            for key in h.evidence.iter().filter_map(evidence_key) {
                let v = verdicts.entry(key).or_default();
                if !v.iter().any(|&(i, _)| i == id) {
                    v.push((id, f.confirmed));
                }
            }
        }
        Self { verdicts }
    }

    /// Whether anything was learned.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// Earlier verdicts on evidence `c` stands on, one per incident other
    /// than `current`, in incident order.
    pub fn precedents(&self, c: &Candidate, current: u64) -> Vec<Precedent> {
        let mut out: BTreeMap<u64, Precedent> = BTreeMap::new();
        for e in &c.evidence {
            let Some(key) = evidence_key(e) else {
                continue;
            };
            for &(incident, confirmed) in self.verdicts.get(&key).into_iter().flatten() {
                if incident != current {
                    out.entry(incident).or_insert_with(|| Precedent {
                        incident,
                        confirmed,
                        evidence: key.clone(),
                    });
                }
            }
        }
        out.into_values().collect()
    }
}

/// `score` (a z-score) weighed by `precedents` (see the module docs).
pub fn weighed(score: f64, precedents: &[Precedent]) -> f64 {
    if precedents.is_empty() {
        return score;
    }
    let confirmed = precedents.iter().filter(|p| p.confirmed).count() as f64;
    let rejected = precedents.len() as f64 - confirmed;
    let log_odds = ((confirmed + 1.0) / (rejected + 1.0)).ln();
    (score * score + 2.0 * log_odds).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_model::CauseKind;
    use causeway_model::rca::Hypothesis;

    fn self_time(service: &str, op: &str) -> Evidence {
        Evidence::SelfTime {
            service: service.into(),
            operation: op.into(),
            observed_ms: 10.0,
            expected_ms: 2.0,
            spans: 40,
            score: 3.0,
            trace_ids: vec![],
        }
    }

    fn report(id: u64, hypotheses: &[(&str, Evidence)]) -> RcaReport {
        RcaReport {
            id,
            tenant: "acme".into(),
            incident: id,
            window_start_ns: 0,
            window_end_ns: 1,
            reference_spans: 0,
            reference_seconds: 0,
            summary: String::new(),
            narrative: String::new(),
            narrative_by: "template".into(),
            impacted_services: Vec::new(),
            reports: Vec::new(),
            timeline: Vec::new(),
            next_steps: Vec::new(),
            feedback: Vec::new(),
            computed_ns: 0,
            incident_updated_ns: 0,
            hypotheses: hypotheses
                .iter()
                .enumerate()
                .map(|(i, (s, e))| Hypothesis {
                    rank: i as u32 + 1,
                    service: (*s).into(),
                    operation: None,
                    cause: CauseKind::Resource,
                    confidence: 0.5,
                    score: 3.0,
                    change: None,
                    evidence: vec![e.clone()],
                    precedents: vec![],
                })
                .collect(),
        }
    }

    fn verdict(id: u64, service: &str, confirmed: bool, at_ns: i64) -> (u64, Feedback) {
        (
            id,
            Feedback {
                rank: 1,
                service: service.into(),
                confirmed,
                by: "sre".into(),
                comment: None,
                at_ns,
            },
        )
    }

    fn candidate(service: &str, evidence: Evidence, score: f64) -> Candidate {
        Candidate {
            service: service.into(),
            score,
            operation: None,
            evidence: vec![evidence],
        }
    }

    #[test]
    fn the_same_evidence_rejected_before_weighs_against_and_confirmed_for() {
        let reports = [
            report(1, &[("db", self_time("db", "SELECT"))]),
            report(2, &[("db", self_time("db", "SELECT"))]),
            report(3, &[("cart", self_time("cart", "GET /cart"))]),
        ];
        let feedback = [
            verdict(1, "db", false, 10),
            verdict(2, "db", true, 20),
            // Changed their mind: the latest word counts.
            verdict(2, "db", false, 30),
            verdict(3, "cart", true, 40),
        ];
        let h = History::learn(&feedback, &reports);
        let db = candidate("db", self_time("db", "SELECT"), 2.0);
        let p = h.precedents(&db, 9);
        assert_eq!(
            p.iter()
                .map(|p| (p.incident, p.confirmed))
                .collect::<Vec<_>>(),
            [(1, false), (2, false)]
        );
        // Two rejections: odds 1/3.
        let w = weighed(2.0, &p);
        assert!((w - (4.0 - 2.0 * 3f64.ln()).sqrt()).abs() < 1e-9, "{w}");
        // Its own incident is left out.
        assert_eq!(h.precedents(&db, 1).len(), 1);
        let cart = candidate("cart", self_time("cart", "GET /cart"), 2.0);
        assert!(weighed(2.0, &h.precedents(&cart, 9)) > 2.0);
        // Other evidence of the same service is not the same evidence.
        let other = candidate("db", self_time("db", "UPDATE"), 2.0);
        assert!(h.precedents(&other, 9).is_empty());
        assert_eq!(weighed(2.0, &[]), 2.0);
        // A strong candidate hardly moves.
        assert!(weighed(8.0, &p) > 7.8);
    }
}
