//! Time-of-day profiles: what a value usually is at this hour, learned over
//! days, so that a change that comes back every day at the same time (a
//! nightly batch, a morning peak in one region's service) is not news.
//!
//! The day is cut into slots (30 minutes). While a slot runs, its values
//! are collected; when the clock leaves it, their median joins that slot's
//! history of daily medians (the last week). A slot is judged by the
//! median of those daily medians, so one unusual day (an incident
//! yesterday at this hour) does not make the same thing normal today: it
//! takes the same change on most of the days remembered, and at least
//! [`MIN_DAYS`] of them.
//!
//! Every value is learned, also those judged anomalous at the time: that
//! a shift recurs daily is only known after the fact. The recurrence rule
//! above is what keeps a one-off fault out.

use super::baseline::Baseline;

/// Length of a slot, ns.
const SLOT_NS: i64 = 30 * 60 * 1_000_000_000;
/// Slots per day.
const SLOTS: usize = 48;
/// Daily medians remembered per slot.
const DAYS: usize = 7;
/// Days a slot needs before it is used.
pub(super) const MIN_DAYS: usize = 2;
/// Values held for the running slot's median (one per window; a 30-minute
/// slot of 10-second windows has 180).
const RUNNING_CAP: usize = 512;

/// The time-of-day profile of one value.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Seasonal {
    /// Per slot of the day, its daily medians (empty until first used).
    slots: Vec<Baseline>,
    /// The running slot (absolute slot number since the epoch) and its
    /// values so far.
    running: Option<(i64, Vec<f64>)>,
}

impl Seasonal {
    /// Learns `value` seen at `at_ns` (event time).
    pub(super) fn observe(&mut self, at_ns: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let slot = at_ns.div_euclid(SLOT_NS);
        match &mut self.running {
            Some((s, values)) if *s == slot => {
                if values.len() < RUNNING_CAP {
                    values.push(value);
                }
            }
            _ => {
                self.close();
                self.running = Some((slot, vec![value]));
            }
        }
    }

    /// Ends the running slot: its median joins the slot's history.
    fn close(&mut self) {
        let Some((slot, mut values)) = self.running.take() else {
            return;
        };
        if values.is_empty() {
            return;
        }
        values.sort_unstable_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        if self.slots.is_empty() {
            self.slots = vec![Baseline::new(DAYS); SLOTS];
        }
        let i = slot.rem_euclid(SLOTS as i64) as usize;
        if let Some(b) = self.slots.get_mut(i) {
            b.push(median);
        }
    }

    /// What the value usually is at `at_ns`'s time of day (the median of
    /// the slot's daily medians), once the slot has [`MIN_DAYS`] days.
    /// The running slot's own values do not count: they are today's.
    pub(super) fn expected(&self, at_ns: i64) -> Option<f64> {
        let i = at_ns.div_euclid(SLOT_NS).rem_euclid(SLOTS as i64) as usize;
        let b = self.slots.get(i)?;
        (b.len() >= MIN_DAYS).then(|| b.median())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;
    const DAY: i64 = 24 * HOUR;

    /// A value of 0.02, except 0.10 from 02:00 to 03:00, every 10 s for
    /// `days` days.
    fn feed(s: &mut Seasonal, days: i64) {
        for t in (0..days * DAY).step_by(10_000_000_000) {
            let hour = t.rem_euclid(DAY) / HOUR;
            s.observe(t, if hour == 2 { 0.10 } else { 0.02 });
        }
    }

    #[test]
    fn a_slot_is_used_after_enough_days_and_follows_the_time_of_day() {
        let mut s = Seasonal::default();
        feed(&mut s, 1);
        assert_eq!(s.expected(DAY + 2 * HOUR), None, "one day is not enough");
        feed(&mut s, 3);
        let at = 3 * DAY;
        assert_eq!(s.expected(at + 2 * HOUR + HOUR / 2), Some(0.10));
        assert_eq!(s.expected(at + 14 * HOUR), Some(0.02));
    }

    #[test]
    fn one_unusual_day_does_not_become_the_profile() {
        let mut s = Seasonal::default();
        feed(&mut s, 3);
        // Day 4: an incident at 14:00 brings the value to 0.5 for an hour.
        for t in (3 * DAY..4 * DAY).step_by(10_000_000_000) {
            let hour = t.rem_euclid(DAY) / HOUR;
            let v = match hour {
                2 => 0.10,
                14 => 0.5,
                _ => 0.02,
            };
            s.observe(t, v);
        }
        s.observe(4 * DAY, 0.02);
        assert_eq!(s.expected(4 * DAY + 14 * HOUR), Some(0.02));
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut s = Seasonal::default();
        for d in 0..3 {
            s.observe(d * DAY, f64::NAN);
            s.observe(d * DAY + 1, 0.3);
            s.observe(d * DAY + 2, f64::INFINITY);
        }
        s.observe(3 * DAY, 0.3);
        assert_eq!(s.expected(3 * DAY), Some(0.3));
    }
}
