//! Recurring blips: a shift that has come and gone by itself several
//! times on the same series (a cron job's error burst every ten minutes,
//! a nightly batch slowing one database) is how that series behaves, not
//! news. A new episode of it is held back from incidents until it outlasts
//! what the earlier episodes did, or is much stronger than they were; when
//! it does, it opens with its true onset, so a real fault on such a series
//! is reported late by at most twice a blip's length, never misplaced.
//!
//! The kernel is [`Recurrence::hold_until`], a pure function of the
//! episodes seen; the engine records episodes as anomalies end and holds
//! or releases findings.

use std::collections::{HashMap, VecDeque};

use causeway_model::Subject;
use serde::{Deserialize, Serialize};

use super::{Finding, Metric};

/// Earlier self-clearing episodes that make a pattern. One earlier blip
/// could have been an incident of its own; two that each cleared by
/// themselves are a habit of the series.
const MIN_EPISODES: usize = 2;

/// An episode that ended within this long of its onset cleared by itself:
/// the incident quiet period (5 min), about what an on-call takes to
/// acknowledge a page. Longer shifts are incidents, whatever they repeat.
const SHORT_NS: i64 = 5 * 60_000_000_000;

/// How far back episodes count: a day, so that hourly and daily jobs are
/// habits too.
const LOOKBACK_NS: i64 = 24 * 3_600_000_000_000;

/// Episodes kept per series: enough for a burst every 10 minutes over
/// the last few hours; older ones matter less than their count.
const KEEP: usize = 16;

/// A held episode is released once it lasted this many times the longest
/// earlier one: a blip's length varies, but twice the longest seen is past
/// what the habit does.
const OUTLAST: i64 = 2;

/// A held episode is released at once when its score (−log10 p) is this
/// many times the strongest earlier episode's: the same habit gives the
/// same order of surprise, and twice the evidence is another phenomenon.
const STRONGER: f64 = 2.0;

/// One past episode of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Episode {
    pub(super) onset_ns: i64,
    pub(super) end_ns: i64,
    pub(super) score: f64,
}

/// A finding held back, and until when.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) finding: Finding,
    pub(super) name: Option<&'static str>,
    pub(super) until_ns: i64,
    /// Strongest earlier episode's score.
    pub(super) habit_score: f64,
}

/// Past episodes per (subject, metric), and the findings held now.
#[derive(Debug, Default)]
pub(super) struct Recurrence {
    pub(super) episodes: HashMap<(Subject, Metric), VecDeque<Episode>>,
    pub(super) held: HashMap<(Subject, Metric), Held>,
}

/// When a new episode with onset `onset_ns` and `score` may be reported,
/// given the series' earlier episodes: `None` when it is news now (too few
/// earlier self-clearing episodes, or much stronger than they were),
/// otherwise the hold's end and the habit's strongest score.
pub(super) fn hold_until(episodes: &[Episode], onset_ns: i64, score: f64) -> Option<(i64, f64)> {
    let habit: Vec<&Episode> = episodes
        .iter()
        .filter(|e| e.end_ns <= onset_ns && onset_ns - e.onset_ns <= LOOKBACK_NS)
        .filter(|e| e.end_ns - e.onset_ns <= SHORT_NS)
        .collect();
    if habit.len() < MIN_EPISODES {
        return None;
    }
    let longest = habit
        .iter()
        .map(|e| e.end_ns - e.onset_ns)
        .max()
        .unwrap_or(0);
    let strongest = habit.iter().map(|e| e.score).fold(0.0, f64::max);
    if score > STRONGER * strongest {
        return None;
    }
    Some((
        onset_ns.saturating_add(longest.max(1).saturating_mul(OUTLAST)),
        strongest,
    ))
}

