use super::*;

#[test]
fn batches_hold_whole_traces_with_valid_ids() {
    let mut w = Workload::new(WorkloadConfig::default());
    let req = w.batch(1000);
    let spans: Vec<&Span> = req
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
        .collect();
    assert!(spans.len() >= 1000 && spans.len() < 1100, "{}", spans.len());
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8)
    );
    // Every parent is in the batch: traces are whole.
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span_id.as_slice()).collect();
    assert!(
        spans
            .iter()
            .all(|s| s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_slice()))
    );
    assert!(req.resource_spans.len() >= 8);
}
