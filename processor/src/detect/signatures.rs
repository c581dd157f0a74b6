//! New error signatures: an exception type, status message or HTTP status
//! never seen before for an operation. A deploy that introduces a new
//! failure shows here before any ratio moves.
//!
//! Signatures are learned silently until the tenant has `learn_ns` of
//! event-time history; after that, a signature is reported (once) when it
//! has occurred `confirm` times within `confirm_ns` (a one-off benign error
//! is not news; a deploy that breaks something repeats it), and only when
//! that many in one window is unlikely for the operation's usual errors of
//! any kind over its whole history; its onset is where the occurrences
//! began to recur (a change point, not the first of them); it resolves
//! after `quiet_ns` without a recurrence.
//! A reported signature that comes back after `regress_ns` of silence is
//! reported again, as a regression (the same exception in the same place a
//! week later is news again); signatures learned as normal never are.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use causeway_model::schema::{col, status};

use super::service::binomial_upper_score;
use crate::red::DictColumn;

/// An operation: service, span name, kind.
pub(crate) type OpKey = (Arc<str>, Arc<str>, i8);

/// `-log10` probability that the candidate's occurrences are the
/// operation's usual errors: an operation that fails now and then in many
/// ways needs more of a new kind than one that never fails.
const CONFIRM_SCORE: f64 = 4.0;

/// Signatures remembered per tenant, at most (beyond, nothing new is
/// learned or reported: a flood of distinct messages is not a signal).
const MAX_SIGNATURES: usize = 100_000;

/// A new signature seen in a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewSignature {
    pub(crate) op: OpKey,
    /// Readable form: `exception.type: message` or `HTTP 503` or the message.
    pub(crate) signature: String,
    /// Start of the first span carrying it, unix ns.
    pub(crate) first_ns: i64,
    /// Spans with it in this batch.
    pub(crate) count: u64,
    /// Their trace ids (hex), a few.
    pub(crate) traces: Vec<String>,
    /// Reported before, silent since, and back.
    pub(crate) regression: bool,
}

/// What is remembered of one signature.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Seen {
    /// Seen while learning: normal for this tenant.
    learned: bool,
    /// Last occurrence, unix ns.
    last_ns: i64,
}

/// Known signatures of one tenant.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Signatures {
    known: HashMap<u64, Seen>,
    /// Errors seen per operation (hash of service, name, kind), for how
    /// many errors of any kind a confirmation window normally holds.
    op_errors: HashMap<u64, u64>,
    /// Unknown signatures seen after learning, not yet confirmed.
    pending: HashMap<u64, Candidate>,
    first_event_ns: Option<i64>,
}

/// Recent occurrences of an unconfirmed signature.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Candidate {
    /// Span starts, ascending, within the confirmation window of the last.
    times: Vec<i64>,
    /// Their trace ids (hex), a few.
    traces: Vec<String>,
}

impl Candidate {
    fn push(&mut self, t: i64, trace: Option<String>, window_ns: i64) {
        let at = self.times.partition_point(|x| *x <= t);
        self.times.insert(at, t);
        let newest = self.last();
        let keep_from = self
            .times
            .partition_point(|x| *x < newest.saturating_sub(window_ns));
        self.times.drain(..keep_from);
        if let Some(tr) = trace
            && self.traces.len() < 5
            && !self.traces.contains(&tr)
        {
            self.traces.push(tr);
        }
    }

    fn last(&self) -> i64 {
        self.times.last().copied().unwrap_or(i64::MIN)
    }

