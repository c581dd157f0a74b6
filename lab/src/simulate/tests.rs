use causeway_model::{CauseKind, SignalKind};

use super::*;

/// The web shop at 10 traces/s for `minutes` from `start_ns`.
fn shop(seed: u64, start_ns: u64, minutes: u64, faults: Vec<Fault>) -> SimConfig {
    SimConfig {
        seed,
        start_ns,
        duration: Duration::from_secs(minutes * 60),
        rate: 10.0,
        faults,
        ..SimConfig::default()
    }
}

/// [`analysed_with`], checking that every cited trace and signal exists.
fn analysed(cfg: SimConfig, signals: &[Signal]) -> Vec<Analysed> {
    analysed_with(cfg, signals, &|rca, store, tenant| {
        assert_evidence_exists(rca, store, tenant, signals)
    })
    .expect("simulation")
}

/// Runs a simulation through the same pipeline as `serve` and returns
/// the incidents found, with their anomalies.
fn incidents_of(cfg: SimConfig) -> Vec<(Incident, Vec<Anomaly>)> {
    analysed(cfg, &[])
        .into_iter()
        .map(|(i, a, _)| (i, a))
        .collect()
}

fn describe(incidents: &[(Incident, Vec<Anomaly>)]) -> String {
    incidents
        .iter()
        .map(|(i, a)| {
            format!(
                "incident {} onset {} [{}]: {}",
                i.id,
                rfc3339(u64::try_from(i.onset_ns).unwrap_or(0)),
                i.services.iter().cloned().collect::<Vec<_>>().join(", "),
                a.iter()
                    .map(|a| format!(
                        "{} {} ({:.3} vs {:.3})",
                        a.metric, a.subject, a.observed, a.expected
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_healthy_simulated_day_raises_no_incident() {
    // Low volume on purpose: at night under half a trace a second,
    // where thin windows tempt a detector most. Benign errors included.
    let incidents = incidents_of(SimConfig {
        seed: 7,
        duration: Duration::from_secs(24 * 3600),
        rate: 1.0,
        diurnal: 0.6,
        benign_errors: 0.002,
        step: Duration::from_secs(10),
        ..SimConfig::default()
    });
    assert!(incidents.is_empty(), "{}", describe(&incidents));
}

#[test]
fn every_fault_kind_opens_an_incident_within_one_window_of_its_start() {
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    let window_ns = 10_000_000_000u64;
    let at = "20m+10m";
    let specs = [
        "latency:checkout/oteldemo.CheckoutService/PlaceOrder",
        "edge-latency:checkout->payment",
        "errors:payment",
        "new-exception:product-catalog",
        "cpu:cart",
        "bad-deploy:shipping",
    ];
    let runs: Vec<_> = specs
        .iter()
        .map(|spec| {
            let fault = Fault::parse(&format!("{spec}@{at}"), start_ns).expect("fault");
            std::thread::spawn(move || {
                let begin = fault.start_ns;
                let service = fault.kind.service().to_owned();
                let incidents = incidents_of(shop(3, start_ns, 26, vec![fault]));
                (begin, service, incidents)
            })
        })
        .collect();
    for (spec, run) in specs.iter().zip(runs) {
        let (begin, service, incidents) = run.join().expect("simulation");
        let begin = i64::try_from(begin).expect("fits");
        assert!(
            incidents
                .iter()
                .all(|(i, _)| i.onset_ns >= begin - i64::try_from(window_ns).expect("fits")),
            "{spec}: an incident before the fault:\n{}",
            describe(&incidents)
        );
        let hit = incidents.iter().find(|(i, _)| {
            (i.onset_ns - begin).unsigned_abs() < window_ns && i.services.contains(&service)
        });
        assert!(
            hit.is_some(),
            "{spec}: no incident on {service} with its onset within one window of {}:\n{}",
            rfc3339(u64::try_from(begin).unwrap_or(0)),
            describe(&incidents)
        );
    }
}

/// Every trace id an RCA cites is a trace in the span store, and every
/// signal it cites is one of `signals`.
fn assert_evidence_exists(
    rca: &RcaReport,
    store: &causeway_store::SpanStore,
    tenant: &TenantId,
    signals: &[Signal],
) {
    use arrow_array::Array;
    use causeway_model::Evidence;
    let batches = store
        .scan(tenant, i64::MIN, i64::MAX, &["trace_id"])
        .expect("scan");
    let mut stored = std::collections::HashSet::new();
    for b in &batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
            .expect("trace ids");
        for i in 0..ids.len() {
            stored.insert(
                ids.value(i)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            );
        }
    }
    let evidence = rca
        .hypotheses
        .iter()
        .flat_map(|h| h.evidence.iter().chain(h.change.iter()))
        .chain(rca.reports.iter().map(|r| &r.signal));
    let mut cited = 0;
    for e in evidence {
        let traces: &[String] = match e {
            Evidence::EventPattern { trace_ids, .. }
            | Evidence::ErrorOrigin { trace_ids, .. }
            | Evidence::SelfTime { trace_ids, .. }
            | Evidence::VersionChange { trace_ids, .. }
            | Evidence::NewInstance { trace_ids, .. } => trace_ids,
            Evidence::Signal { external_id, .. } => {
                assert!(
                    signals.iter().any(|s| &s.external_id == external_id),
                    "cited signal {external_id} is not stored"
                );
                &[]
            }
            Evidence::Anomaly { .. } => &[],
        };
        for t in traces {
            assert!(
                stored.contains(t),
                "cited trace {t} is not in the span store"
            );
            cited += 1;
        }
    }
    assert!(
        rca.hypotheses.is_empty() || cited > 0,
        "hypotheses cite no trace: {rca:?}"
    );
}

/// The first incident from the fault's start on.
fn first_hit(runs: &[Analysed], begin: i64) -> Option<&Analysed> {
    runs.iter()
        .find(|(i, _, _)| i.onset_ns >= begin - 10_000_000_000)
}

#[test]
fn rca_names_the_faulty_service_for_every_fault_kind() {
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    let specs = [
        (
            "latency:checkout/oteldemo.CheckoutService/PlaceOrder",
            "checkout",
        ),
        // Network delay into payment on checkout's calls.
        ("edge-latency:checkout->payment", "payment"),
        ("errors:payment", "payment"),
        ("new-exception:product-catalog", "product-catalog"),
        ("cpu:cart", "cart"),
        ("bad-deploy:shipping", "shipping"),
    ];
    let runs: Vec<_> = specs
        .iter()
        .map(|(spec, _)| {
            let fault = Fault::parse(&format!("{spec}@20m+10m"), start_ns).expect("fault");
            std::thread::spawn(move || {
                let begin = i64::try_from(fault.start_ns).expect("fits");
                let runs = analysed(shop(3, start_ns, 26, vec![fault]), &[]);
                (begin, runs)
            })
        })
        .collect();
    for ((spec, service), run) in specs.iter().zip(runs) {
        let (begin, runs) = run.join().expect("simulation");
        let Some((incident, _, rca)) = first_hit(&runs, begin) else {
            panic!("{spec}: no incident");
        };
        let top = rca.hypotheses.first().map(|h| h.service.as_str());
        assert_eq!(
            top,
            Some(*service),
            "{spec}: incident {} ranks {:?}:\n{}",
            incident.id,
            rca.hypotheses
                .iter()
                .map(|h| (h.service.as_str(), h.score))
                .collect::<Vec<_>>(),
            causeway_correlator::report::markdown(rca)
        );
        if spec.starts_with("bad-deploy") {
            assert_eq!(rca.hypotheses[0].cause, CauseKind::Deploy, "{spec}");
        }
    }
}

/// A signal as a connector would store it.
fn signal(kind: SignalKind, id: &str, title: &str, at_ns: i64, services: &[&str]) -> Signal {
    crate::demo::signal("github", kind, id, title, at_ns, services)
}

#[test]
fn rca_ranks_the_responsible_change_first_and_links_the_ticket() {
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    // Ten scenarios: a bad deploy of a different service each time
    // (cycling), each with decoys: changes to other services closer
    // to onset, an older change to the same service, an unrelated
    // ticket.
    let services = ["shipping", "payment", "cart", "currency", "product-catalog"];
    let runs: Vec<_> = (0..10)
        .map(|n| {
            let service = services[n % services.len()].to_owned();
            std::thread::spawn(move || {
                let fault =
                    Fault::parse(&format!("bad-deploy:{service}@20m"), start_ns).expect("fault");
                let begin = i64::try_from(fault.start_ns).expect("fits");
                let min = 60_000_000_000i64;
                let other = services
                    .iter()
                    .find(|s| **s != service)
                    .copied()
                    .unwrap_or("frontend");
                let signals = vec![
                    signal(
                        SignalKind::Deploy,
                        &format!("deploy-{n}"),
                        &format!("Deploy {service} 9.9.9-rc1"),
                        begin - 2 * min,
                        &[&service],
                    ),
                    signal(
                        SignalKind::Commit,
                        &format!("c-old-{n}"),
                        &format!("{service}: tidy logging"),
                        begin - 20 * 60 * min,
                        &[&service],
                    ),
                    signal(
                        SignalKind::Deploy,
                        &format!("deploy-other-{n}"),
                        &format!("Deploy {other} 2.0.1"),
                        begin - min,
                        &[other],
                    ),
                    signal(
                        SignalKind::Commit,
                        &format!("c-other-{n}"),
                        "Bump dependencies",
                        begin - min / 2,
                        &[other],
                    ),
                    signal(
                        SignalKind::Ticket,
                        &format!("T-{n}"),
                        &format!("{service} failing with NullPointerException since this morning"),
                        begin + 3 * min,
                        &[],
                    ),
                    signal(
                        SignalKind::Ticket,
                        &format!("T-unrelated-{n}"),
                        "Update the office wifi password",
                        begin + 3 * min,
                        &[],
                    ),
                ];
                let runs = analysed(shop(11 + n as u64, start_ns, 26, vec![fault]), &signals);
                (n, service, begin, runs)
            })
        })
        .collect();
    let mut right = 0;
    let mut failures = Vec::new();
    for run in runs {
        let (n, service, begin, runs) = run.join().expect("simulation");
        let Some((_, _, rca)) = first_hit(&runs, begin) else {
            failures.push(format!("scenario {n} ({service}): no incident"));
            continue;
        };
        let top = rca.hypotheses.first();
        let change = top.and_then(|h| h.change.as_ref());
        let ok_change = matches!(change, Some(causeway_model::Evidence::Signal { external_id, .. }) if *external_id == format!("deploy-{n}"));
        let ok_ticket = rca.reports.iter().any(|r| matches!(&r.signal, causeway_model::Evidence::Signal { external_id, .. } if *external_id == format!("T-{n}")));
        let no_noise = rca.reports.iter().all(|r| !matches!(&r.signal, causeway_model::Evidence::Signal { external_id, .. } if external_id.starts_with("T-unrelated")));
        if ok_change && ok_ticket && no_noise && top.is_some_and(|h| h.service == service) {
            right += 1;
        } else {
            failures.push(format!(
                "scenario {n} ({service}): top {:?}, change {change:?}, reports {:?}",
                top.map(|h| &h.service),
                rca.reports
            ));
        }
    }
    assert!(right >= 9, "{right}/10 right:\n{}", failures.join("\n"));
}

/// A runtime and, in it, a processor session over a fresh data
/// directory `causeway-{name}-PID` with an RCA service on its queries,
/// as `serve` wires them; `body` runs with both, the directory is
/// removed afterwards.
fn with_rca_service<T>(
    name: &str,
    body: impl AsyncFnOnce(&mut causeway_app::Session, &std::path::Path, &TenantId) -> T,
) -> T {
    let dir = std::env::temp_dir().join(format!("causeway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = runtime.block_on(async {
        let mut config = causeway_app::config::Config::default();
        config.storage.data_dir = dir.clone();
        let tenant = TenantId::new("sim").expect("tenant");
        let mut session = causeway_app::Session::start(&config, tenant.clone()).expect("session");
        let out = body(&mut session, &dir, &tenant).await;
        session.finish().await.expect("finish");
        out
    });
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn rca_service(
    session: &causeway_app::Session,
    dir: &std::path::Path,
) -> causeway_correlator::RcaService {
    causeway_correlator::RcaService::new(
        session.queries(),
        Box::new(causeway_store::DuckDbReports::open(&dir.join("rca.duckdb")).expect("reports")),
        None,
        CorrelatorConfig::default(),
    )
}

/// Someone who looked rejects the top hypothesis of the fault's report:
/// the next pass ranks it below the other candidates (also after a
/// restart, from the stored feedback); confirming it brings it back.
async fn feedback_reorders_the_next_analysis(
    session: &causeway_app::Session,
    dir: &std::path::Path,
    tenant: &causeway_model::TenantId,
    reports: &[causeway_model::rca::RcaReport],
    start_ns: u64,
) {
    let at = i64::try_from(start_ns).expect("fits") + 20 * 60_000_000_000;
    let report = reports
        .iter()
        .find(|r| r.window_start_ns >= at - 10_000_000_000)
        .expect("a report for the fault's incident");
    assert!(report.hypotheses.len() >= 2, "{report:?}");
    let top = report.hypotheses[0].service.clone();
    let verdict = |confirmed: bool| causeway_model::rca::Feedback {
        rank: 1,
        service: top.clone(),
        confirmed,
        by: "sre@example.com".into(),
        comment: None,
        at_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
    };
    // A fresh service (as after a restart) sees feedback newer than the
    // stored report; a running one is told by `feedback`.
    let service = rca_service(session, dir);
    let rerank = async |confirmed: bool| {
        assert!(
            service
                .feedback(tenant, report.id, verdict(confirmed))
                .await
                .expect("feedback")
        );
        assert_eq!(service.analyse_all().await.expect("analyse"), 1);
        service
            .get(tenant, report.id)
            .await
            .expect("get")
            .expect("report")
    };
    let again = rerank(false).await;
    assert_ne!(again.hypotheses[0].service, top, "{again:?}");
    assert!(
        again.hypotheses.iter().skip(1).any(|h| h.service == top)
            || again.hypotheses.len() == CorrelatorConfig::default().hypotheses,
        "rejected, listed last when there is room: {again:?}"
    );
    assert_eq!(again.feedback.len(), 1);
    // Nothing new: nothing to redo.
    assert_eq!(service.analyse_all().await.expect("analyse"), 0);
    let back = rerank(true).await;
    assert_eq!(back.hypotheses[0].service, top);
}

/// The same bad deploy again, 24 minutes later (after the first
/// incident's top hypothesis was rejected and then confirmed): the later
/// report's hypothesis on the same evidence cites the earlier verdict,
/// and its score is raised by it.
async fn verdicts_weigh_in_a_later_incident(
    session: &mut causeway_app::Session,
    dir: &std::path::Path,
    tenant: &causeway_model::TenantId,
    start_ns: u64,
) {
    let later = start_ns + 24 * 60_000_000_000;
    let fault = Fault::parse("bad-deploy:payment@20m", later).expect("fault");
    feed(session, shop(5, later, 24, vec![fault])).await;
    let service = rca_service(session, dir);
    assert!(service.analyse_all().await.expect("analyse") > 0);
    let at = i64::try_from(later).expect("fits") + 20 * 60_000_000_000;
    let reports = service
        .list(tenant, i64::MIN, i64::MAX, 0)
        .await
        .expect("list");
    let first = reports
        .iter()
        .filter(|r| !r.feedback.is_empty())
        .map(|r| r.id)
        .next()
        .expect("the report people gave feedback on");
    let report = reports
        .iter()
        .find(|r| r.window_start_ns >= at - 10_000_000_000)
        .expect("a report for the second fault's incident");
    let payment = report
        .hypotheses
        .iter()
        .find(|h| h.service == "payment")
        .expect("payment is a hypothesis");
    assert_eq!(
        payment
            .precedents
            .iter()
            .map(|p| (p.incident, p.confirmed))
            .collect::<Vec<_>>(),
        [(first, true)],
        "{}",
        causeway_correlator::report::markdown(report)
    );
    let raw = payment
        .evidence
        .iter()
        .find_map(|e| match e {
            causeway_model::Evidence::EventPattern { score, .. }
            | causeway_model::Evidence::ErrorOrigin { score, .. }
            | causeway_model::Evidence::SelfTime { score, .. } => Some(score.abs()),
            _ => None,
        })
        .expect("trace evidence");
    assert!(payment.score > raw, "{} vs {raw}", payment.score);
}

/// `serve`'s RCA stage follows the processor's incident changes, with
/// nothing polling: each new or changed incident is announced on the event
/// stream as the processor hands it over, and the first report of an
/// incident follows as an `rca` event after its `incident` event.
#[test]
fn the_rca_stage_follows_incident_changes_as_they_happen() {
    use std::sync::Arc;
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    let fault = Fault::parse("bad-deploy:payment@20m", start_ns).expect("fault");
    with_rca_service("rca-live", async |session, dir, tenant| {
        let changes = session.take_changes().expect("the session's changes");
        assert!(session.take_changes().is_none(), "taken once");
        let service = Arc::new(rca_service(session, dir));
        let mut rx = service.subscribe();
        let stop = tokio_util::sync::CancellationToken::new();
        let stage = tokio::spawn(Arc::clone(&service).run(changes, stop.clone()));
        feed(session, shop(4, start_ns, 24, vec![fault])).await;
        let mut incidents = std::collections::HashMap::new();
        let reported = loop {
            // A guard against a hang, not a speed check.
            let e = tokio::time::timeout(std::time::Duration::from_secs(300), rx.recv())
                .await
                .expect("an rca event")
                .expect("the stream is open");
            assert_eq!(&e.tenant, tenant);
            match e.kind {
                "incident" => {
                    incidents
                        .entry(e.id)
                        .or_insert_with(std::time::Instant::now);
                }
                "rca" => break e.id,
                other => panic!("unexpected event {other}"),
            }
        };
        let announced = incidents
            .get(&reported)
            .expect("the incident was announced before its report");
        // Printed (`--nocapture`) for docs/performance.md, not asserted:
        // the machine is shared.
        eprintln!(
            "first report event {:?} after its incident's first event",
            announced.elapsed()
        );
        let report = service
            .get(tenant, reported)
            .await
            .expect("get")
            .expect("the report the event names");
        assert_eq!(report.incident, reported);
        stop.cancel();
        stage.await.expect("the stage stops when told");
    });
}

/// `serve`'s RCA service, asking the processor for incidents and span
/// snapshots (files and buffered batches) as it does in production.
#[test]
fn the_rca_service_reports_a_bad_deploy_from_processor_snapshots() {
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    let fault = Fault::parse("bad-deploy:payment@20m", start_ns).expect("fault");
    let reports = with_rca_service("rca-svc", async |session, dir, tenant| {
        feed(session, shop(4, start_ns, 24, vec![fault])).await;
        let service = rca_service(session, dir);
        let written = service.analyse_all().await.expect("analyse");
        assert!(written > 0, "no report written");
        // Nothing changed since: a second pass writes nothing, nor does
        // a restarted service over the same report store.
        assert_eq!(service.analyse_all().await.expect("analyse"), 0);
        drop(service);
        let service = rca_service(session, dir);
        assert_eq!(service.analyse_all().await.expect("analyse"), 0);
        let reports = service
            .list(tenant, i64::MIN, i64::MAX, 0)
            .await
            .expect("list");
        feedback_reorders_the_next_analysis(session, dir, tenant, &reports, start_ns).await;
        verdicts_weigh_in_a_later_incident(session, dir, tenant, start_ns).await;
        reports
    });
    let at = i64::try_from(start_ns).expect("fits") + 20 * 60_000_000_000;
    let report = reports
        .iter()
        .find(|r| r.window_start_ns >= at - 10_000_000_000)
        .expect("a report for the fault's incident");
    assert_eq!(
        report.hypotheses.first().map(|h| h.service.as_str()),
        Some("payment"),
        "{}",
        causeway_correlator::report::markdown(report)
    );
    assert_eq!(report.hypotheses[0].cause, CauseKind::Deploy);
    assert!(report.reference_spans > 0);
}