impl Recurrence {
    /// Whether a finding just opened is held, and if so keeps it.
    pub(super) fn try_hold(
        &mut self,
        key: &(Subject, Metric),
        finding: &Finding,
        name: Option<&'static str>,
    ) -> bool {
        let past: Vec<Episode> = self
            .episodes
            .get(key)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        match hold_until(&past, finding.onset_ns, finding.score) {
            Some((until_ns, habit_score)) => {
                self.held.insert(
                    key.clone(),
                    Held {
                        finding: finding.clone(),
                        name,
                        until_ns,
                        habit_score,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// A held finding confirmed again at `f`: it is released (returned,
    /// with its first onset and strongest figures) once it outlasted the
    /// habit or outgrew it; otherwise it stays held.
    pub(super) fn confirm(&mut self, key: &(Subject, Metric), f: &Finding) -> Option<Held> {
        let h = self.held.get_mut(key)?;
        h.finding.observed = h.finding.observed.max(f.observed);
        h.finding.score = h.finding.score.max(f.score);
        h.finding.detected_ns = f.detected_ns;
        if f.detected_ns >= h.until_ns || h.finding.score > STRONGER * h.habit_score {
            return self.held.remove(key);
        }
        None
    }

    /// Whether `key` has a held finding.
    pub(super) fn is_held(&self, key: &(Subject, Metric)) -> bool {
        self.held.contains_key(key)
    }

    /// A held finding ended at `end_ns` without being released: one more
    /// episode of the habit.
    pub(super) fn end_held(&mut self, key: &(Subject, Metric), end_ns: i64) -> bool {
        match self.held.remove(key) {
            Some(h) => {
                self.ended(key, h.finding.onset_ns, end_ns, h.finding.score);
                true
            }
            None => false,
        }
    }

    /// Drops every held finding (the data stopped: nobody can tell how
    /// they ended), keeping no episode for them.
    pub(super) fn drop_held(&mut self) -> Vec<(Subject, Metric)> {
        self.held.drain().map(|(k, _)| k).collect()
    }

    /// Records an episode of `key` that ended.
    pub(super) fn ended(
        &mut self,
        key: &(Subject, Metric),
        onset_ns: i64,
        end_ns: i64,
        score: f64,
    ) {
        let v = self.episodes.entry(key.clone()).or_default();
        if v.len() == KEEP {
            v.pop_front();
        }
        v.push_back(Episode {
            onset_ns,
            end_ns: end_ns.max(onset_ns),
            score,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn blip(at_min: i64, secs: i64, score: f64) -> Episode {
        Episode {
            onset_ns: at_min * MIN,
            end_ns: at_min * MIN + secs * 1_000_000_000,
            score,
        }
    }

    #[test]
    fn one_earlier_blip_is_no_habit_two_are() {
        let one = [blip(0, 20, 8.0)];
        assert_eq!(hold_until(&one, 10 * MIN, 8.0), None);
        let two = [blip(0, 20, 8.0), blip(10, 30, 7.0)];
        let (until, habit) = hold_until(&two, 20 * MIN, 8.0).expect("held");
        assert_eq!(until, 20 * MIN + 60_000_000_000, "twice the longest blip");
        assert_eq!(habit, 8.0);
    }

    #[test]
    fn long_episodes_old_ones_and_much_stronger_ones_are_news() {
        let long = [blip(0, 600, 8.0), blip(20, 900, 8.0)];
        assert_eq!(
            hold_until(&long, 60 * MIN, 8.0),
            None,
            "they did not clear by themselves"
        );
        let old = [blip(0, 20, 8.0), blip(10, 20, 8.0)];
        assert_eq!(hold_until(&old, 25 * 60 * MIN, 8.0), None, "beyond a day");
        let two = [blip(0, 20, 8.0), blip(10, 20, 8.0)];
        assert_eq!(
            hold_until(&two, 20 * MIN, 30.0),
            None,
            "another order of surprise"
        );
    }

    #[test]
    fn a_held_finding_is_released_when_it_outlasts_the_habit() {
        let key = (
            Subject::Service {
                service: "cron".into(),
            },
            Metric::ErrorRatio,
        );
        let mut r = Recurrence::default();
        r.ended(&key, 0, 20_000_000_000, 8.0);
        r.ended(&key, 10 * MIN, 10 * MIN + 20_000_000_000, 8.0);
        let f = |detected_min_s: i64, score: f64| Finding {
            metric: Metric::ErrorRatio,
            onset_ns: 20 * MIN,
            detected_ns: 20 * MIN + detected_min_s * 1_000_000_000,
            observed: 0.1,
            expected: 0.01,
            score,
        };
        assert!(r.try_hold(&key, &f(10, 7.0), None));
        assert!(r.confirm(&key, &f(20, 7.0)).is_none(), "as long as a blip");
        let released = r.confirm(&key, &f(40, 7.0)).expect("outlasted");
        assert_eq!(released.finding.onset_ns, 20 * MIN, "its true onset");
        // Another one that clears in time becomes one more episode.
        assert!(r.try_hold(&key, &f(10, 7.0), None));
        assert!(r.end_held(&key, 20 * MIN + 25_000_000_000));
        assert_eq!(r.episodes[&key].len(), 3);
        // One that grows far beyond the habit is released at once.
        assert!(r.try_hold(&key, &f(10, 7.0), None));
        assert!(r.confirm(&key, &f(15, 40.0)).is_some());
    }
}