    /// When the signature started to recur: the maximum-likelihood change
    /// point of the occurrences as a Poisson process over the confirmation
    /// window (`window_ns` up to the last occurrence), with at least two
    /// occurrences after it (a rate needs two) and segments measured to
    /// the second (spans of one moment are not an infinite rate). The
    /// same signature may have turned up now and then before a fault made
    /// it frequent (a generic error status, say); the first of the
    /// window's occurrences would date the fault minutes early.
    fn onset(&self, window_ns: i64) -> Option<i64> {
        let n = self.times.len();
        let end = *self.times.last()?;
        let from = end.saturating_sub(window_ns);
        // `k ln(k / span)` of one segment (seconds; 0 for no events).
        let ll = |k: usize, span_ns: i64| {
            if k == 0 {
                return 0.0;
            }
            let k = k as f64;
            k * (k / (span_ns.max(1_000_000_000) as f64 / 1e9)).ln()
        };
        (0..=n.saturating_sub(2))
            .map(|i| {
                let t = self.times[i];
                (ll(i, t - from) + ll(n - i, end - t), t)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, t)| t)
    }
}

impl Signatures {
    /// Reads the error spans of `batch`; returns signatures new for their
    /// operation once the tenant has `learn_ns` of history.
    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        learn_ns: i64,
        regress_ns: i64,
        (confirm, confirm_ns): (usize, i64),
    ) -> Vec<NewSignature> {
        let Some(code) = batch
            .column_by_name(col::STATUS_CODE)
            .and_then(|a| a.as_primitive_opt::<Int8Type>())
        else {
            return Vec::new();
        };
        let Some(start) = batch
            .column_by_name(col::START_TIME)
            .and_then(|a| a.as_primitive_opt::<TimestampNanosecondType>())
        else {
            return Vec::new();
        };
        if let Some(min) = arrow_arith_min(start) {
            self.first_event_ns = Some(self.first_event_ns.map_or(min, |f| f.min(min)));
        }
        let errors: Vec<usize> = (0..batch.num_rows())
            .filter(|&r| code.value(r) == status::ERROR)
            .collect();
        if errors.is_empty() {
            return Vec::new();
        }
        let (Ok(service), Ok(name), Ok(exc)) = (
            DictColumn::of(batch, col::SERVICE_NAME),
            DictColumn::of(batch, col::SPAN_NAME),
            DictColumn::of(batch, col::EXCEPTION_TYPE),
        ) else {
            return Vec::new();
        };
        let kind = batch
            .column_by_name(col::SPAN_KIND)
            .and_then(|a| a.as_primitive_opt::<Int8Type>());
        let message = batch
            .column_by_name(col::STATUS_MESSAGE)
            .and_then(|a| a.as_string_opt::<i32>());
        let http = batch
            .column_by_name(col::HTTP_STATUS_CODE)
            .and_then(|a| a.as_primitive_opt::<Int32Type>());
        let trace = batch
            .column_by_name(col::TRACE_ID)
            .and_then(|a| a.as_fixed_size_binary_opt());
        let mut found: HashMap<u64, NewSignature> = HashMap::new();
        for r in errors {
            let (Some((_, svc)), Some((_, op))) = (service.get(r), name.get(r)) else {
                continue;
            };
            let signature = if let Some((_, t)) = exc.get(r) {
                t.to_owned()
            } else if let Some(h) = http.filter(|h| h.is_valid(r)).map(|h| h.value(r)) {
                format!("HTTP {h}")
            } else if let Some(m) = message.filter(|m| m.is_valid(r)).map(|m| m.value(r)) {
                normalize(m)
            } else {
                "error".to_owned()
            };
            let k = kind.map_or(0, |k| k.value(r));
            let mut h = std::hash::DefaultHasher::new();
            (svc, op, k).hash(&mut h);
            let op_id = h.finish();
            signature.hash(&mut h);
            let id = h.finish();
            let t = start.value(r);
            if self.op_errors.len() < MAX_SIGNATURES || self.op_errors.contains_key(&op_id) {
                *self.op_errors.entry(op_id).or_default() += 1;
            }
            let warm = self
                .first_event_ns
                .is_some_and(|f| t.saturating_sub(f) >= learn_ns);
            let trace_hex = trace.map(|tr| hex::encode(tr.value(r)));
            // Already reported in this batch: one more occurrence.
            if let Some(n) = found.get_mut(&id) {
                n.count += 1;
                n.first_ns = n.first_ns.min(t);
                if let Some(hex) = trace_hex
                    && n.traces.len() < 5
                    && !n.traces.contains(&hex)
                {
                    n.traces.push(hex);
                }
                if let Some(seen) = self.known.get_mut(&id) {
                    seen.last_ns = seen.last_ns.max(t);
                }
                continue;
            }
            let regression = match self.known.get_mut(&id) {
                Some(seen) => {
                    let back =
                        !seen.learned && warm && t.saturating_sub(seen.last_ns) >= regress_ns;
                    if !back {
                        seen.last_ns = seen.last_ns.max(t);
                        continue;
                    }
                    true
                }
                None => false,
            };
            if !warm {
                if self.known.len() < MAX_SIGNATURES {
                    self.known.insert(
                        id,
                        Seen {
                            learned: true,
                            last_ns: t,
                        },
                    );
                }
                continue;
            }
            // A candidate: reported once it occurs `confirm` times within
            // `confirm_ns`, so that a one-off benign error never pages.
            if self.pending.len() >= MAX_SIGNATURES {
                let horizon = t.saturating_sub(confirm_ns);
                self.pending.retain(|_, c| c.last() >= horizon);
                if self.pending.len() >= MAX_SIGNATURES {
                    continue;
                }
            }
            let c = self.pending.entry(id).or_default();
            c.push(t, trace_hex, confirm_ns);
            let n = c.times.len();
            // Errors of any kind this operation has in a confirmation
            // window, on average over its history, besides these.
            let elapsed = self
                .first_event_ns
                .map_or(confirm_ns, |f| t.saturating_sub(f).max(confirm_ns));
            let others = self
                .op_errors
                .get(&op_id)
                .copied()
                .unwrap_or(0)
                .saturating_sub(n as u64);
            // Given all of the operation's errors so far (this
            // signature's recent ones and every other), how likely is it
            // that this many fell into one confirmation window, were this
            // signature one of its usual errors? The window's share of the
            // history is the chance of each; a short history makes a
            // first burst less surprising, as it should: an operation that
            // has not failed in 15 minutes may simply fail rarely.
            let share = confirm_ns as f64 / elapsed as f64;
            if n < confirm.max(1)
                || binomial_upper_score(n as u64, n as u64 + others, share) < CONFIRM_SCORE
            {
                continue;
            }
            let c = self.pending.remove(&id).unwrap_or_default();
            self.known.insert(
                id,
                Seen {
                    learned: false,
                    last_ns: c.last(),
                },
            );
            found.insert(
                id,
                NewSignature {
                    op: (Arc::from(svc), Arc::from(op), k),
                    signature,
                    first_ns: c.onset(confirm_ns).unwrap_or(t),
                    count: c.times.len() as u64,
                    traces: c.traces,
                    regression,
                },
            );
        }
        let mut out: Vec<NewSignature> = found.into_values().collect();
        out.sort_by_key(|n| n.first_ns);
        out
    }
}

fn arrow_arith_min(a: &arrow_array::PrimitiveArray<TimestampNanosecondType>) -> Option<i64> {
    a.iter().flatten().min()
}

/// Ids, numbers, amounts and times vary per request; a signature is the
/// message's shape: every word that contains a digit (numbers, UUIDs, hex
/// ids) becomes `#`.
fn normalize(m: &str) -> String {
    let mut out = String::with_capacity(m.len().min(120));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in m.chars().take(300) {
        if c.is_alphanumeric() || c == '-' || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
        if out.len() >= 120 {
            break;
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn messages_are_normalized_to_their_shape() {
        assert_eq!(
            normalize("order 12345 failed after 30ms"),
            normalize("order 9 failed after 2ms")
        );
        assert_ne!(normalize("order failed"), normalize("payment failed"));
        assert_eq!(
            normalize("no order f3d4d4ef-693b-4456-8eed-59c0d717dd08"),
            normalize("no order 0a1b2c3d-0000-4456-8eed-000000000001")
        );
    }
}
