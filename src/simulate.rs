//! `causeway simulate`: realistic web-shop traffic with a daily cycle and
//! injected faults, sent to a running causeway (or any OTLP/HTTP receiver)
//! or written as OTLP files for `causeway replay`, with the ground truth of
//! what was injected.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use causeway_benches::{Fault, FaultKind, HttpSender, SimConfig, Simulator};
use causeway_correlator::spans::Interner;
use causeway_correlator::{CorrelatorConfig, Input, StoreSource, analyze, excluded_ranges, gather};
use causeway_model::{Anomaly, Incident, RcaReport, Signal, TenantId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

/// `causeway simulate` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// Event time to simulate (e.g. `24h`, `30m`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// First instant (RFC 3339). Default: with `--out`, `duration` before
    /// now (the data ends now); when sending, now.
    #[arg(long)]
    start: Option<humantime::Timestamp>,
    /// Mean traces per second over a day (about 13 spans each).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Daily cycle: the rate swings by this share around its mean.
    #[arg(long, default_value_t = 0.6)]
    diurnal: f64,
    /// Share of leaf calls that fail with a benign error.
    #[arg(long, default_value_t = 0.002)]
    benign_errors: f64,
    /// PRNG seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A fault, `KIND:TARGET@OFFSET[+DURATION]`, repeatable: `latency:checkout@20m+10m`,
    /// `latency:cart/oteldemo.CartService/GetCart@1h`, `edge-latency:frontend->checkout@2h`,
    /// `errors:payment@3h`, `new-exception:product-catalog@4h`, `cpu:shipping@5h`,
    /// `bad-deploy:checkout@6h`.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Write one OTLP protobuf file per simulated minute here, and
    /// `ground-truth.json`.
    #[arg(long, conflicts_with = "endpoint")]
    out: Option<PathBuf>,
    /// Send to this OTLP/HTTP receiver, e.g. `http://127.0.0.1:4318`.
    #[arg(long)]
    endpoint: Option<String>,
    /// API key for `--endpoint` (sent as a bearer token).
    #[arg(long, env = "CAUSEWAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// With `--endpoint`: send at the pace of event time instead of as fast
    /// as the receiver accepts.
    #[arg(long)]
    realtime: bool,
    /// Where to write the ground truth when sending (default: stderr).
    #[arg(long)]
    truth: Option<PathBuf>,
}

/// Runs the simulation.
pub(crate) fn run(args: SimulateArgs) -> ExitCode {
    match simulate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("causeway simulate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    if args.out.is_none() && args.endpoint.is_none() {
        anyhow::bail!("give --out DIR (files for `causeway replay`) or --endpoint URL");
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let start_ns = match args.start {
        Some(t) => SystemTime::from(t)
            .duration_since(UNIX_EPOCH)
            .context("--start before 1970")?
            .as_nanos() as u64,
        None if args.out.is_some() => {
            let minute = 60_000_000_000;
            (now_ns.saturating_sub(args.duration.as_nanos() as u64)) / minute * minute
        }
        None => now_ns,
    };
    let faults = args
        .faults
        .iter()
        .map(|f| Fault::parse(f, start_ns))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--fault {e}"))?;
    let services: Vec<String> = causeway_benches::web_shop()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for f in &faults {
        if !services.iter().any(|s| s == f.kind.service()) {
            anyhow::bail!(
                "--fault {}: no service {:?} in the web shop ({})",
                f.kind.name(),
                f.kind.service(),
                services.join(", ")
            );
        }
    }
    let cfg = SimConfig {
        seed: args.seed,
        start_ns,
        duration: args.duration,
        rate: args.rate,
        diurnal: args.diurnal,
        benign_errors: args.benign_errors,
        faults,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg.clone());
    let truth = ground_truth(&cfg);
    match (&args.out, &args.endpoint) {
        (Some(dir), _) => {
            let (files, spans) = write_files(&mut sim, dir)?;
            let path = dir.join("ground-truth.json");
            std::fs::write(&path, serde_json::to_vec_pretty(&truth)?)
                .with_context(|| path.display().to_string())?;
            eprintln!(
                "wrote {files} file(s), {spans} spans, and {} to {}",
                path.display(),
                dir.display()
            );
        }
        (None, Some(endpoint)) => {
            let sender = HttpSender::new(endpoint, args.api_key.clone())
                .map_err(|e| anyhow::anyhow!("--endpoint {e}"))?;
            write_truth(&truth, args.truth.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let spans = runtime.block_on(send(&mut sim, &sender, args.realtime))?;
            eprintln!("sent {spans} spans to {endpoint}");
        }
        (None, None) => unreachable!("checked above"),
    }
    Ok(())
}

/// One file per simulated minute, named by its start so that a sorted
/// listing is in time order.
fn write_files(sim: &mut Simulator, dir: &Path) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let minute_ns = 60_000_000_000;
    let mut current: Option<(u64, Vec<ExportTraceServiceRequest>)> = None;
    let (mut files, mut spans) = (0, 0);
    let mut write = |minute: u64, parts: Vec<ExportTraceServiceRequest>| -> anyhow::Result<()> {
        let mut req = ExportTraceServiceRequest::default();
        for p in parts {
            req.resource_spans.extend(p.resource_spans);
        }
        spans += causeway_benches::span_count(&req);
        let name = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(minute))
            .to_string()
            .replace(':', "");
        let path = dir.join(format!("sim-{name}.pb"));
        std::fs::write(&path, req.encode_to_vec()).with_context(|| path.display().to_string())?;
        files += 1;
        Ok(())
    };
    while let Some((t, req)) = sim.next_step() {
        let minute = t / minute_ns * minute_ns;
        match &mut current {
            Some((m, parts)) if *m == minute => parts.push(req),
            _ => {
                if let Some((m, parts)) = current.take() {
                    write(m, parts)?;
                }
                current = Some((minute, vec![req]));
            }
        }
    }
    if let Some((m, parts)) = current {
        write(m, parts)?;
    }
    Ok((files, spans))
}

