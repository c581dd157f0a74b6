#![allow(clippy::type_complexity, clippy::collapsible_if)]

use std::collections::BTreeMap;

use causeway_benches::{Workload, WorkloadConfig};
use causeway_model::TenantId;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::*;
use crate::kernels::otlp_to_arrow::otlp_to_arrow;
use crate::series::SeriesSettings;

const S: i64 = 1_000_000_000;

fn edges_set() -> SeriesSet<EdgeKey> {
    SeriesSet::new(SeriesSettings {
        window_ns: 10 * S,
        lateness_ns: 30 * S,
        max_keys: 1000,
        retention_ns: [100_000 * S; 3],
    })
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Brute force over prost structs: (client, server, type) → calls.
fn truth(
    req: &ExportTraceServiceRequest,
    removed: &[&str],
) -> BTreeMap<(String, String, &'static str), u64> {
    let mut by_id: std::collections::HashMap<(Vec<u8>, Vec<u8>), (String, &Span)> =
        Default::default();
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
            by_id.insert(
                (span.trace_id.clone(), span.span_id.clone()),
                (service.clone(), span),
            );
        }
    }
    let mut out = BTreeMap::new();
    for (service, span) in by_id.values() {
        if let Some(db) = attr(span, "db.system") {
            *out.entry((service.clone(), db.to_owned(), "database"))
                .or_insert(0) += 1;
        }
        if span.parent_span_id.is_empty() {
            continue;
        }
        if let Some((pservice, parent)) =
            by_id.get(&(span.trace_id.clone(), span.parent_span_id.clone()))
        {
            if pservice != service {
                let t = if parent.kind == 4 && span.kind == 5 {
                    "messaging_system"
                } else {
                    ""
                };
                *out.entry((pservice.clone(), service.clone(), t))
                    .or_insert(0) += 1;
            }
        }
    }
    // Client spans to services that were not instrumented: virtual nodes.
    for (service, span) in by_id.values() {
        if span.kind == 3 && attr(span, "db.system").is_none() {
            let has_child = by_id
                .values()
                .any(|(_, c)| c.trace_id == span.trace_id && c.parent_span_id == span.span_id);
            if !has_child {
                if let Some(addr) = attr(span, "server.address") {
                    let target = removed.iter().any(|r| addr.starts_with(r));
                    assert!(target, "only removed services lack children");
                    *out.entry((service.clone(), addr.to_owned(), "virtual_node"))
                        .or_insert(0) += 1;
                }
            }
        }
    }
    out
}

fn run(
    req: &ExportTraceServiceRequest,
    batches: usize,
) -> BTreeMap<(String, String, &'static str), u64> {
    let mut edges = edges_set();
    let mut state = GraphState::new(GraphSettings {
        ttl_ns: 60 * S,
        max_pending: 1_000_000,
    });
    // Split into several requests, in reverse order, so children often
    // arrive before their parents.
    let chunk = req.resource_spans.len().div_ceil(batches);
    for part in req.resource_spans.chunks(chunk).rev() {
        let r = ExportTraceServiceRequest {
            resource_spans: part.to_vec(),
        };
        let batch =
            otlp_to_arrow(&TenantId::default_tenant(), &r.encode_to_vec()).expect("convert");
        state.record_batch(&mut edges, &batch).expect("record");
    }
    state.flush(&mut edges);
    edges
        .query(i64::MIN / 2, i64::MAX / 2, |_| true)
        .into_iter()
        .map(|(k, s)| {
            (
                (
                    k.client.to_string(),
                    k.server.to_string(),
                    k.connection.as_str(),
                ),
                s.calls,
            )
        })
        .collect()
}

#[test]
fn the_generated_topology_is_recovered_edge_for_edge_with_span_kinds() {
    let req = Workload::new(WorkloadConfig::default()).batch(3000);
    let want = truth(&req, &[]);
    assert!(want.keys().any(|k| k.2 == "database"), "{want:?}");
    assert!(want.keys().any(|k| k.2 == "messaging_system"), "{want:?}");
    assert!(want.len() >= 12, "{want:?}");
    assert_eq!(run(&req, 4), want);
}

#[test]
fn without_span_kinds_edges_come_from_parent_child_pairs() {
    let mut req = Workload::new(WorkloadConfig {
        seed: 9,
        ..WorkloadConfig::default()
    })
    .batch(2000);
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
    {
        span.kind = 0;
    }
    let want = truth(&req, &[]);
    assert!(
        !want.keys().any(|k| k.2 == "messaging_system"),
        "no kinds, no messaging pairs"
    );
    assert_eq!(run(&req, 3), want);
}

#[test]
fn an_uninstrumented_peer_becomes_a_virtual_node() {
    let mut req = Workload::new(WorkloadConfig {
        seed: 3,
        ..WorkloadConfig::default()
    })
    .batch(2000);
    req.resource_spans.retain(|rs| {
        !rs.resource.as_ref().is_some_and(|r| r.attributes.iter().any(|kv| kv.key == "service.name" && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(Value::StringValue(s)) if s == "shipping")))
    });
    let want = truth(&req, &["shipping"]);
    assert!(
        want.keys()
            .any(|k| k.1 == "shipping.shop.svc" && k.2 == "virtual_node"),
        "{want:?}"
    );
    assert_eq!(run(&req, 2), want);
}

