use std::collections::HashSet;

use super::*;
use crate::series::CellStats;

const W: i64 = 10_000_000_000;

/// `spans` of `service` as one converted batch.
fn batch_of_spans(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> arrow_array::RecordBatch {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    crate::kernels::otlp_to_arrow::otlp_to_arrow(
        &causeway_model::TenantId::default_tenant(),
        &req.encode_to_vec(),
    )
    .expect("valid")
}

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// A window of `calls` spans around `p50_ms` with `noise` relative jitter
/// and `errors` errors.
fn window(rng: &mut Rng, calls: u64, p50_ms: f64, noise: f64, errors: u64) -> CellStats {
    let p50 = p50_ms * 1000.0 * (1.0 + noise * rng.normal()).max(0.1);
    CellStats {
        calls,
        errors,
        p50_us: p50 as u64,
        p90_us: (p50 * 1.8) as u64,
        p99_us: (p50 * 3.0 * (1.0 + noise * rng.normal()).max(0.1)) as u64,
        max_us: (p50 * 5.0) as u64,
    }
}

fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.next() < p).count() as u64
}

#[test]
fn steady_noisy_traffic_raises_nothing() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(7);
    for i in 0..2000 {
        let errors = binomial(&mut rng, 80, 0.01);
        let events = d.observe(&s, i * W, window(&mut rng, 80, 5.0, 0.08, errors));
        assert!(events.is_empty(), "window {i}: {events:?}");
    }
}

#[test]
fn a_latency_shift_opens_with_its_onset_and_resolves_after_quiet() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(11);
    for i in 0..100 {
        assert!(
            d.observe(&s, i * W, window(&mut rng, 50, 5.0, 0.05, 0))
                .is_empty()
        );
    }
    // The fault starts mid-window 100: that window is partly slow (z between
    // hold and open), the next ones fully.
    let partial = CellStats {
        p50_us: 6_800,
        p90_us: 14_000,
        p99_us: 20_000,
        ..window(&mut rng, 50, 5.0, 0.0, 0)
    };
    let e = d.observe(&s, 100 * W, partial);
    assert!(
        e.iter()
            .all(|e| !matches!(e, Event::Opened(f) if f.metric == Metric::LatencyP50)),
        "{e:?}"
    );
    let e = d.observe(&s, 101 * W, window(&mut rng, 50, 20.0, 0.05, 0));
    let opened = e
        .iter()
        .find_map(|e| match e {
            Event::Opened(f) if f.metric == Metric::LatencyP50 => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("p50 shift not detected: {e:?}"));
    assert_eq!(opened.onset_ns, 100 * W, "onset is the change point");
    assert_eq!(opened.detected_ns, 101 * W);
    assert!((opened.expected - 5000.0).abs() < 500.0, "{opened:?}");
    assert!(opened.observed > 15_000.0);
    for i in 102..130 {
        let e = d.observe(&s, i * W, window(&mut rng, 50, 20.0, 0.05, 0));
        assert!(
            e.iter().all(|e| matches!(e, Event::Ongoing(_))),
            "a long fault stays one anomaly: {e:?}"
        );
    }
    // Recovery: quiet windows close it, and the baseline did not learn the
    // fault (the next shift is caught as fast).
    let mut resolved = None;
    for i in 130..140 {
        for e in d.observe(&s, i * W, window(&mut rng, 50, 5.0, 0.05, 0)) {
            if let Event::Resolved {
                metric: Metric::LatencyP50,
                since_ns,
            } = e
            {
                resolved = Some(since_ns);
            }
        }
    }
    assert_eq!(resolved, Some(130 * W));
    assert!(!d.is_open());
    let e = d.observe(&s, 140 * W, window(&mut rng, 50, 20.0, 0.05, 0));
    assert!(
        e.iter()
            .any(|e| matches!(e, Event::Opened(f) if f.metric == Metric::LatencyP50)),
        "{e:?}"
    );
}

