//! How `eval nezha` and `eval simulate` score causeway: detection (an
//! incident whose onset is within 60 s of the fault, false alarms before
//! it) and root-cause accuracy as the RCA literature reports it: AC@k, the
//! share of cases whose true root cause is among the first k candidates,
//! and Avg@5, the mean of AC@1..5.

use serde::Serialize;

/// AC@1..5 of a set of cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Accuracy {
    /// AC@k at index k − 1.
    pub(crate) ac: [f64; 5],
}

impl Accuracy {
    /// From each case's rank of the true root cause (from 1); `None` (no
    /// incident, no RCA, or not ranked) is a miss.
    pub(crate) fn of(ranks: &[Option<usize>]) -> Self {
        let n = ranks.len().max(1) as f64;
        Self {
            ac: std::array::from_fn(|k| {
                ranks
                    .iter()
                    .filter(|r| r.is_some_and(|r| r <= k + 1))
                    .count() as f64
                    / n
            }),
        }
    }

    /// Mean of AC@1..5.
    pub(crate) fn avg5(&self) -> f64 {
        self.ac.iter().sum::<f64>() / 5.0
    }
}

/// Overall accuracy, and per kind (sorted by name) with its case count.
pub(crate) fn accuracy_by_kind(
    cases: &[(String, Option<usize>)],
) -> (Accuracy, Vec<(String, usize, Accuracy)>) {
    let all: Vec<Option<usize>> = cases.iter().map(|(_, r)| *r).collect();
    let mut kinds: Vec<&str> = cases.iter().map(|(k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let by_kind = kinds
        .into_iter()
        .map(|kind| {
            let ranks: Vec<Option<usize>> = cases
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, r)| *r)
                .collect();
            (kind.to_owned(), ranks.len(), Accuracy::of(&ranks))
        })
        .collect();
    (Accuracy::of(&all), by_kind)
}

/// `RCA: AC@1 …` and a line per kind.
#[allow(clippy::print_stdout)]
pub(crate) fn print_accuracy(overall: &Accuracy, by_kind: &[(String, usize, Accuracy)]) {
    let [a1, a2, a3, a4, a5] = overall.ac;
    println!(
        "RCA: AC@1 {a1:.3}, AC@2 {a2:.3}, AC@3 {a3:.3}, AC@4 {a4:.3}, AC@5 {a5:.3}, Avg@5 {:.3}",
        overall.avg5()
    );
    for (kind, n, acc) in by_kind {
        println!(
            "  {kind} ({n} cases): AC@1 {:.3}, AC@3 {:.3}, AC@5 {:.3}, Avg@5 {:.3}",
            acc.ac[0],
            acc.ac[2],
            acc.ac[4],
            acc.avg5()
        );
    }
}

/// What became of one labelled fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    /// Fault type.
    pub(crate) kind: &'a str,
    /// Onset of the detecting incident minus the fault's start, seconds.
    pub(crate) onset_delay_s: Option<f64>,
    /// The detecting incident involves the faulty service.
    pub(crate) on_culprit: bool,
    /// An incident began in the healthy time before the fault.
    pub(crate) false_alarm: bool,
    /// Rank of the true root cause in the RCA (from 1).
    pub(crate) rank: Option<usize>,
}

/// Totals over the cases.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) cases: usize,
    /// Cases with an incident within 60 s of the fault.
    pub(crate) detected: usize,
    /// Of those, cases whose incident involves the faulty service.
    pub(crate) detected_on_culprit: usize,
    /// Cases with an incident in their healthy time before the fault.
    pub(crate) false_alarm_cases: usize,
    /// Incidents in fault-free data, where the data set has some.
    pub(crate) baseline_incidents: Option<usize>,
    /// Mean |onset − fault start| of the detected cases, seconds.
    pub(crate) mean_abs_onset_s: f64,
    /// AC@1..5 over all cases; a case without incident or RCA is a miss.
    pub(crate) accuracy: Accuracy,
    /// Per fault type: (type, cases, AC@1..5).
    pub(crate) by_type: Vec<(String, usize, Accuracy)>,
    /// Where the data can be incomplete (a real data set's missing
    /// files): the complete cases' accuracy and the incomplete cases.
    pub(crate) complete: Option<Completeness>,
    /// Of the detected cases, those whose incident names the culprit or
    /// a service it calls or is called by (detection precision), where
    /// the call graph is known.
    pub(crate) detected_near_culprit: Option<usize>,
}

/// Complete cases apart from incomplete ones.
#[derive(Debug, Serialize)]
pub(crate) struct Completeness {
    /// Cases with every file.
    pub(crate) complete_cases: usize,
    /// AC@1..5 over the complete cases only.
    pub(crate) complete_accuracy: Accuracy,
    /// The incomplete cases, each with what is missing.
    pub(crate) incomplete: Vec<String>,
}