#[test]
fn the_store_is_bounded_and_counts_what_it_drops() {
    let req = Workload::new(WorkloadConfig::default()).batch(2000);
    let mut edges = edges_set();
    let mut state = GraphState::new(GraphSettings {
        ttl_ns: 60 * S,
        max_pending: 100,
    });
    for part in req.resource_spans.chunks(1).rev() {
        let r = ExportTraceServiceRequest {
            resource_spans: part.to_vec(),
        };
        let batch =
            otlp_to_arrow(&TenantId::default_tenant(), &r.encode_to_vec()).expect("convert");
        state.record_batch(&mut edges, &batch).expect("record");
        assert!(state.pending() <= 100);
    }
    assert!(state.evicted > 0);
    assert!(state.unpaired > 0);
}

#[test]
fn repeated_spans_and_a_stalled_clock_do_not_grow_the_store() {
    let req = Workload::new(WorkloadConfig::default()).batch(500);
    let batch = otlp_to_arrow(&TenantId::default_tenant(), &req.encode_to_vec()).expect("convert");
    let mut edges = edges_set();
    let mut state = GraphState::new(GraphSettings {
        ttl_ns: 60 * S,
        max_pending: 1000,
    });
    for _ in 0..50 {
        state.record_batch(&mut edges, &batch).expect("record");
        assert!(state.order.len() <= 1000);
        assert!(state.pending() <= 1000);
    }
}

#[test]
fn self_time_subtracts_the_union_of_children_clipped_to_the_parent() {
    // No children: all of it.
    assert_eq!(self_time_ns(100, 200, &mut []), 100);
    // Two parallel children overlapping each other count once.
    assert_eq!(self_time_ns(0, 100, &mut [(40, 80), (10, 50)]), 30);
    // Disjoint children, given out of order.
    assert_eq!(self_time_ns(0, 100, &mut [(60, 70), (10, 20)]), 80);
    // An asynchronous child outliving its parent, one starting before it
    // (clock skew) and an empty one.
    assert_eq!(
        self_time_ns(0, 100, &mut [(90, 500), (-50, 5), (30, 30)]),
        85
    );
    // Children covering everything leave nothing, never less.
    assert_eq!(self_time_ns(0, 100, &mut [(0, 60), (50, 100), (0, 100)]), 0);
}

/// Brute force over prost structs: (service, span name, kind) → every
/// span's self time in µs, sorted.
fn self_truth(req: &ExportTraceServiceRequest) -> BTreeMap<(String, String, i8), Vec<u64>> {
    let mut children: std::collections::HashMap<(Vec<u8>, Vec<u8>), Vec<(i64, i64)>> =
        std::collections::HashMap::new();
    for span in req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
    {
        if !span.parent_span_id.is_empty() {
            children
                .entry((span.trace_id.clone(), span.parent_span_id.clone()))
                .or_default()
                .push((
                    span.start_time_unix_nano as i64,
                    span.end_time_unix_nano as i64,
                ));
        }
    }
    let mut out: BTreeMap<(String, String, i8), Vec<u64>> = BTreeMap::new();
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
            let (start, end) = (
                span.start_time_unix_nano as i64,
                span.end_time_unix_nano as i64,
            );
            // The union of the children's intervals, written differently
            // from `self_time_ns` (a cursor instead of runs).
            let mut kids = children
                .get(&(span.trace_id.clone(), span.span_id.clone()))
                .cloned()
                .unwrap_or_default();
            kids.sort();
            let mut covered = 0;
            let mut cursor = start;
            for (s, e) in kids {
                let (s, e) = (s.max(cursor), e.min(end));
                if e > s {
                    covered += e - s;
                    cursor = e;
                }
            }
            out.entry((service.clone(), span.name.clone(), span.kind as i8))
                .or_default()
                .push(((end - start - covered).max(0) / 1000) as u64);
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

#[test]
fn every_span_gets_its_exact_self_time_whichever_arrives_first() {
    let mut w = Workload::new(WorkloadConfig::default());
    let req = w.batch(3_000);
    let want = self_truth(&req);
    let mut edges = edges_set();
    let mut state = GraphState::new(GraphSettings {
        ttl_ns: 60 * S,
        max_pending: 1_000_000,
    });
    let mut got: BTreeMap<(String, String, i8), Vec<u64>> = BTreeMap::new();
    let mut collect = |state: &mut GraphState| {
        for (key, _, us) in state.take_self_times() {
            got.entry((key.service.to_string(), key.operation.to_string(), key.kind))
                .or_default()
                .push(us);
        }
    };
    // Children often before their parents, as in `run`.
    let chunk = req.resource_spans.len().div_ceil(7);
    for part in req.resource_spans.chunks(chunk).rev() {
        let r = ExportTraceServiceRequest {
            resource_spans: part.to_vec(),
        };
        let batch =
            otlp_to_arrow(&TenantId::default_tenant(), &r.encode_to_vec()).expect("convert");
        state.record_batch(&mut edges, &batch).expect("record");
        collect(&mut state);
    }
    state.flush(&mut edges);
    collect(&mut state);
    for v in got.values_mut() {
        v.sort_unstable();
    }
    assert!(want.values().any(|v| v.iter().any(|&us| us > 0)));
    // Some parents really do have children.
    let total: u64 = want.values().flatten().sum();
    let durations: u64 = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.end_time_unix_nano - s.start_time_unix_nano) / 1000)
        .sum();
    assert!(
        total < durations,
        "self time {total} vs duration {durations}"
    );
    assert_eq!(got, want);
}