#[test]
fn an_error_burst_opens_an_error_anomaly() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(3);
    for i in 0..60 {
        let errors = binomial(&mut rng, 100, 0.01);
        assert!(
            d.observe(&s, i * W, window(&mut rng, 100, 5.0, 0.05, errors))
                .is_empty()
        );
    }
    let e = d.observe(&s, 60 * W, window(&mut rng, 100, 5.0, 0.05, 25));
    let f = e
        .iter()
        .find_map(|e| match e {
            Event::Opened(f) if f.metric == Metric::ErrorRatio => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(f.onset_ns, 60 * W);
    assert!((f.observed - 0.25).abs() < 1e-9);
}

#[test]
fn thin_traffic_and_warmup_do_not_page() {
    let s = DetectSettings::default();
    let mut d = SeriesDetector::new(&s);
    let mut rng = Rng(5);
    // Three calls a window, wildly varying latency and the odd error.
    for i in 0..500 {
        let ms = if i % 7 == 0 { 80.0 } else { 4.0 };
        let errors = u64::from(i % 50 == 0);
        let e = d.observe(&s, i * W, window(&mut rng, 3, ms, 0.3, errors));
        assert!(e.is_empty(), "window {i}: {e:?}");
    }
    // A busy series whose first windows differ wildly: nothing during warm-up.
    let mut d = SeriesDetector::new(&s);
    for i in 0..s.warmup as i64 {
        let ms = if i % 2 == 0 { 2.0 } else { 40.0 };
        assert!(
            d.observe(&s, i * W, window(&mut rng, 100, ms, 0.0, 0))
                .is_empty()
        );
    }
}

#[test]
fn the_baseline_is_median_and_mad_of_the_last_values() {
    let mut b = Baseline::new(5);
    for v in [1.0, 2.0, 3.0, 4.0, 100.0, 5.0] {
        b.push(v);
    }
    // Holds 2, 3, 4, 100, 5.
    assert_eq!(b.len(), 5);
    assert_eq!(b.median(), 4.0);
    assert_eq!(b.mad(), 1.0);
    b.push(f64::NAN);
    assert_eq!(b.len(), 5, "non-finite values are ignored");
}

mod engine {
    use std::collections::HashSet;
    use std::sync::Arc;

    use causeway_model::{IncidentState, Subject};
    use hdrhistogram::Histogram;

    use super::super::{IncidentSettings, TenantDetection};
    use super::*;
    use crate::graph::{ConnectionType, EdgeKey};
    use crate::red::RedKey;
    use crate::series::Sealed;

    fn sealed(
        service: &str,
        op: &str,
        status: i8,
        start: i64,
        calls: u64,
        ms: u64,
    ) -> Sealed<RedKey> {
        let mut hist = Histogram::<u64>::new(2).expect("histogram");
        hist.auto(true);
        for i in 0..calls {
            // A little spread around `ms`.
            hist.record(ms * 1000 + (i % 7) * 50).expect("record");
        }
        let errors = if status == 2 { calls } else { 0 };
        Sealed {
            key: RedKey {
                service: Arc::from(service),
                operation: Arc::from(op),
                kind: 2,
                status,
            },
            start_ns: start,
            len_ns: W,
            stats: CellStats {
                calls,
                errors,
                p50_us: hist.value_at_quantile(0.5),
                p90_us: hist.value_at_quantile(0.9),
                p99_us: hist.value_at_quantile(0.99),
                max_us: hist.max(),
            },
            hist,
        }
    }

    fn links(pairs: &[(&str, &str)]) -> HashSet<(Arc<str>, Arc<str>)> {
        pairs
            .iter()
            .map(|(a, b)| (Arc::from(*a), Arc::from(*b)))
            .collect()
    }

    /// One window of checkout's 50 calls at `ms`, then event time past it.
    fn feed_checkout(
        d: &mut TenantDetection,
        graph: &HashSet<(Arc<str>, Arc<str>)>,
        t: i64,
        ms: u64,
    ) {
        d.observe(
            vec![sealed("checkout", "POST /orders", 0, t, 50, ms)],
            Vec::new(),
            Vec::new(),
            graph,
        );
        d.tick(t + W);
    }

    /// checkout at 10 ms for 40 windows, then `before_gap`, then from
    /// `resumed` on at 40 ms: the latency anomaly found.
    fn latency_shift_after_a_gap(
        d: &mut TenantDetection,
        graph: &HashSet<(Arc<str>, Arc<str>)>,
        resumed: i64,
        before_gap: impl FnOnce(&mut TenantDetection),
    ) -> causeway_model::Anomaly {
        for i in 0..40 {
            feed_checkout(d, graph, i * W, 10);
        }
        before_gap(d);
        for j in 0..12 {
            feed_checkout(d, graph, resumed + j * W, 40);
        }
        d.anomalies(0, i64::MAX)
            .into_iter()
            .find(|a| a.metric == "latency_p50")
            .expect("the shift after the gap is found")
    }

    #[test]
    fn no_onset_is_placed_in_a_data_gap() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[]);
        let resumed = 44 * W + 5 * 60_000_000_000;
        // Slightly off (past the hold score, short of opening), then the
        // tenant goes silent for five minutes.
        let latency = latency_shift_after_a_gap(&mut d, &graph, resumed, |d| {
            for i in 40..44 {
                feed_checkout(d, &graph, i * W, 14);
            }
        });
        // The walk back over shifted windows would reach the ones before
        // the gap; nobody saw the change happen in between.
        assert_eq!(latency.onset_ns, resumed, "{latency:?}");
    }

    /// Two calls a window are too few for a self-time quantile; their
    /// self times beyond the operation's normal ones are counted instead.
    #[test]
    fn a_low_volume_operation_slow_in_its_own_work_is_found() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("gateway", "preserve")]);
        // preserve's own work: 2 ms, then from window 300 on, 90 ms; its
        // total latency is the callees' and moves little.
        for i in 0..330 {
            let red = vec![
                sealed("gateway", "GET /", 0, i * W, 200, 20),
                sealed("preserve", "POST /preserve", 0, i * W, 2, 600),
            ];
            let own_ms = if i >= 300 { 90 } else { 2 };
            let selfs = vec![sealed("preserve", "POST /preserve", 0, i * W, 2, own_ms)];
            d.observe(red, Vec::new(), selfs, &graph);
            d.tick(i * W + W);
        }
        let all = d.anomalies(0, i64::MAX);
        let slow = all
            .iter()
            .find(|a| a.metric == "slow_self_time_ratio")
            .unwrap_or_else(|| panic!("{all:#?}"));
        assert_eq!(slow.onset_ns, 300 * W);
        assert!(
            slow.detected_ns - slow.onset_ns <= 60_000_000_000,
            "{slow:?}"
        );
        assert_eq!(
            slow.subject,
            Subject::Operation {
                service: "preserve".into(),
                operation: "POST /preserve".into(),
                kind: 2,
            }
        );
        assert!(
            all.iter().all(|a| a.onset_ns >= 300 * W),
            "nothing before the change: {all:#?}"
        );
    }

    /// An operation that goes silent while slow has its anomaly closed as
    /// stale; its detector forgets it too, so that the slowness seen again
    /// when it is back opens a new one.
    #[test]
    fn a_slow_self_time_closed_as_stale_opens_again_when_seen_again() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("gateway", "preserve")]);
        let feed = |d: &mut TenantDetection, i: i64, preserve_ms: Option<u64>| {
            let mut red = vec![sealed("gateway", "GET /", 0, i * W, 200, 20)];
            let mut selfs = Vec::new();
            if let Some(ms) = preserve_ms {
                red.push(sealed("preserve", "POST /preserve", 0, i * W, 2, 600));
                selfs.push(sealed("preserve", "POST /preserve", 0, i * W, 2, ms));
            }
            d.observe(red, Vec::new(), selfs, &graph);
            d.tick(i * W + W);
        };
        for i in 0..300 {
            feed(&mut d, i, Some(2));
        }
        for i in 300..312 {
            feed(&mut d, i, Some(90));
        }
        // Ten minutes without preserve while the tenant carries on.
        for i in 312..372 {
            feed(&mut d, i, None);
        }
        let slow = |d: &TenantDetection| {
            d.anomalies(0, i64::MAX)
                .into_iter()
                .filter(|a| a.metric == "slow_self_time_ratio")
                .collect::<Vec<_>>()
        };
        let first = slow(&d);
        assert_eq!(first.len(), 1, "{first:#?}");
        assert!(first[0].resolved_ns.is_some(), "stale: {first:#?}");
        for i in 372..384 {
            feed(&mut d, i, Some(90));
        }
        let both = slow(&d);
        assert_eq!(both.len(), 2, "{both:#?}");
    }

    #[test]
    fn self_time_growth_is_found_where_total_latency_barely_moves() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("checkout", "payments")]);
        // checkout's 30 ms calls spend 28 ms waiting for payments; from
        // window 60 its own work goes from 2 to 12 ms (total 40 ms, only
        // 1.33x: below the latency detector's floor). Self-time windows
        // are final three windows later than the RED ones (pairing TTL).
        let lag = 3;
        let self_window = |i: i64| {
            let ms = if i >= 60 { 12 } else { 2 };
            sealed("checkout", "POST /orders", 0, i * W, 60, ms)
        };
        for i in 0..90 {
            let total = if i >= 60 { 40 } else { 30 };
            let red = vec![sealed("checkout", "POST /orders", 0, i * W, 60, total)];
            let selfs = if i >= lag {
                vec![self_window(i - lag)]
            } else {
                Vec::new()
            };
            d.observe(red, Vec::new(), selfs, &graph);
            d.tick(i * W + W);
        }
        let all = d.anomalies(0, i64::MAX);
        assert!(
            all.iter().all(|a| !a.metric.starts_with("latency")),
            "total latency moved too little to page: {all:#?}"
        );
        let own = all
            .iter()
            .find(|a| a.metric == "self_time_p50")
            .expect("a self-time anomaly");
        assert_eq!(own.onset_ns, 60 * W);
        assert_eq!(
            own.subject,
            Subject::Operation {
                service: "checkout".into(),
                operation: "POST /orders".into(),
                kind: 2,
            }
        );
        assert!(
            own.observed >= 11_000.0 && own.expected <= 3_000.0,
            "{own:?}"
        );
        // It survives a restart, and recovery resolves it.
        let saved = d.snapshot().expect("snapshot");
        let mut d = TenantDetection::restore(
            DetectSettings::default(),
            IncidentSettings::default(),
            &saved,
        )
        .expect("restore");
        for i in 90..120 {
            let red = vec![sealed("checkout", "POST /orders", 0, i * W, 60, 30)];
            let selfs = vec![sealed("checkout", "POST /orders", 0, (i - lag) * W, 60, 2)];
            d.observe(red, Vec::new(), selfs, &graph);
            d.tick(i * W + W);
        }
        let own = d
            .anomalies(0, i64::MAX)
            .into_iter()
            .find(|a| a.metric == "self_time_p50")
            .expect("still there");
        assert!(own.resolved_ns.is_some(), "{own:?}");
    }

    #[test]
    fn connected_anomalies_form_one_incident_that_resolves_after_quiet() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("frontend", "checkout")]);
        let step = |d: &mut TenantDetection,
                    i: i64,
                    checkout_ms: u64,
                    frontend_errors: u64,
                    billing_ms: u64| {
            let t = i * W;
            let mut red = vec![
                sealed("checkout", "POST /orders", 0, t, 50, checkout_ms),
                sealed("frontend", "GET /", 0, t, 100 - frontend_errors, 4),
                sealed("billing", "charge", 0, t, 40, billing_ms),
            ];
            if frontend_errors > 0 {
                red.push(sealed("frontend", "GET /", 2, t, frontend_errors, 4));
            }
            d.observe(red, Vec::new(), Vec::new(), &graph);
            d.tick(t + W);
        };
        for i in 0..60 {
            step(&mut d, i, 10, 0, 3);
        }
        assert!(d.incidents().is_empty(), "healthy traffic: no incident");
        // checkout slows down, frontend starts failing, billing (unconnected)
        // slows down too.
        for i in 60..70 {
            step(&mut d, i, 60, 30, 30);
        }
        let incidents = d.incidents();
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        let shop = incidents
            .iter()
            .find(|i| i.services.contains("checkout"))
            .expect("checkout incident");
        assert!(shop.services.contains("frontend"), "{shop:?}");
        assert_eq!(shop.onset_ns, 60 * W);
        let (_, anomalies) = d.incident(shop.id).expect("detail");
        let metrics: HashSet<&str> = anomalies.iter().map(|a| a.metric).collect();
        assert!(metrics.contains("error_ratio"), "{metrics:?}");
        assert!(metrics.contains("latency_p50"), "{metrics:?}");
        assert!(anomalies.iter().all(|a| a.onset_ns == 60 * W));
        let billing = incidents
            .iter()
            .find(|i| i.services.contains("billing"))
            .expect("billing incident");
        assert_eq!(billing.services.len(), 1);
        // Recovery, then the quiet period.
        for i in 70..120 {
            step(&mut d, i, 10, 0, 3);
        }
        assert!(
            d.incidents()
                .iter()
                .all(|i| i.state == IncidentState::Resolved),
            "{:#?}",
            d.incidents()
        );
        let all = d.anomalies(0, i64::MAX);
        assert!(all.iter().all(|a| a.resolved_ns.is_some()));
        assert!(all.iter().any(
            |a| matches!(&a.subject, Subject::Operation { service, .. } if service == "billing")
        ));
        // Its latest change is the recovery; the last time something
        // changed is still the onset (what the RCA window ends at).
        let shop = d
            .incidents()
            .into_iter()
            .find(|i| i.services.contains("checkout"))
            .expect("checkout incident");
        assert!(shop.updated_ns > 60 * W, "{shop:?}");
        assert_eq!(shop.last_onset_ns, Some(60 * W));
    }

    /// Self times of old windows can be sealed late (spans paired only when
    /// the pairing store lets them go). A shift found in them is an
    /// anomaly of its own time, not part of the incident open now, even
    /// on a connected service; joining would drag the incident's onset
    /// back to it.
    #[test]
    fn a_late_finding_about_old_windows_does_not_join_a_current_incident() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("checkout", "billing")]);
        let step = |d: &mut TenantDetection, i: i64, ms: u64| {
            d.observe(
                vec![sealed("checkout", "POST /orders", 0, i * W, 50, ms)],
                Vec::new(),
                Vec::new(),
                &graph,
            );
            d.tick(i * W + W);
        };
        for i in 0..400 {
            step(&mut d, i, 10);
        }
        for i in 400..410 {
            step(&mut d, i, 60);
        }
        let incidents = d.incidents();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let current = incidents[0].id;
        assert_eq!(incidents[0].onset_ns, 400 * W);
        // Billing's self times of windows 100..230, half an hour ago,
        // arrive now: healthy, then ten times slower from window 200.
        let late: Vec<Sealed<RedKey>> = (100..230)
            .map(|i| {
                sealed(
                    "billing",
                    "charge",
                    0,
                    i * W,
                    40,
                    if i < 200 { 3 } else { 30 },
                )
            })
            .collect();
        d.observe(Vec::new(), Vec::new(), late, &graph);
        let all = d.anomalies(0, i64::MAX);
        let billing = all
            .iter()
            .find(|a| matches!(&a.subject, Subject::Operation { service, .. } if service == "billing"))
            .unwrap_or_else(|| panic!("the old shift is found: {all:#?}"));
        assert_ne!(billing.incident, current, "{billing:#?}");
        let (incident, _) = d.incident(current).expect("current");
        assert_eq!(incident.onset_ns, 400 * W);
        assert!(!incident.services.contains("billing"), "{incident:#?}");
    }

    #[test]
    fn an_edge_anomaly_joins_the_incident_of_its_services() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("frontend", "checkout")]);
        let edge = |t: i64, ms: u64| {
            let s = sealed("x", "y", 0, t, 50, ms);
            Sealed {
                key: EdgeKey {
                    client: Arc::from("frontend"),
                    server: Arc::from("checkout"),
                    connection: ConnectionType::Direct,
                },
                start_ns: s.start_ns,
                len_ns: s.len_ns,
                stats: s.stats,
                hist: s.hist,
            }
        };
        for i in 0..60 {
            d.observe(
                vec![sealed("checkout", "POST /orders", 0, i * W, 50, 10)],
                vec![edge(i * W, 12)],
                Vec::new(),
                &graph,
            );
        }
        d.observe(
            vec![sealed("checkout", "POST /orders", 0, 60 * W, 50, 80)],
            vec![edge(60 * W, 85)],
            Vec::new(),
            &graph,
        );
        let incidents = d.incidents();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert!(incidents[0].anomalies.len() >= 2);
    }

    fn edge_window(client: &str, server: &str, t: i64, calls: u64) -> Sealed<EdgeKey> {
        let s = sealed("x", "y", 0, t, calls, 5);
        Sealed {
            key: EdgeKey {
                client: Arc::from(client),
                server: Arc::from(server),
                connection: ConnectionType::Direct,
            },
            start_ns: s.start_ns,
            len_ns: s.len_ns,
            stats: s.stats,
            hist: s.hist,
        }
    }

    #[test]
    fn graph_changes_new_and_vanished_edges_are_anomalies() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("frontend", "checkout"), ("frontend", "search")]);
        let step = |d: &mut TenantDetection, i: i64, search: bool, cache: bool| {
            let t = i * W;
            let red = vec![
                sealed("frontend", "GET /", 0, t, 40, 5),
                sealed("checkout", "POST /orders", 0, t, 20, 5),
            ];
            let mut edges = vec![edge_window("frontend", "checkout", t, 20)];
            if search {
                edges.push(edge_window("frontend", "search", t, 10));
            }
            if cache {
                edges.push(edge_window("checkout", "redis", t, 20));
            }
            d.observe(red, edges, Vec::new(), &graph);
            d.tick(t + W);
        };
        for i in 0..60 {
            step(&mut d, i, true, false);
        }
        assert!(d.anomalies(0, i64::MAX).is_empty());
        // search stops being called while frontend keeps working.
        for i in 60..70 {
            step(&mut d, i, false, false);
        }
        let anomalies = d.anomalies(0, i64::MAX);
        let vanished = anomalies
            .iter()
            .find(|a| a.metric == "edge_vanished")
            .expect("vanished edge");
        assert_eq!(vanished.onset_ns, 60 * W);
        assert!(matches!(&vanished.subject, Subject::Edge { server, .. } if server == "search"));
        // checkout starts calling a cache nobody called before.
        step(&mut d, 70, false, true);
        let anomalies = d.anomalies(0, i64::MAX);
        let new = anomalies
            .iter()
            .find(|a| a.metric == "new_edge")
            .expect("new edge");
        assert_eq!(new.onset_ns, 70 * W);
        assert_eq!(
            new.detail.as_deref(),
            Some("first calls from checkout to redis")
        );
        // search comes back: resolved.
        step(&mut d, 71, true, true);
        let vanished = d
            .anomalies(0, i64::MAX)
            .into_iter()
            .find(|a| a.metric == "edge_vanished")
            .expect("still listed");
        assert_eq!(vanished.resolved_ns, Some(71 * W));
    }

    /// A call path too rare to have shown in the history (one call after
    /// ten minutes without any) is no news; a new dependency carrying
    /// calls is.
    #[test]
    fn a_rare_path_first_seen_late_is_not_a_new_edge() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("frontend", "checkout")]);
        let step = |d: &mut TenantDetection, i: i64, audit: u64| {
            let t = i * W;
            let red = vec![
                sealed("frontend", "GET /", 0, t, 40, 5),
                sealed("checkout", "POST /orders", 0, t, 20, 5),
            ];
            let mut edges = vec![edge_window("frontend", "checkout", t, 20)];
            if audit > 0 {
                edges.push(edge_window("checkout", "audit", t, audit));
            }
            d.observe(red, edges, Vec::new(), &graph);
            d.tick(t + W);
        };
        for i in 0..70 {
            step(&mut d, i, 0);
        }
        step(&mut d, 70, 1);
        assert!(
            d.anomalies(0, i64::MAX)
                .iter()
                .all(|a| a.metric != "new_edge"),
            "{:?}",
            d.anomalies(0, i64::MAX)
        );
        step(&mut d, 71, 0);
        let mut d2 = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        for i in 0..70 {
            step(&mut d2, i, 0);
        }
        step(&mut d2, 70, 12);
        assert!(
            d2.anomalies(0, i64::MAX)
                .iter()
                .any(|a| a.metric == "new_edge")
        );
    }

    /// An incident touched b long ago (b's shift is long over) and goes
    /// on in a. A later fault in c, b's neighbour but not a's, is a new
    /// incident, not part of the old one because it once spread to b.
    #[test]
    fn a_later_fault_next_to_where_an_incident_once_spread_is_its_own_incident() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("a", "b"), ("b", "c")]);
        for i in 0..260 {
            let slow = |on: bool| if on { 80 } else { 10 };
            let red = vec![
                sealed("a", "GET /a", 0, i * W, 50, slow(i >= 100)),
                sealed("b", "GET /b", 0, i * W, 50, slow((100..110).contains(&i))),
                sealed("c", "GET /c", 0, i * W, 50, slow(i >= 200)),
            ];
            d.observe(red, Vec::new(), Vec::new(), &graph);
            d.tick((i + 1) * W);
        }
        let incidents = d.incidents();
        let of = |service: &str| {
            incidents
                .iter()
                .find(|i| i.services.contains(service))
                .map(|i| i.id)
        };
        assert!(of("a").is_some() && of("c").is_some(), "{incidents:#?}");
        assert_eq!(of("a"), of("b"), "{incidents:#?}");
        assert_ne!(of("a"), of("c"), "{incidents:#?}");
    }

    /// A flow used in bursts (cancellations call the order service for a
    /// minute, then not for two) pauses as a matter of course: a pause
    /// no longer than the ones before is no vanished edge; a silence far
    /// longer than any before is.
    #[test]
    fn an_edge_used_in_bursts_is_not_gone_between_them() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("cancel", "orders")]);
        let step = |d: &mut TenantDetection, i: i64, calls: bool| {
            let t = i * W;
            let red = vec![sealed("cancel", "POST /cancel", 0, t, 40, 5)];
            let edges = if calls {
                vec![edge_window("cancel", "orders", t, 40)]
            } else {
                Vec::new()
            };
            d.observe(red, edges, Vec::new(), &graph);
            d.tick(t + W);
        };
        // Bursts of six windows with calls, twelve without.
        for i in 0..180 {
            step(&mut d, i, i % 18 < 6);
        }
        let vanished = |d: &TenantDetection| {
            d.anomalies(0, i64::MAX)
                .into_iter()
                .filter(|a| a.metric == "edge_vanished")
                .count()
        };
        assert_eq!(vanished(&d), 0, "{:#?}", d.anomalies(0, i64::MAX));
        // Then no calls for five minutes while cancel keeps working.
        for i in 180..210 {
            step(&mut d, i, false);
        }
        assert_eq!(vanished(&d), 1, "{:#?}", d.anomalies(0, i64::MAX));
    }

    /// 200 windows of auth's logins and verify's one call every other
    /// window, every call of verify failing from window `from` on.
    fn feed_verify_failing_from(
        d: &mut TenantDetection,
        graph: &HashSet<(Arc<str>, Arc<str>)>,
        from: i64,
    ) {
        for i in 0..200 {
            let t = i * W;
            let mut red = vec![sealed("auth", "login", 0, t, 30, 20)];
            if i % 2 == 0 {
                let status = if i >= from { 2 } else { 0 };
                red.push(sealed("verify", "check", status, t, 1, 2));
            }
            d.observe(red, Vec::new(), Vec::new(), graph);
            d.tick(t + W);
        }
    }

    #[test]
    fn a_low_volume_service_that_fails_every_call_is_an_incident() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("auth", "verify")]);
        // verify gets one call every other window, three a minute: far too
        // few for the per-operation detector. One or two failures are not
        // an incident; three of three are.
        feed_verify_failing_from(&mut d, &graph, 180);
        let anomalies = d.anomalies(0, i64::MAX);
        let a = anomalies
            .iter()
            .find(|a| {
                a.metric == "error_ratio"
                    && a.subject
                        == Subject::Service {
                            service: "verify".into(),
                        }
            })
            .unwrap_or_else(|| panic!("{anomalies:#?}"));
        assert_eq!(a.onset_ns, 180 * W);
        assert!(a.detected_ns - a.onset_ns <= 60_000_000_000);
    }

    /// A batch of `service`'s spans of `op`: (start ns, failed).
    fn span_batch(service: &str, op: &str, spans: &[(i64, bool)]) -> arrow_array::RecordBatch {
        use opentelemetry_proto::tonic::trace::v1::{Span, Status};
        let spans = spans
            .iter()
            .enumerate()
            .map(|(i, &(t, failed))| {
                let id = u8::try_from(i % 250 + 1).unwrap_or(1);
                let start = u64::try_from(t).unwrap_or(0);
                Span {
                    trace_id: vec![id; 16],
                    span_id: vec![id; 8],
                    name: op.into(),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 2_000_000,
                    status: failed.then(|| Status {
                        code: 2,
                        message: "failed".into(),
                    }),
                    ..Default::default()
                }
            })
            .collect();
        super::batch_of_spans(service, spans)
    }

    /// A detector knows a change to its window; the spans it keeps for
    /// examples tell when within it the first failure came, or when the
    /// data resumed after a gap.
    #[test]
    fn the_onset_is_the_first_evidence_within_its_window() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[("auth", "verify")]);
        let first_failure = 180 * W + 3_500_000_000;
        d.recent.push(span_batch(
            "verify",
            "check",
            &[
                (178 * W + 1_000_000_000, false),
                (180 * W + 1_000_000_000, false),
                (first_failure, true),
                (182 * W + 2_000_000_000, true),
            ],
        ));
        feed_verify_failing_from(&mut d, &graph, 180);
        let errors = d
            .anomalies(0, i64::MAX)
            .into_iter()
            .find(|a| a.metric == "error_ratio")
            .expect("the failures are found");
        assert_eq!(errors.onset_ns, first_failure, "{errors:?}");
        let incident = &d.incidents()[0];
        assert_eq!(incident.onset_ns, first_failure);

        // After a gap: the first span seen once data resumed.
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[]);
        let resumed = 44 * W + 5 * 60_000_000_000;
        let first_seen = resumed + 4_000_000_000;
        d.recent.push(span_batch(
            "checkout",
            "POST /orders",
            &[(first_seen, false), (resumed + W, false)],
        ));
        let latency = latency_shift_after_a_gap(&mut d, &graph, resumed, |_| {});
        assert_eq!(latency.onset_ns, first_seen, "{latency:?}");
    }

    #[test]
    fn a_snapshot_restores_what_was_learned_and_found() {
        let graph = links(&[("auth", "verify")]);
        let step = |d: &mut TenantDetection, i: i64, failing: bool| {
            let t = i * W;
            let mut red = vec![sealed("auth", "login", 0, t, 40, 20)];
            if i % 2 == 0 {
                red.push(sealed(
                    "verify",
                    "check",
                    if failing { 2 } else { 0 },
                    t,
                    1,
                    2,
                ));
            }
            d.observe(red, Vec::new(), Vec::new(), &graph);
            d.tick(t + W);
        };
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        for i in 0..200 {
            step(&mut d, i, i >= 190);
        }
        assert!(!d.incidents().is_empty());
        let doc = d.snapshot().expect("snapshot");
        let mut r =
            TenantDetection::restore(DetectSettings::default(), IncidentSettings::default(), &doc)
                .expect("restore");
        assert_eq!(r.incidents(), d.incidents());
        assert_eq!(r.anomalies(0, i64::MAX), d.anomalies(0, i64::MAX));
        // Both go on alike: same learned state, same findings.
        for i in 200..260 {
            step(&mut d, i, true);
            step(&mut r, i, true);
        }
        assert_eq!(r.anomalies(0, i64::MAX), d.anomalies(0, i64::MAX));
        // A document of another format version is refused, not misread.
        let other =
            String::from_utf8(doc)
                .expect("json")
                .replacen("\"version\":1", "\"version\":99", 1);
        assert!(
            TenantDetection::restore(
                DetectSettings::default(),
                IncidentSettings::default(),
                other.as_bytes()
            )
            .is_err()
        );
    }

    #[test]
    fn a_cpu_starved_low_volume_service_is_slow_against_its_own_p99() {
        let mut d = TenantDetection::new(DetectSettings::default(), IncidentSettings::default());
        let graph = links(&[]);
        for i in 0..400 {
            let t = i * W;
            let ms = if i >= 380 { 60 } else { 3 };
            let red = vec![
                sealed("auth", "login", 0, t, 30, 20),
                sealed("verify", "check", 0, t, 1, ms),
            ];
            d.observe(red, Vec::new(), Vec::new(), &graph);
            d.tick(t + W);
        }
        let anomalies = d.anomalies(0, i64::MAX);
        let a = anomalies
            .iter()
            .find(|a| a.metric == "slow_ratio")
            .unwrap_or_else(|| panic!("{anomalies:#?}"));
        assert_eq!(
            a.subject,
            Subject::Service {
                service: "verify".into()
            }
        );
        assert_eq!(a.onset_ns, 380 * W);
        assert!(
            anomalies.iter().all(|a| a.onset_ns >= 380 * W),
            "nothing before the fault: {anomalies:#?}"
        );
    }
}

