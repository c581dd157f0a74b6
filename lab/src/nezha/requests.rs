//! Replaying a case's OTLP requests: their time range, moved in time (a
//! baseline placed just before the case), and cut into event-time chunks
//! as a live feed would deliver them.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

/// Requests cover this much event time each: a live feed's export
/// interval is seconds, and 10 s is one detection window.
pub(super) const CHUNK_NS: u64 = 10_000_000_000;

/// Earliest and latest span start.
pub(super) fn start_range(req: &ExportTraceServiceRequest) -> Option<(u64, u64)> {
    let starts = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano);
    let (mut lo, mut hi) = (u64::MAX, 0);
    for t in starts {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    (lo <= hi).then_some((lo, hi))
}

/// Moves every time in `req` by `delta_ns`.
pub(super) fn shift(req: &mut ExportTraceServiceRequest, delta_ns: i128) {
    let moved = |t: u64| u64::try_from(i128::from(t) + delta_ns).unwrap_or(0);
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span.start_time_unix_nano = moved(span.start_time_unix_nano);
        span.end_time_unix_nano = moved(span.end_time_unix_nano);
        for e in &mut span.events {
            e.time_unix_nano = moved(e.time_unix_nano);
        }
    }
}

/// `req` split into requests of `CHUNK_NS` of span starts each, in time
/// order, resources and scopes kept.
pub(super) fn chunks(req: &ExportTraceServiceRequest) -> Vec<ExportTraceServiceRequest> {
    use std::collections::BTreeMap;
    let mut by_chunk: BTreeMap<u64, ExportTraceServiceRequest> = BTreeMap::new();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            // This scope's spans by chunk; each becomes one resource and
            // scope in that chunk's request.
            let mut parts: BTreeMap<u64, Vec<_>> = BTreeMap::new();
            for span in &ss.spans {
                parts
                    .entry(span.start_time_unix_nano / CHUNK_NS)
                    .or_default()
                    .push(span.clone());
            }
            for (chunk, spans) in parts {
                by_chunk
                    .entry(chunk)
                    .or_default()
                    .resource_spans
                    .push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans,
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    });
            }
        }
    }
    by_chunk.into_values().collect()
}
