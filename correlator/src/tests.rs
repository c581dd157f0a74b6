use std::collections::BTreeSet;
use std::sync::Arc;

use causeway_model::{IncidentState, Severity};

use super::*;
use crate::spans::SpanRec;

/// One `pay` span per second: `version` on `instance`, failing with a
/// new exception when `fail`.
fn spans(
    strings: &mut Interner,
    from: i64,
    n: i64,
    version: &str,
    instance: &str,
    fail: bool,
) -> SpanSet {
    let events = fail.then(|| strings.intern("exception java.lang.NullPointerException"));
    let mut out = Vec::new();
    for i in 0..n {
        let start = from + i * 1_000_000_000;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&start.to_be_bytes());
        out.push(SpanRec {
            trace,
            span: start.to_be_bytes(),
            parent: None,
            service: strings.intern("pay"),
            version: Some(strings.intern(version)),
            instance: Some(strings.intern(instance)),
            operation: strings.intern("POST /pay"),
            start_ns: start,
            end_ns: start + 5_000_000,
            error: fail,
            events,
            self_ns: 5_000_000,
            child_error: false,
            remote_child: None,
            error_text: None,
        });
    }
    SpanSet { spans: out }
}

/// The report of `incident` with no signals, feedback or history, at
/// its onset.
fn analyze_one(
    incident: &Incident,
    anomalies: &[Anomaly],
    window: SpanSet,
    reference: SpanSet,
    strings: Interner,
) -> RcaReport {
    let tenant = TenantId::new("t").expect("tenant");
    analyze(
        Input {
            tenant: &tenant,
            incident,
            anomalies,
            window,
            reference,
            strings,
            signals: &[],
            now_ns: incident.onset_ns,
            feedback: &[],
            history: &history::History::default(),
        },
        &CorrelatorConfig::default(),
    )
}

/// One span a second from 0 to `until_s`, as the span store holds
/// them (the columns the correlator reads, the rest null or zero).
struct EverySecond {
    until_s: i64,
}

impl SpanSource for EverySecond {
    fn scan(
        &self,
        from_ns: i64,
        to_ns: i64,
        _columns: &[&str],
    ) -> Result<Vec<arrow_array::RecordBatch>> {
        use arrow_array::builder::{FixedSizeBinaryBuilder, StringDictionaryBuilder};
        use arrow_array::types::UInt32Type;
        use arrow_array::{ArrayRef, Int8Array, Int64Array, TimestampNanosecondArray};
        use causeway_model::schema::col;
        let starts: Vec<i64> = (0..self.until_s)
            .map(|i| i * 1_000_000_000)
            .filter(|t| (from_ns..to_ns).contains(t))
            .collect();
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let schema = causeway_model::schema::span_schema();
        let n = starts.len();
        let dict = |v: &str| -> ArrayRef {
            let mut b = StringDictionaryBuilder::<UInt32Type>::new();
            for _ in 0..n {
                b.append_value(v);
            }
            Arc::new(b.finish())
        };
        let ids = |width: i32, salt: u8| -> ArrayRef {
            let mut b = FixedSizeBinaryBuilder::new(width);
            for t in &starts {
                let mut id = vec![salt; width as usize];
                id[..8].copy_from_slice(&t.to_be_bytes());
                let _ = b.append_value(&id);
            }
            Arc::new(b.finish())
        };
        let ts = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                col::TENANT => dict("t"),
                col::TRACE_ID => ids(16, 1),
                col::SPAN_ID => ids(8, 2),
                col::SERVICE_NAME => dict("pay"),
                col::SPAN_NAME => dict("POST /pay"),
                col::SPAN_KIND => Arc::new(Int8Array::from(vec![2; n])),
                col::START_TIME => ts(starts.clone()),
                col::END_TIME => ts(starts.iter().map(|t| t + 5_000_000).collect()),
                col::DURATION_NS => Arc::new(Int64Array::from(vec![5_000_000; n])),
                col::STATUS_CODE => Arc::new(Int8Array::from(vec![0; n])),
                _ => arrow_array::new_null_array(f.data_type(), n),
            })
            .collect();
        arrow_array::RecordBatch::try_new(schema, columns)
            .map_err(|e| Error::Data(e.to_string()))
            .map(|b| vec![b])
    }
}

#[test]
fn the_reference_is_the_most_recent_coverage_asked_for_not_the_whole_hour() {
    let source = EverySecond { until_s: 7200 };
    let onset = 7000 * 1_000_000_000;
    let incident = Incident {
        id: 1,
        state: IncidentState::Open,
        onset_ns: onset,
        updated_ns: onset,
        last_onset_ns: Some(onset),
        resolved_ns: None,
        severity: Severity::Major,
        services: BTreeSet::from(["pay".to_owned()]),
        anomalies: Vec::new(),
    };
    let config = CorrelatorConfig::default();
    let mut strings = Interner::default();
    let (window, reference) =
        gather(&source, &incident, &[], &config, &mut strings).expect("gather");
    assert_eq!(window.spans.len(), 180, "the shortest window: 3 minutes");
    // 30 minutes of 10-s buckets, ending at onset - guard (30 s).
    assert_eq!(reference.covered_seconds(), 1800);
    assert_eq!(reference.spans.len(), 1800);
    let oldest = reference.spans.iter().map(|s| s.start_ns).min();
    assert_eq!(oldest, Some(onset - 30_000_000_000 - 1800 * 1_000_000_000));
}