#[test]
fn examples_are_the_slowest_or_failed_spans_of_the_subject() {
    use causeway_benches::{Workload, WorkloadConfig};
    use prost::Message;
    let cfg = WorkloadConfig {
        error_rate: 0.2,
        ..WorkloadConfig::default()
    };
    let req = Workload::new(cfg).batch(2000).encode_to_vec();
    let tenant = causeway_model::TenantId::default_tenant();
    let batch = crate::kernels::otlp_to_arrow::otlp_to_arrow(&tenant, &req).expect("valid");
    let mut recent = RecentSpans::new(1_000_000);
    recent.push(batch);
    let want = Want {
        service: "frontend",
        operation: None,
        from_ns: 0,
        to_ns: i64::MAX,
        errors: false,
    };
    let slow = recent.examples(want, 3);
    assert_eq!(slow.len(), 3);
    assert!(slow.iter().all(|id| id.len() == 32));
    let failed = recent.examples(
        Want {
            errors: true,
            service: "payment",
            ..want
        },
        3,
    );
    let none = recent.examples(
        Want {
            service: "nobody",
            ..want
        },
        3,
    );
    assert!(none.is_empty());
    // Whether payment fails depends on the generator; failed ids, if any,
    // are distinct.
    let distinct: HashSet<&String> = failed.iter().collect();
    assert_eq!(distinct.len(), failed.len());
}

