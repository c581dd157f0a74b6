//! The `red` and `edges` tables: cells fetched from the stage at scan time,
//! only those the statement's filters on `window_start` and
//! `window_seconds` can match. A tenant holds thousands of cells per series
//! (base windows, minute and hour roll-ups), so copying them all for every
//! statement would not scale; filters narrow the copy, and DataFusion still
//! applies them exactly afterwards.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use causeway_model::TenantId;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::{edges_batch, edges_schema, red_batch, red_schema};
use crate::query::{CellRange, QueryHandle, SnapshotRequest};
use crate::series::Resolution;

/// Cells a statement may read from one table, at most.
pub(super) const MAX_SCAN_CELLS: usize = 2_000_000;

/// Which table.
#[derive(Debug, Clone, Copy)]
pub(super) enum Family {
    Red,
    Edges,
}

/// `red` or `edges` of one tenant.
#[derive(Debug)]
pub(super) struct CellsTable {
    pub(super) family: Family,
    pub(super) tenant: TenantId,
    pub(super) processor: QueryHandle,
    /// Base window length, ns (to map `window_seconds` to a resolution).
    pub(super) window_ns: i64,
}

#[async_trait]
impl TableProvider for CellsTable {
    fn schema(&self) -> SchemaRef {
        match self.family {
            Family::Red => red_schema(),
            Family::Edges => edges_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the range only narrows the copy; DataFusion re-applies
        // every filter to what the scan returns.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = range_of(filters, self.window_ns);
        let mut want = SnapshotRequest {
            range,
            max_cells: MAX_SCAN_CELLS,
            ..SnapshotRequest::default()
        };
        match self.family {
            Family::Red => want.red = true,
            Family::Edges => want.edges = true,
        }
        let snap = self
            .processor
            .snapshot(self.tenant.clone(), want)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if snap.cells_cut {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the statement would read more than {MAX_SCAN_CELLS} cells of this table; \
                 filter on window_start and window_seconds"
            )));
        }
        let batch = match self.family {
            Family::Red => red_batch(&snap.red, snap.window_ns),
            Family::Edges => edges_batch(&snap.edges, snap.window_ns),
        }?;
        let plan =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(plan)
    }
}

/// The widest range of cells the filters allow.
fn range_of(filters: &[Expr], window_ns: i64) -> CellRange {
    let mut r = CellRange::default();
    for f in filters {
        narrow(&mut r, f, window_ns);
    }
    r
}

fn narrow(r: &mut CellRange, e: &Expr, window_ns: i64) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                narrow(r, left, window_ns);
                narrow(r, right, window_ns);
                return;
            }
            let (column, op, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) => (c.name.as_str(), *op, v),
                (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                    Some(op) => (c.name.as_str(), op, v),
                    None => return,
                },
                _ => return,
            };
            match column {
                "window_start" => {
                    let Some(t) = timestamp_ns(value) else { return };
                    match op {
                        Operator::Gt | Operator::GtEq => r.from_ns = r.from_ns.max(t),
                        Operator::Lt => r.to_ns = r.to_ns.min(t),
                        Operator::LtEq => r.to_ns = r.to_ns.min(t.saturating_add(1)),
                        Operator::Eq => {
                            r.from_ns = r.from_ns.max(t);
                            r.to_ns = r.to_ns.min(t.saturating_add(1));
                        }
                        _ => {}
                    }
                }
                "window_seconds" if op == Operator::Eq => {
                    if let Some(s) = integer(value) {
                        r.resolution = Some(resolution_of(s, window_ns));
                    }
                }
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            if let (Expr::Column(c), Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                (expr.as_ref(), low.as_ref(), high.as_ref())
                && c.name == "window_start"
                && let (Some(lo), Some(hi)) = (timestamp_ns(lo), timestamp_ns(hi))
            {
                r.from_ns = r.from_ns.max(lo);
                r.to_ns = r.to_ns.min(hi.saturating_add(1));
            }
        }
        _ => {}
    }
}

/// `window_seconds = s` as a resolution; a length no resolution has
/// matches nothing, which an impossible resolution expresses.
fn resolution_of(seconds: i64, window_ns: i64) -> Option<Resolution> {
    let ns = seconds.saturating_mul(1_000_000_000);
    if ns == window_ns {
        Some(Resolution::Base)
    } else if ns == 60_000_000_000 {
        Some(Resolution::Minute)
    } else if ns == 3_600_000_000_000 {
        Some(Resolution::Hour)
    } else {
        None
    }
}

fn timestamp_ns(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn integer(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::Int32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
        ScalarValue::UInt32(Some(x)) => Some(i64::from(*x)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(ns: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn filters_narrow_the_range_and_the_resolution() {
        let w = 10_000_000_000;
        let r = range_of(
            &[
                col("window_start").gt_eq(ts(100)),
                ts(500).gt(col("window_start")),
                col("window_seconds").eq(lit(60i64)),
            ],
            w,
        );
        assert_eq!((r.from_ns, r.to_ns), (100, 500));
        assert_eq!(r.resolution, Some(Some(Resolution::Minute)));
        let r = range_of(&[col("window_start").between(ts(7), ts(9))], w);
        assert_eq!((r.from_ns, r.to_ns), (7, 10));
        let r = range_of(&[col("window_seconds").eq(lit(10i64))], w);
        assert_eq!(r.resolution, Some(Some(Resolution::Base)));
        assert_eq!((r.from_ns, r.to_ns), (i64::MIN, i64::MAX));
        let r = range_of(&[col("window_seconds").eq(lit(7i64))], w);
        assert_eq!(r.resolution, Some(None), "no resolution is 7 s long");
        // Anything else leaves the range whole (DataFusion filters later).
        let r = range_of(
            &[col("window_start").gt(ts(5)).or(col("calls").gt(lit(1u64)))],
            w,
        );
        assert_eq!(
            (r.from_ns, r.to_ns, r.resolution),
            (i64::MIN, i64::MAX, None)
        );
    }
}