async fn send(sim: &mut Simulator, sender: &HttpSender, realtime: bool) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut first: Option<u64> = None;
    let mut spans = 0;
    while let Some((t, req)) = sim.next_step() {
        let t0 = *first.get_or_insert(t);
        if realtime {
            let due = Duration::from_nanos(t.saturating_sub(t0));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if req.resource_spans.is_empty() {
            continue;
        }
        spans += causeway_benches::span_count(&req);
        sender
            .send(bytes::Bytes::from(req.encode_to_vec()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(spans)
}

fn write_truth(truth: &serde_json::Value, path: Option<&Path>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(truth)?;
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| p.display().to_string())?,
        None => eprintln!("{text}"),
    }
    Ok(())
}

pub(crate) fn rfc3339(ns: u64) -> String {
    causeway_model::time::rfc3339(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// What was injected, where and when.
pub(crate) fn ground_truth(cfg: &SimConfig) -> serde_json::Value {
    let end_ns = cfg.start_ns.saturating_add(cfg.duration.as_nanos() as u64);
    let faults: Vec<serde_json::Value> = cfg
        .faults
        .iter()
        .map(|f| {
            let (operation, client) = match &f.kind {
                FaultKind::Latency { operation, .. } => (operation.clone(), None),
                FaultKind::EdgeLatency { client, .. } => (None, Some(client.clone())),
                _ => (None, None),
            };
            let end = f.end_ns.min(end_ns);
            json!({
                "kind": f.kind.name(),
                "service": f.kind.service(),
                "operation": operation,
                "client": client,
                "start": rfc3339(f.start_ns),
                "end": rfc3339(end),
                "start_ns": f.start_ns,
                "end_ns": end,
            })
        })
        .collect();
    json!({
        "seed": cfg.seed,
        "start": rfc3339(cfg.start_ns),
        "end": rfc3339(end_ns),
        "rate": cfg.rate,
        "diurnal": cfg.diurnal,
        "faults": faults,
    })
}

/// An incident, its anomalies and its RCA.
pub(crate) type Analysed = (Incident, Vec<Anomaly>, RcaReport);

/// Runs a simulation through the same pipeline as `serve` (in a scratch
/// data directory, in event time) and analyses every incident as `serve`'s
/// correlator does, given `signals` (as connectors would have stored them).
/// `check` sees each report with the span store before it is removed.
pub(crate) fn analysed_with(
    cfg: SimConfig,
    signals: &[Signal],
    check: &dyn Fn(&RcaReport, &causeway_store::SpanStore, &TenantId),
) -> anyhow::Result<Vec<Analysed>> {
    static SCRATCH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "causeway-sim-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = analyse_in(&dir, cfg, signals, check);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Submits a whole simulation to `session`, as fast as it takes it.
async fn feed(session: &mut crate::app::Session, cfg: SimConfig) {
    let mut sim = Simulator::new(cfg);
    while let Some((_, req)) = sim.next_step() {
        if !req.resource_spans.is_empty() {
            session
                .submit(bytes::Bytes::from(req.encode_to_vec()), "sim")
                .await;
        }
    }
}

fn analyse_in(
    dir: &Path,
    cfg: SimConfig,
    signals: &[Signal],
    check: &dyn Fn(&RcaReport, &causeway_store::SpanStore, &TenantId),
) -> anyhow::Result<Vec<Analysed>> {
    let tenant = TenantId::new("sim").map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let mut config = crate::config::Config::default();
        config.storage.data_dir = dir.to_owned();
        let mut session = crate::app::Session::start(&config, tenant.clone())?;
        feed(&mut session, cfg).await;
        session.finish().await
    })?;
    if let Some(e) = report.errors.first() {
        anyhow::bail!("the pipeline refused a request: {e}");
    }
    let store = causeway_store::SpanStore::open(&dir.join("spans"), Default::default())
        .context("opening the span store")?;
    let config = CorrelatorConfig::default();
    let all: Vec<Incident> = report.incidents.iter().map(|(i, _)| i.clone()).collect();
    let mut out = Vec::new();
    for (incident, anomalies) in report.incidents {
        let mut strings = Interner::default();
        let (window, reference) = gather(
            &StoreSource(&store, &tenant),
            &incident,
            &excluded_ranges(&incident, &all),
            &config,
            &mut strings,
        )?;
        let rca = analyze(
            Input {
                tenant: &tenant,
                incident: &incident,
                anomalies: &anomalies,
                window,
                reference,
                strings,
                signals,
                now_ns: incident.updated_ns,
                feedback: &[],
                history: &causeway_correlator::history::History::default(),
            },
            &config,
        );
        check(&rca, &store, &tenant);
        out.push((incident, anomalies, rca));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
                    let fault = Fault::parse(&format!("bad-deploy:{service}@20m"), start_ns)
                        .expect("fault");
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
                            &format!(
                                "{service} failing with NullPointerException since this morning"
                            ),
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
        body: impl AsyncFnOnce(&mut crate::app::Session, &std::path::Path, &TenantId) -> T,
    ) -> T {
        let dir = std::env::temp_dir().join(format!("causeway-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let out = runtime.block_on(async {
            let mut config = crate::config::Config::default();
            config.storage.data_dir = dir.clone();
            let tenant = TenantId::new("sim").expect("tenant");
            let mut session = crate::app::Session::start(&config, tenant.clone()).expect("session");
            let out = body(&mut session, &dir, &tenant).await;
            session.finish().await.expect("finish");
            out
        });
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    fn rca_service(
        session: &crate::app::Session,
        dir: &std::path::Path,
    ) -> causeway_exporter::rca::RcaService {
        causeway_exporter::rca::RcaService::new(
            session.queries(),
            causeway_store::DuckDbReports::open(&dir.join("rca.duckdb")).expect("reports"),
            None,
            CorrelatorConfig::default(),
        )
    }

    /// Someone who looked rejects the top hypothesis of the fault's report:
    /// the next pass ranks it below the other candidates (also after a
    /// restart, from the stored feedback); confirming it brings it back.
    async fn feedback_reorders_the_next_analysis(
        session: &crate::app::Session,
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
        session: &mut crate::app::Session,
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

    /// The event stream hears of incidents from the RCA service's watch,
    /// within seconds, not at the next RCA pass: after priming (what a new
    /// subscriber can read from the API is not announced), each new or
    /// changed incident once, nothing when nothing changed, and no work
    /// while nobody listens.
    #[test]
    fn incident_events_follow_the_processor_while_someone_listens() {
        let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
        let fault = Fault::parse("bad-deploy:payment@20m", start_ns).expect("fault");
        with_rca_service("rca-live", async |session, dir, tenant| {
            let service = rca_service(session, dir);
            assert_eq!(service.announce_incidents().await.expect("idle"), 0);
            let mut rx = service.subscribe();
            assert_eq!(service.announce_incidents().await.expect("prime"), 0);
            feed(session, shop(4, start_ns, 24, vec![fault])).await;
            let n = service.announce_incidents().await.expect("announce");
            assert!(n > 0, "the fault's incident is announced");
            let mut seen = Vec::new();
            while let Ok(e) = rx.try_recv() {
                assert_eq!(e.kind, "incident");
                assert_eq!(&e.tenant, tenant);
                seen.push(e.id);
            }
            assert_eq!(seen.len(), n);
            assert_eq!(service.announce_incidents().await.expect("again"), 0);
            drop(rx);
            assert_eq!(service.announce_incidents().await.expect("nobody"), 0);
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
}