#[test]
fn a_new_error_signature_opens_at_once_after_learning() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};

    use super::{IncidentSettings, TenantDetection};

    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let t0: u64 = 1_764_000_000_000_000_000;
    let mut n = 0u8;
    let mut span = |t_s: u64, exception: Option<&str>| {
        n = n.wrapping_add(1);
        Span {
            trace_id: vec![n.max(1); 16],
            span_id: vec![n.max(1); 8],
            name: "POST /orders".into(),
            kind: 2,
            start_time_unix_nano: t0 + t_s * 1_000_000_000,
            end_time_unix_nano: t0 + t_s * 1_000_000_000 + 5_000_000,
            status: exception.map(|_| Status {
                code: 2,
                message: "failed".into(),
            }),
            events: exception
                .map(|e| {
                    vec![span::Event {
                        name: "exception".into(),
                        attributes: vec![kv("exception.type", e)],
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            ..Default::default()
        }
    };
    let batch_of = |spans: Vec<Span>| batch_of_spans("checkout", spans);
    let settings = DetectSettings {
        signature_learn_ns: 60_000_000_000,
        ..DetectSettings::default()
    };
    let mut d = TenantDetection::new(settings, IncidentSettings::default());
    let none = crate::series::SeriesSet::<crate::graph::EdgeKey>::new(
        crate::config::SpansConfig::default().edge_settings(),
    );
    // Learning: errors of type A and C in the first minute are not news.
    let b = batch_of(vec![span(0, None), span(5, Some("A")), span(30, Some("C"))]);
    d.observe_batch(&b, &none);
    // Twenty quiet minutes with one known error.
    let b = batch_of(
        (60..1260)
            .step_by(10)
            .map(|t| span(t, if t == 600 { Some("A") } else { None }))
            .collect(),
    );
    d.observe_batch(&b, &none);
    assert!(d.incidents().is_empty(), "{:?}", d.incidents());
    // D once is a one-off, not news; nor are three B within a second for
    // an operation that fails now and then anyway.
    let b = batch_of(vec![
        span(1300, Some("D")),
        span(1325, Some("B")),
        span(1326, Some("B")),
        span(1327, Some("A")),
        span(1328, Some("B")),
    ]);
    d.observe_batch(&b, &none);
    assert!(d.incidents().is_empty(), "{:?}", d.incidents());
    // B keeps failing calls: news, at the first B span's own time, with
    // its traces.
    let b = batch_of((1330..1340).map(|t| span(t, Some("B"))).collect());
    d.observe_batch(&b, &none);
    let anomalies = d.anomalies(0, i64::MAX);
    assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
    let a = &anomalies[0];
    assert_eq!(a.metric, "new_error_signature");
    assert_eq!(a.detail.as_deref(), Some("new error: B"));
    assert_eq!(
        a.onset_ns,
        i64::try_from(t0 + 1_325_000_000_000).expect("fits")
    );
    assert_eq!(a.observed, 13.0);
    assert_eq!(a.example_trace_ids.len(), 5);
    // Seen once, it is known; it closes after its quiet period.
    let b = batch_of(vec![span(1400, Some("B"))]);
    d.observe_batch(&b, &none);
    assert_eq!(d.anomalies(0, i64::MAX).len(), 1);
    d.tick(i64::try_from(t0 + 2_000_000_000_000).expect("fits"));
    assert!(d.anomalies(0, i64::MAX)[0].resolved_ns.is_some());
    // Back after ten quiet minutes: reported again, as a regression. A
    // (learned as normal) never is.
    let mut back: Vec<Span> = (2020..2040).map(|t| span(t, Some("B"))).collect();
    back.push(span(2021, Some("A")));
    d.observe_batch(&batch_of(back), &none);
    let anomalies = d.anomalies(0, i64::MAX);
    assert_eq!(anomalies.len(), 2, "{anomalies:#?}");
    assert_eq!(
        anomalies[0].detail.as_deref(),
        Some("error back after a quiet period: B")
    );
    assert_eq!(
        anomalies[0].onset_ns,
        i64::try_from(t0 + 2_020_000_000_000).expect("fits")
    );
}

mod sliding {
    use super::super::reference::OpReference;
    use super::super::service::{
        Counts, ServiceDetector, SlidingSettings, binomial_upper_score, poisson_score,
    };
    use super::{Event, Metric, Rng, W, binomial};

    #[test]
    fn scores_are_log10_chernoff_bounds() {
        // Three of three when one in a hundred is normal: 1e-6.
        assert!((binomial_upper_score(3, 3, 0.01) - 6.0).abs() < 1e-9);
        assert_eq!(binomial_upper_score(1, 100, 0.01), 0.0);
        assert_eq!(binomial_upper_score(0, 0, 0.01), 0.0);
        // No call where 20 were expected: e^-20.
        assert!((poisson_score(0.0, 20.0) - 20.0 / std::f64::consts::LN_10).abs() < 1e-9);
        assert_eq!(poisson_score(20.0, 20.0), 0.0);
        assert!(poisson_score(60.0, 20.0) > 6.0);
        assert!(poisson_score(5.0, 20.0) > 2.0);
    }

    #[test]
    fn a_slow_threshold_is_a_multiple_of_the_reference_p99() {
        let s = SlidingSettings::default();
        let mut r = OpReference::new();
        let mut window = hdrhistogram::Histogram::<u64>::new(2).expect("histogram");
        for v in 1..=10u64 {
            window.record(v * 1000).expect("record");
        }
        r.learn(&window, &s);
        assert_eq!(r.threshold_us(), None, "10 spans are not a reference");
        r.learn(&window, &s);
        let t = r.threshold_us().expect("20 spans are");
        assert!((14_500..=15_500).contains(&t), "{t}");
        let mut slow = hdrhistogram::Histogram::<u64>::new(2).expect("histogram");
        for v in [5_000u64, 16_000, 40_000] {
            slow.record(v).expect("record");
        }
        assert_eq!(r.slow_in(&slow), Some(2));
    }

    /// A service with `calls` per window (poisson-ish), `p_err` errors and
    /// `p_slow` slow spans, in a tenant with `tenant` calls per window.
    fn window(rng: &mut Rng, calls: f64, p_err: f64, p_slow: f64) -> Counts {
        let n = (calls + calls.sqrt() * rng.normal()).round().max(0.0) as u64;
        Counts {
            calls: n,
            errors: binomial(rng, n, p_err),
            measured: n,
            slow: binomial(rng, n, p_slow),
        }
    }

    #[test]
    fn healthy_services_at_any_volume_raise_nothing() {
        let s = SlidingSettings::default();
        for (calls, seed) in [(0.3, 1), (2.0, 2), (40.0, 3), (2000.0, 4)] {
            let mut d = ServiceDetector::new();
            let mut rng = Rng(seed);
            // A day of 10 s windows with a daily cycle of the tenant's
            // volume (x5 between night and day), benign errors and the
            // usual share of slow spans.
            for i in 0..8640i64 {
                let day = 1.0 + 0.66 * ((i as f64) / 8640.0 * std::f64::consts::TAU).sin();
                let c = window(&mut rng, calls * day, 0.01, 0.005);
                let tenant = c.calls * 5 + (100.0 * day) as u64;
                let events = d.observe(&s, i * W, c, tenant);
                assert!(events.is_empty(), "{calls}/window, window {i}: {events:?}");
            }
        }
    }

    fn opened(events: &[Event], metric: Metric) -> Option<i64> {
        events.iter().find_map(|e| match e {
            Event::Opened(f) if f.metric == metric => Some(f.onset_ns),
            _ => None,
        })
    }

    /// Slow spans in clusters (one slow request makes twelve spans slow
    /// together): in a healthy sliding minute of 600 spans the slow ones
    /// vary by whole clusters, far more than independent trials would, and
    /// a minute with a cluster in every window (12%, one minute in 64) is
    /// "one in ten million" to a binomial test. Against the share's own
    /// variation it is not news; half the calls slow for two minutes is.
    #[test]
    fn clustered_slow_calls_are_judged_by_how_much_their_share_varies() {
        let s = SlidingSettings::default();
        let mut rng = Rng(5);
        let mut d = ServiceDetector::new();
        for i in 0..1440 {
            let cluster = rng.next() < 0.5;
            let c = Counts {
                calls: 100,
                errors: 0,
                measured: 100,
                slow: if cluster { 12 } else { 0 },
            };
            let events = d.observe(&s, i * W, c, 1000);
            assert!(
                opened(&events, Metric::SlowRatio).is_none(),
                "window {i}: {events:?}"
            );
        }
        let mut found = false;
        for i in 1440..1452 {
            let c = Counts {
                calls: 100,
                errors: 0,
                measured: 100,
                slow: 50,
            };
            found |= opened(&d.observe(&s, i * W, c, 1000), Metric::SlowRatio).is_some();
        }
        assert!(found, "half the calls slow is news");
    }

    /// A nightly batch: the service's share of the tenant's calls goes
    /// from 2% to 10% from 02:00 to 03:00 every day. The first days it is
    /// news (a surge, then a drop back); once days of history show it at
    /// that hour, not any more; the same surge at another hour still is.
    #[test]
    fn a_shift_that_recurs_at_the_same_hour_every_day_stops_being_news() {
        const HOUR: i64 = 360; // windows
        const DAY: i64 = 24 * HOUR;
        let s = SlidingSettings::default();
        let mut rng = Rng(11);
        let mut d = ServiceDetector::new();
        let mut traffic = vec![0usize; 5];
        for i in 0..5 * DAY {
            let (day, hour) = (i / DAY, (i % DAY) / HOUR);
            let batch = hour == 2 || (day == 4 && hour == 14);
            let c = window(&mut rng, if batch { 100.0 } else { 20.0 }, 0.0, 0.0);
            let events = d.observe(&s, i * W, c, 1000);
            let opened_traffic = [Metric::TrafficSurge, Metric::TrafficDrop]
                .iter()
                .filter(|m| opened(&events, **m).is_some())
                .count();
            if opened_traffic > 0 {
                assert!(
                    hour == 2 || hour == 3 || (day == 4 && (hour == 14 || hour == 15)),
                    "day {day} hour {hour}: {events:?}"
                );
                if hour == 2 || hour == 3 {
                    traffic[day as usize] += opened_traffic;
                }
            }
            if day == 4 && hour == 14 && i % HOUR == 30 {
                assert!(d.is_open(), "an unusual surge at 14:00 is still news");
            }
        }
        assert!(traffic[0] > 0, "the first night it is news: {traffic:?}");
        assert_eq!(
            traffic[3..],
            [0, 0],
            "with days of history it is not: {traffic:?}"
        );
    }

    /// Three slow calls a minute of two dozen, where one in five hundred
    /// is slow: a minute cannot prove it (1e-5), two minutes can.
    #[test]
    fn a_few_slow_calls_a_minute_open_over_the_longer_look() {
        let s = SlidingSettings::default();
        let mut d = ServiceDetector::new();
        // Four calls a window; one slow every 500 calls, for hours.
        let mut n = 0u64;
        let mut call = |i: i64, slow_every_other: bool| {
            let slow = if slow_every_other {
                u64::from(i % 2 == 0)
            } else {
                n += 4;
                u64::from(n % 500 == 4)
            };
            Counts {
                calls: 4,
                errors: 0,
                measured: 4,
                slow,
            }
        };
        for i in 0..1500 {
            let events = d.observe(&s, i * W, call(i, false), 0);
            assert!(opened(&events, Metric::SlowRatio).is_none(), "{i}");
        }
        let mut found = None;
        for i in 1500..1520 {
            let events = d.observe(&s, i * W, call(i, true), 0);
            if let Some(onset) = opened(&events, Metric::SlowRatio) {
                found = Some((i, onset));
                break;
            }
        }
        let (at, onset) = found.expect("opened");
        assert!(at >= 1506, "not from one minute's three slow calls: {at}");
        assert_eq!(onset, 1500 * W);
        assert!(
            at * W - onset <= 120_000_000_000,
            "within two minutes: {at}"
        );
    }

    #[test]
    fn three_calls_a_minute_that_all_fail_open_an_error_anomaly() {
        let s = SlidingSettings::default();
        let mut d = ServiceDetector::new();
        // One call every other window, none failing, for an hour.
        let call = |i: i64, failing: bool| Counts {
            calls: u64::from(i % 2 == 0),
            errors: u64::from(i % 2 == 0 && failing),
            measured: 0,
            slow: 0,
        };
        for i in 0..360 {
            assert!(d.observe(&s, i * W, call(i, false), 50).is_empty());
        }
        let mut found = None;
        for i in 360..372 {
            let events = d.observe(&s, i * W, call(i, true), 50);
            if let Some(onset) = opened(&events, Metric::ErrorRatio) {
                found = Some((i, onset));
                break;
            }
        }
        let (at, onset) = found.expect("opened");
        assert_eq!(onset, 360 * W, "onset is the first failing call's window");
        assert!(at * W - onset <= 60_000_000_000, "within a minute: {at}");
        // One failure in an hour of spotless traffic is not an incident.
        let mut d = ServiceDetector::new();
        for i in 0..400 {
            let failing = i == 380;
            assert!(d.observe(&s, i * W, call(i, failing), 50).is_empty());
        }
    }

    #[test]
    fn slow_calls_and_traffic_changes_open_their_anomalies() {
        let s = SlidingSettings::default();
        let mut rng = Rng(5);
        let mut d = ServiceDetector::new();
        for i in 0..200 {
            let c = window(&mut rng, 5.0, 0.0, 0.005);
            assert!(d.observe(&s, i * W, c, 100).is_empty());
        }
        // Every call slow (CPU starved): opens within the sliding window.
        let mut slow_onset = None;
        for i in 200..210 {
            let c = window(&mut rng, 5.0, 0.0, 1.0);
            if let Some(o) = opened(&d.observe(&s, i * W, c, 100), Metric::SlowRatio) {
                slow_onset = Some(o);
                break;
            }
        }
        assert_eq!(slow_onset, Some(200 * W));

        // Share of a fifth of the tenant's calls, then nothing while the
        // tenant goes on: a drop.
        let mut d = ServiceDetector::new();
        for i in 0..200 {
            let c = window(&mut rng, 20.0, 0.0, 0.0);
            assert!(d.observe(&s, i * W, c, 100).is_empty());
        }
        let mut drop = None;
        for i in 200..212 {
            let events = d.observe(&s, i * W, Counts::default(), 80);
            if let Some(o) = opened(&events, Metric::TrafficDrop) {
                drop = Some((i, o));
                break;
            }
        }
        let (at, onset) = drop.expect("drop opened");
        // A thin window of noise just before is indistinguishable from the
        // drop's start: within one window.
        assert!((199 * W..=200 * W).contains(&onset), "{onset}");
        assert!(at < 207, "{at}");
        // Five times the usual calls (the tenant's grow by as many): a
        // surge.
        let mut d = ServiceDetector::new();
        for i in 0..200 {
            let c = window(&mut rng, 20.0, 0.0, 0.0);
            assert!(d.observe(&s, i * W, c, 100).is_empty());
        }
        let surged = (200..212).any(|i| {
            let c = window(&mut rng, 100.0, 0.0, 0.0);
            opened(&d.observe(&s, i * W, c, 180), Metric::TrafficSurge).is_some()
        });
        assert!(surged);
    }
}

/// A `checkout` span at `t_s` seconds, failing with exception `B` when
/// `fail`.
fn signature_span(t_s: u64, fail: bool) -> opentelemetry_proto::tonic::trace::v1::Span {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};
    let t0: u64 = 1_764_000_000_000_000_000;
    let id = t_s.to_be_bytes();
    Span {
        trace_id: [id, id].concat(),
        span_id: id.to_vec(),
        name: "POST /orders".into(),
        kind: 2,
        start_time_unix_nano: t0 + t_s * 1_000_000_000,
        end_time_unix_nano: t0 + t_s * 1_000_000_000 + 5_000_000,
        status: fail.then(|| Status {
            code: 2,
            message: "failed".into(),
        }),
        events: if fail {
            vec![span::Event {
                name: "exception".into(),
                attributes: vec![KeyValue {
                    key: "exception.type".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("B".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

/// Feeds `checkout` one healthy span a minute for `quiet_s` seconds, then
/// fails one span at each of `errors` (seconds); returns the new
/// signatures found (learning 60 s, confirming 3 within 5 minutes).
fn new_signatures(quiet_s: u64, errors: &[u64]) -> Vec<super::signatures::NewSignature> {
    let mut sig = super::signatures::Signatures::default();
    let observe = |sig: &mut super::signatures::Signatures, spans| {
        sig.observe(
            &batch_of_spans("checkout", spans),
            60_000_000_000,
            600_000_000_000,
            (3, 300_000_000_000),
        )
    };
    let quiet: Vec<_> = (0..quiet_s)
        .step_by(60)
        .map(|t| signature_span(t, false))
        .collect();
    assert!(observe(&mut sig, quiet).is_empty());
    let mut found = Vec::new();
    for &t in errors {
        found.extend(observe(&mut sig, vec![signature_span(t, true)]));
    }
    found
}

#[test]
fn a_first_burst_after_a_short_history_is_not_yet_news() {
    // Failures within a minute of an operation that has not failed since
    // it was first seen: after 15 minutes, five are a one-in-300 chance
    // for an operation that fails rarely, not news; after two hours, the
    // third is a one-in-14,000 chance, and news.
    let burst = |from: u64| (from..from + 50).step_by(10).collect::<Vec<_>>();
    assert!(new_signatures(900, &burst(900)).is_empty());
    let found = new_signatures(7200, &burst(7200));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].count, 3);
}

#[test]
fn a_new_signature_dates_from_where_it_began_to_recur() {
    // One stray failure at 7,200 s; the operation fails every 2 s from
    // 7,400 s. The onset is 7,400 s, not the stray's time.
    let t0: i64 = 1_764_000_000_000_000_000;
    let mut errors = vec![7200];
    errors.extend((7400..7430).step_by(2));
    let found = new_signatures(7200, &errors);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].first_ns, t0 + 7_400_000_000_000);
    // Without the stray, the first failure of the run.
    let found = new_signatures(7200, &errors[1..]);
    assert_eq!(found[0].first_ns, t0 + 7_400_000_000_000);
}

#[test]
fn error_ratio_scores_are_binomial_tails_not_wald_z() {
    // Against a spotless history (prior: 1 error in 100 calls), 3 errors
    // in 21 calls happen about once in 800 windows: not an anomaly. 9 in
    // 30 is.
    let settings = DetectSettings::default();
    let baseline = Baseline::new(settings.history);
    let stats = |calls: u64, errors: u64| CellStats {
        calls,
        errors,
        ..CellStats::default()
    };
    let z = |calls, errors| {
        score(
            &settings,
            Metric::ErrorRatio,
            &baseline,
            &stats(calls, errors),
        )
        .expect("scored")
    };
    let few = z(21, 3);
    assert!((3.0..4.0).contains(&few), "{few}");
    assert!(z(30, 9) > settings.z_open, "{}", z(30, 9));
    assert!(z(100, 0) < 0.0);
}
