//! How the stage's answers are cut from its series: cells in a range, and
//! RED rows with every status code merged.

use std::collections::BTreeMap;

use crate::query::{CellRange, RedQuery, RedRow, SnapshotCell};
use crate::red::RedKey;
use crate::series::{Cell, SeriesKey, SeriesSet};

/// Copies the cells of `set` in `range`, at most `limit`; true if more matched.
pub(super) fn copy_cells<K: SeriesKey>(
    set: &SeriesSet<K>,
    range: &CellRange,
    limit: usize,
    out: &mut Vec<SnapshotCell<K>>,
) -> bool {
    for (k, r, t, c) in set.cells() {
        if !range.contains(r, t) {
            continue;
        }
        if out.len() == limit {
            return true;
        }
        out.push((k.clone(), r, t, c.compact_clone()));
    }
    false
}

/// The whole-range cell and the per-step cells of one row.
type Merged = (Cell, BTreeMap<i64, Cell>);

/// RED rows for a query: series of all status codes merged per
/// (service, operation, kind).
pub(super) fn red_rows(
    set: &SeriesSet<RedKey>,
    self_time: &SeriesSet<RedKey>,
    q: &RedQuery,
) -> Vec<RedRow> {
    let filter = |k: &RedKey| {
        q.service.as_deref().is_none_or(|s| *k.service == *s)
            && q.operation.as_deref().is_none_or(|o| *k.operation == *o)
    };
    let step = q
        .step_ns
        .unwrap_or(q.to_ns.saturating_sub(q.from_ns))
        .max(1);
    let merge = |set: &SeriesSet<RedKey>| {
        let mut merged: BTreeMap<(String, String, i8), Merged> = BTreeMap::new();
        for (key, points) in set.query_points(q.from_ns, q.to_ns, step, filter) {
            let entry = merged
                .entry((key.service.to_string(), key.operation.to_string(), key.kind))
                .or_default();
            for (t, cell) in points {
                entry.0.merge(&cell);
                entry.1.entry(t).or_default().merge(&cell);
            }
        }
        merged
    };
    let mut selfs = merge(self_time);
    let points_of = |points: BTreeMap<i64, Cell>| {
        if q.step_ns.is_some() {
            points.into_iter().map(|(t, c)| (t, c.stats())).collect()
        } else {
            Vec::new()
        }
    };
    merge(set)
        .into_iter()
        .map(|(key, (total, points))| {
            let own = selfs.remove(&key);
            let (service, operation, kind) = key;
            RedRow {
                service,
                operation,
                kind,
                total: total.stats(),
                points: points_of(points),
                self_total: own.as_ref().map(|(t, _)| t.stats()),
                self_points: own.map(|(_, p)| points_of(p)).unwrap_or_default(),
            }
        })
        .collect()
}
