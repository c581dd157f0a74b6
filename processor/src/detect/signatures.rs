//! New error signatures: an exception type, status message or HTTP status
//! never seen before for an operation. A deploy that introduces a new
//! failure shows here before any ratio moves.
//!
//! Signatures are learned silently until the tenant has `learn_ns` of
//! event-time history; after that, the first occurrence of a signature is
//! reported (once), and it resolves after `quiet_ns` without a recurrence.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use causeway_model::schema::{col, status};

use crate::red::DictColumn;

/// An operation: service, span name, kind.
pub(crate) type OpKey = (Arc<str>, Arc<str>, i8);

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
}

/// Known signatures of one tenant.
#[derive(Debug, Default)]
pub(crate) struct Signatures {
    known: HashSet<u64>,
    first_event_ns: Option<i64>,
}

impl Signatures {
    /// Reads the error spans of `batch`; returns signatures new for their
    /// operation once the tenant has `learn_ns` of history.
    pub(crate) fn observe(&mut self, batch: &RecordBatch, learn_ns: i64) -> Vec<NewSignature> {
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
            (svc, op, k, &signature).hash(&mut h);
            let id = h.finish();
            let t = start.value(r);
            let warm = self
                .first_event_ns
                .is_some_and(|f| t.saturating_sub(f) >= learn_ns);
            if self.known.contains(&id) {
                if let Some(n) = found.get_mut(&id) {
                    n.count += 1;
                    n.first_ns = n.first_ns.min(t);
                    if n.traces.len() < 5
                        && let Some(tr) = trace
                    {
                        let hex = hex::encode(tr.value(r));
                        if !n.traces.contains(&hex) {
                            n.traces.push(hex);
                        }
                    }
                }
                continue;
            }
            if self.known.len() >= MAX_SIGNATURES {
                continue;
            }
            self.known.insert(id);
            if warm {
                found.insert(
                    id,
                    NewSignature {
                        op: (Arc::from(svc), Arc::from(op), k),
                        signature,
                        first_ns: t,
                        count: 1,
                        traces: trace
                            .map(|tr| vec![hex::encode(tr.value(r))])
                            .unwrap_or_default(),
                    },
                );
            }
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
