//! RED series: per service × operation × span kind × status code, per
//! window, calls, errors and a duration histogram.
//!
//! Keys follow the OpenTelemetry Collector's `spanmetrics` connector
//! (`service.name`, `span.name`, `span.kind`, `status.code`), so the series
//! map one-to-one onto its metric names.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{Array, RecordBatch};
use causeway_model::schema::{col, status};

use crate::error::Error;
use crate::series::{Observation, SeriesKey, SeriesSet};

/// The service name of the overflow series.
pub const OVERFLOW: &str = "otel.metric.overflow";

/// One RED series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedKey {
    /// `service.name`.
    pub service: Arc<str>,
    /// Span name.
    pub operation: Arc<str>,
    /// OTLP span kind.
    pub kind: i8,
    /// OTLP status code.
    pub status: i8,
}

impl SeriesKey for RedKey {
    fn overflow() -> Self {
        Self {
            service: Arc::from(OVERFLOW),
            operation: Arc::from(""),
            kind: 0,
            status: 0,
        }
    }

    fn is_overflow(&self) -> bool {
        self.operation.is_empty() && &*self.service == OVERFLOW
    }

    fn parts(&self) -> (&str, &str, i8, i8) {
        (&self.service, &self.operation, self.kind, self.status)
    }

    fn from_parts(a: &str, b: &str, c: i8, d: i8) -> Option<Self> {
        Some(Self {
            service: Arc::from(a),
            operation: Arc::from(b),
            kind: c,
            status: d,
        })
    }
}

/// Span kind as the Collector's metrics label it.
pub fn kind_label(kind: i8) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

/// Status code as the Collector's metrics label it.
pub fn status_label(code: i8) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

/// A dictionary-encoded string column, resolved once per batch.
pub(crate) struct DictColumn<'a> {
    keys: &'a arrow_array::PrimitiveArray<UInt32Type>,
    values: &'a arrow_array::StringArray,
}

impl<'a> DictColumn<'a> {
    /// The column `name` of `batch`, which must be `Dictionary(UInt32, Utf8)`.
    pub(crate) fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, Error> {
        let dict = batch
            .column_by_name(name)
            .and_then(|a| a.as_dictionary_opt::<UInt32Type>())
            .ok_or_else(|| Error::Schema(format!("span batch has no dictionary column {name}")))?;
        let values = dict
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::Schema(format!("column {name} is not a string dictionary")))?;
        Ok(Self {
            keys: dict.keys(),
            values,
        })
    }

    /// (dictionary key, value) at `row`, None when null.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<(u32, &'a str)> {
        if self.keys.is_null(row) {
            return None;
        }
        let key = self.keys.value(row);
        self.values
            .is_valid(key as usize)
            .then(|| (key, self.values.value(key as usize)))
    }
}

/// Dictionary keys of service and name, kind, status: a RED key within a batch.
type GroupKey = (u32, u32, i8, i8);

/// Records a span batch into a tenant's RED series.
pub fn record_batch(set: &mut SeriesSet<RedKey>, batch: &RecordBatch) -> Result<(), Error> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Schema(format!("span batch has no column {name}")))
    };
    let kind = column(col::SPAN_KIND)?.as_primitive::<Int8Type>().clone();
    let code = column(col::STATUS_CODE)?.as_primitive::<Int8Type>().clone();
    let start = column(col::START_TIME)?
        .as_primitive::<TimestampNanosecondType>()
        .clone();
    let duration = column(col::DURATION_NS)?
        .as_primitive::<Int64Type>()
        .clone();
    // Group rows by (service key, name key, kind, status) using dictionary
    // keys, so strings are hashed once per group instead of once per span.
    let services = DictColumn::of(batch, col::SERVICE_NAME)?;
    let names = DictColumn::of(batch, col::SPAN_NAME)?;
    let mut groups: HashMap<GroupKey, (RedKey, Vec<Observation>), foldhash::fast::RandomState> =
        HashMap::default();
    for row in 0..batch.num_rows() {
        let (sk, service) = services.get(row).unwrap_or((u32::MAX, "unknown_service"));
        let (nk, name) = names.get(row).unwrap_or((u32::MAX, ""));
        let (k, s) = (kind.value(row), code.value(row));
        let obs = (
            start.value(row),
            u64::try_from(duration.value(row) / 1000).unwrap_or(0),
            s == status::ERROR,
        );
        groups
            .entry((sk, nk, k, s))
            .or_insert_with(|| {
                let key = RedKey {
                    service: Arc::from(service),
                    operation: Arc::from(name),
                    kind: k,
                    status: s,
                };
                (key, Vec::new())
            })
            .1
            .push(obs);
    }
    for (_, (key, observations)) in groups {
        let key = set.admit(key);
        set.record_many(&key, observations);
    }
    Ok(())
}

