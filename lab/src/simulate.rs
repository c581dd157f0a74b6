//! `causeway simulate`: realistic web-shop traffic with a daily cycle and
//! injected faults, sent to a running causeway (or any OTLP/HTTP receiver)
//! or written as OTLP files for `causeway replay`, with the ground truth of
//! what was injected.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use causeway_benches::{Fault, FaultKind, HttpSender, SimConfig, Simulator};
use causeway_correlator::{Case, CorrelatorConfig, StoreSource, excluded_ranges, investigate};
use causeway_model::{Anomaly, Incident, RcaReport, Signal, TenantId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

/// `causeway simulate` arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
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
async fn feed(session: &mut causeway_app::Session, cfg: SimConfig) {
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
        let mut config = causeway_app::config::Config::default();
        config.storage.data_dir = dir.to_owned();
        let mut session = causeway_app::Session::start(&config, tenant.clone())?;
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
        let case = Case {
            tenant: &tenant,
            incident: &incident,
            anomalies: &anomalies,
            excluded: &excluded_ranges(&incident, &all),
            signals,
            now_ns: incident.updated_ns,
            feedback: &[],
            history: &causeway_correlator::history::History::default(),
        };
        let rca = investigate(&StoreSource(&store, &tenant), case, &config)?;
        check(&rca, &store, &tenant);
        out.push((incident, anomalies, rca));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