impl Summary {
    pub(crate) fn of(outcomes: &[Outcome<'_>]) -> Self {
        let (accuracy, by_type) = accuracy_by_kind(
            &outcomes
                .iter()
                .map(|o| (o.kind.to_owned(), o.rank))
                .collect::<Vec<_>>(),
        );
        let delays: Vec<f64> = outcomes.iter().filter_map(|o| o.onset_delay_s).collect();
        Self {
            cases: outcomes.len(),
            detected: delays.len(),
            detected_on_culprit: outcomes
                .iter()
                .filter(|o| o.onset_delay_s.is_some() && o.on_culprit)
                .count(),
            false_alarm_cases: outcomes.iter().filter(|o| o.false_alarm).count(),
            baseline_incidents: None,
            mean_abs_onset_s: if delays.is_empty() {
                0.0
            } else {
                delays.iter().map(|d| d.abs()).sum::<f64>() / delays.len() as f64
            },
            accuracy,
            by_type,
            complete: None,
            detected_near_culprit: None,
        }
    }

    /// The totals in words; with `json`, then a JSON line of everything
    /// and, last, the accuracy line `{"cases","ac1","ac3","ac5","avg5"}`.
    #[allow(clippy::print_stdout)]
    pub(crate) fn print(&self, json: bool) {
        let baseline = self
            .baseline_incidents
            .map(|n| format!(", {n} incident(s) in the fault-free baseline"))
            .unwrap_or_default();
        println!(
            "{} cases: {} detected (onset within 60 s; {} of them with the faulty service in the incident), {} with a false alarm before the fault{baseline}; mean |onset - fault start| {:.1} s",
            self.cases,
            self.detected,
            self.detected_on_culprit,
            self.false_alarm_cases,
            self.mean_abs_onset_s
        );
        if let Some(n) = self.detected_near_culprit {
            println!(
                "detection precision: {n} of {} detecting incidents name the culprit or a service it calls or is called by",
                self.detected
            );
        }
        print_accuracy(&self.accuracy, &self.by_type);
        if let Some(c) = &self.complete
            && !c.incomplete.is_empty()
        {
            println!(
                "{} incomplete case(s) (missing minute files): {}; the {} complete cases: AC@1 {:.3}, AC@3 {:.3}, AC@5 {:.3}",
                c.incomplete.len(),
                c.incomplete.join("; "),
                c.complete_cases,
                c.complete_accuracy.ac[0],
                c.complete_accuracy.ac[2],
                c.complete_accuracy.ac[4],
            );
        }
        if !json {
            return;
        }
        println!(
            "{}",
            serde_json::json!({
                "cases": self.cases,
                "detected": self.detected,
                "detected_on_culprit": self.detected_on_culprit,
                "false_alarm_cases": self.false_alarm_cases,
                "baseline_incidents": self.baseline_incidents,
                "detected_near_culprit": self.detected_near_culprit,
                "mean_abs_onset_s": self.mean_abs_onset_s,
                "by_type": self.by_type.iter().map(|(t, n, acc)| serde_json::json!({
                    "type": t, "cases": n, "ac1": acc.ac[0], "ac3": acc.ac[2], "ac5": acc.ac[4],
                    "avg5": acc.avg5(),
                })).collect::<Vec<_>>(),
                "complete": self.complete.as_ref().map(|c| serde_json::json!({
                    "cases": c.complete_cases,
                    "ac1": c.complete_accuracy.ac[0], "ac3": c.complete_accuracy.ac[2],
                    "ac5": c.complete_accuracy.ac[4], "avg5": c.complete_accuracy.avg5(),
                    "incomplete": c.incomplete,
                })),
            })
        );
        // The last line: the accuracy summary.
        println!(
            "{}",
            serde_json::json!({
                "cases": self.cases,
                "ac1": self.accuracy.ac[0],
                "ac3": self.accuracy.ac[2],
                "ac5": self.accuracy.ac[4],
                "avg5": self.accuracy.avg5(),
            })
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac_at_k_counts_ranks_up_to_k_and_misses_count_against() {
        let a = Accuracy::of(&[Some(1), Some(2), None, Some(6)]);
        assert_eq!(a.ac, [0.25, 0.5, 0.5, 0.5, 0.5]);
        assert!((a.avg5() - 0.45).abs() < 1e-12);
        let (all, by) = accuracy_by_kind(&[
            ("cpu".into(), Some(1)),
            ("errors".into(), None),
            ("cpu".into(), Some(3)),
        ]);
        assert_eq!(all.ac[0], 1.0 / 3.0);
        assert_eq!(by.len(), 2);
        assert_eq!((by[0].0.as_str(), by[0].1), ("cpu", 2));
        assert_eq!(by[0].2.ac, [0.5, 0.5, 1.0, 1.0, 1.0]);
        assert_eq!(by[1].2.ac, [0.0; 5]);
    }
}