/// Records span self times (from the graph's pairing store) into a
/// tenant's self-time series, which are keyed like its RED series.
pub fn record_self_times(set: &mut SeriesSet<RedKey>, times: Vec<crate::graph::SelfTime>) {
    if times.is_empty() {
        return;
    }
    let mut groups: HashMap<RedKey, Vec<Observation>, foldhash::fast::RandomState> =
        HashMap::default();
    for (key, start, self_us) in times {
        groups.entry(key).or_default().push((start, self_us, false));
    }
    for (key, observations) in groups {
        let key = set.admit(key);
        set.record_many(&key, observations);
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_benches::{Workload, WorkloadConfig};
    use causeway_model::TenantId;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;

    use super::*;
    use crate::kernels::otlp_to_arrow::otlp_to_arrow;
    use crate::series::SeriesSettings;

    const S: i64 = 1_000_000_000;

    type Truth = BTreeMap<(String, String, i8), (u64, u64, Vec<u64>)>;

    fn truth(reqs: &[ExportTraceServiceRequest]) -> Truth {
        let mut out: Truth = BTreeMap::new();
        for req in reqs {
            for rs in &req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                    let e = out
                        .entry((service.clone(), span.name.clone(), span.kind as i8))
                        .or_default();
                    e.0 += 1;
                    e.1 += u64::from(span.status.as_ref().is_some_and(|s| s.code == 2));
                    e.2.push((span.end_time_unix_nano - span.start_time_unix_nano) / 1000);
                }
            }
        }
        out
    }

    fn exact(sorted: &[u64], q: f64) -> u64 {
        sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1]
    }

    #[test]
    fn counts_are_exact_and_quantiles_within_one_percent_with_late_batches() {
        let mut w = Workload::new(WorkloadConfig {
            error_rate: 0.05,
            spacing_ns: 50_000_000,
            ..WorkloadConfig::default()
        });
        let mut reqs: Vec<ExportTraceServiceRequest> = (0..12).map(|_| w.batch(500)).collect();
        // A collector retrying after an outage: the oldest batches arrive last.
        reqs.rotate_left(4);
        let mut set = SeriesSet::new(SeriesSettings {
            window_ns: 10 * S,
            lateness_ns: 2 * S,
            max_keys: 10_000,
            retention_ns: [86_400 * S; 3],
        });
        for r in &reqs {
            let batch =
                otlp_to_arrow(&TenantId::default_tenant(), &r.encode_to_vec()).expect("convert");
            record_batch(&mut set, &batch).expect("record");
            set.advance();
        }
        let got = set.query(0, i64::MAX / 2, |_| true);
        let mut merged: BTreeMap<(String, String, i8), (u64, u64, Vec<crate::series::CellStats>)> =
            BTreeMap::new();
        for (k, s) in &got {
            let e = merged
                .entry((k.service.to_string(), k.operation.to_string(), k.kind))
                .or_default();
            e.0 += s.calls;
            e.1 += s.errors;
            e.2.push(*s);
        }
        let want = truth(&reqs);
        assert_eq!(merged.len(), want.len());
        for (key, (calls, errors, mut durations)) in want {
            let (gc, ge, _) = &merged[&key];
            assert_eq!((*gc, *ge), (calls, errors), "{key:?}");
            // Quantiles are checked where one status holds all spans.
            if errors == 0 {
                durations.sort_unstable();
                let s = got
                    .iter()
                    .find(|(k, _)| (k.service.to_string(), k.operation.to_string(), k.kind) == key)
                    .map(|(_, s)| *s)
                    .expect("series");
                for (q, v) in [(0.5, s.p50_us), (0.9, s.p90_us), (0.99, s.p99_us)] {
                    let e = exact(&durations, q);
                    assert!(
                        (v as f64 - e as f64).abs() <= e as f64 * 0.01 + 1.0,
                        "{key:?} q{q}: {v} vs {e}"
                    );
                }
            }
        }
    }
}