#[test]
fn feedback_overrules_the_evidences_ranking_latest_word_first() {
    let c = |service: &str, score: f64| localize::Candidate {
        service: service.into(),
        score,
        operation: None,
        evidence: Vec::new(),
    };
    let candidates = [c("a", 5.0), c("b", 3.0), c("c", 2.0), c("d", 0.0)];
    let f = |service: &str, confirmed: bool| causeway_model::rca::Feedback {
        rank: 1,
        service: service.into(),
        confirmed,
        by: "sre".into(),
        comment: None,
        at_ns: 0,
    };
    let names = |v: Vec<&localize::Candidate>| -> Vec<String> {
        v.iter().map(|c| c.service.clone()).collect()
    };
    assert_eq!(names(with_feedback(&candidates, &[], 5)), ["a", "b", "c"]);
    // Rejected: after the others with evidence.
    assert_eq!(
        names(with_feedback(&candidates, &[f("a", false)], 5)),
        ["b", "c", "a"]
    );
    // Confirmed: first, even without evidence of its own.
    assert_eq!(
        names(with_feedback(&candidates, &[f("d", true)], 5)),
        ["d", "a", "b", "c"]
    );
    // The latest word counts; the cap still holds.
    assert_eq!(
        names(with_feedback(
            &candidates,
            &[f("c", false), f("c", true)],
            2
        )),
        ["c", "a"]
    );
}

#[test]
fn a_new_version_on_new_instances_is_a_deploy_seen_in_traces() {
    let mut strings = Interner::default();
    let reference = spans(&mut strings, 0, 600, "1.0.0", "pay-7f9c", false);
    let onset = 700_000_000_000;
    let window = spans(&mut strings, onset, 120, "1.1.0", "pay-b21d", true);
    let incident = Incident {
        id: 1,
        state: IncidentState::Open,
        onset_ns: onset,
        updated_ns: onset + 60_000_000_000,
        last_onset_ns: Some(onset + 60_000_000_000),
        resolved_ns: None,
        severity: Severity::Major,
        services: BTreeSet::from(["pay".to_owned()]),
        anomalies: Vec::new(),
    };
    let report = analyze_one(&incident, &[], window, reference, strings);
    let top = &report.hypotheses[0];
    assert_eq!(top.service, "pay");
    assert_eq!(top.cause, CauseKind::Deploy);
    assert!(
        matches!(&top.change, Some(Evidence::VersionChange { version, previous, .. }) if version == "1.1.0" && previous == &["1.0.0".to_owned()]),
        "{:?}",
        top.change
    );
    assert!(
        top.evidence.iter().any(|e| matches!(e, Evidence::NewInstance { instance, previous: 1, .. } if instance == "pay-b21d")),
        "{:?}",
        top.evidence
    );
    assert!(report.summary.contains("pay"), "{}", report.summary);
    assert!(report::markdown(&report).contains("pay-b21d"));
}

/// A fault that changed only what a service returned: nothing in the
/// spans moved, but detection saw the calls into `pay` change. The
/// RCA still ranks the services the anomalies name, the callee of the
/// anomalous edge first, with the anomalies as evidence.
#[test]
fn an_incident_without_localization_evidence_still_gets_a_ranked_list() {
    let mut strings = Interner::default();
    let reference = spans(&mut strings, 0, 600, "1.0.0", "pay-7f9c", false);
    let onset = 700_000_000_000;
    let window = spans(&mut strings, onset, 120, "1.0.0", "pay-7f9c", false);
    let incident = Incident {
        id: 1,
        state: IncidentState::Open,
        onset_ns: onset,
        updated_ns: onset + 60_000_000_000,
        last_onset_ns: Some(onset),
        resolved_ns: None,
        severity: Severity::Minor,
        services: BTreeSet::from(["pay".to_owned(), "api".to_owned(), "cart".to_owned()]),
        anomalies: vec![7],
    };
    let anomaly = Anomaly {
        id: 7,
        subject: causeway_model::Subject::Edge {
            client: "api".into(),
            server: "pay".into(),
            connection: String::new(),
        },
        metric: "request_rate",
        onset_ns: onset,
        detected_ns: onset,
        last_ns: onset,
        resolved_ns: None,
        observed: 2.0,
        expected: 5.0,
        score: 4.0,
        severity: Severity::Minor,
        example_trace_ids: Vec::new(),
        incident: 1,
        detail: None,
    };
    let report = analyze_one(
        &incident,
        std::slice::from_ref(&anomaly),
        window,
        reference,
        strings,
    );
    let ranked: Vec<&str> = report
        .hypotheses
        .iter()
        .map(|h| h.service.as_str())
        .collect();
    assert_eq!(ranked, ["pay", "api", "cart"]);
    assert!(
        matches!(
            &report.hypotheses[0].evidence[..],
            [Evidence::Anomaly { id: 7, .. }]
        ),
        "{:?}",
        report.hypotheses[0].evidence
    );
    assert!(report.hypotheses[0].score < 1.0);
}
