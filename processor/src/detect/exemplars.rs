//! Recent span batches of one tenant, kept to pick example traces for an
//! anomaly when it opens (the slowest or failed spans of its subject in
//! its windows). The batches are shared with the span store's buffer, so
//! while they are buffered this costs nothing extra; the row cap bounds it
//! after.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int64Type, TimestampNanosecondType};
use causeway_model::schema::{col, status};

use crate::red::DictColumn;

/// Rows kept per tenant.
pub(super) const RECENT_ROWS: usize = 200_000;

/// The newest span batches of one tenant, at most `cap` rows.
#[derive(Debug)]
pub struct RecentSpans {
    batches: VecDeque<RecordBatch>,
    rows: usize,
    cap: usize,
}

impl Default for RecentSpans {
    fn default() -> Self {
        Self::new(RECENT_ROWS)
    }
}

/// Which spans illustrate an anomaly.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// `service.name`.
    pub service: &'a str,
    /// Span name, or any.
    pub operation: Option<&'a str>,
    /// Span start range, unix ns.
    pub from_ns: i64,
    /// End of the range (exclusive).
    pub to_ns: i64,
    /// Failed spans (else the slowest).
    pub errors: bool,
}

impl RecentSpans {
    /// Keeps up to `cap` rows.
    pub fn new(cap: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            rows: 0,
            cap,
        }
    }

    /// Adds a batch, forgetting the oldest beyond the cap.
    pub fn push(&mut self, batch: RecordBatch) {
        self.rows += batch.num_rows();
        self.batches.push_back(batch);
        while self.rows > self.cap && self.batches.len() > 1 {
            if let Some(old) = self.batches.pop_front() {
                self.rows -= old.num_rows();
            }
        }
    }

    /// The earliest start of a span matching `want` (failed, or any), if
    /// one is still kept.
    pub fn first_start(&self, want: Want<'_>) -> Option<i64> {
        let mut first: Option<i64> = None;
        self.scan(want, |t, _, _| {
            first = Some(first.map_or(t, |f| f.min(t)));
        });
        first
    }

    /// Up to `n` distinct trace ids (hex) of spans matching `want`: failed
    /// ones, or the slowest.
    pub fn examples(&self, want: Want<'_>, n: usize) -> Vec<String> {
        let mut found: Vec<(i64, [u8; 16])> = Vec::new();
        self.scan(want, |_, duration, id| found.push((duration, id)));
        // Slowest first (for errors too: a slow failure shows more).
        found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        let mut out: Vec<String> = Vec::with_capacity(n);
        for (_, id) in found {
            let hex = hex::encode(id);
            if !out.contains(&hex) {
                out.push(hex);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    /// Calls `f(start, duration, trace id)` for every kept span matching
    /// `want`.
    fn scan(&self, want: Want<'_>, mut f: impl FnMut(i64, i64, [u8; 16])) {
        for batch in &self.batches {
            let (Ok(service), Ok(name)) = (
                DictColumn::of(batch, col::SERVICE_NAME),
                DictColumn::of(batch, col::SPAN_NAME),
            ) else {
                continue;
            };
            let (Some(start), Some(duration), Some(code), Some(trace)) = (
                batch
                    .column_by_name(col::START_TIME)
                    .and_then(|a| a.as_primitive_opt::<TimestampNanosecondType>()),
                batch
                    .column_by_name(col::DURATION_NS)
                    .and_then(|a| a.as_primitive_opt::<Int64Type>()),
                batch
                    .column_by_name(col::STATUS_CODE)
                    .and_then(|a| a.as_primitive_opt::<Int8Type>()),
                batch
                    .column_by_name(col::TRACE_ID)
                    .and_then(|a| a.as_fixed_size_binary_opt()),
            ) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                let t = start.value(row);
                if t < want.from_ns || t >= want.to_ns {
                    continue;
                }
                if service.get(row).map(|(_, s)| s) != Some(want.service) {
                    continue;
                }
                if let Some(op) = want.operation
                    && name.get(row).map(|(_, s)| s) != Some(op)
                {
                    continue;
                }
                if want.errors && code.value(row) != status::ERROR {
                    continue;
                }
                let Ok(id) = <[u8; 16]>::try_from(trace.value(row)) else {
                    continue;
                };
                f(t, duration.value(row), id);
            }
        }
    }
}
