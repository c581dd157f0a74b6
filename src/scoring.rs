//! Root-cause accuracy as the RCA literature reports it: AC@k, the share of
//! cases whose true root cause is among the first k candidates, and Avg@5,
//! the mean of AC@1..5. Shared by `eval nezha` and `eval simulate`.

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
