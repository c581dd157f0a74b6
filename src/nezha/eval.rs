//! `causeway eval nezha DIR`: every labelled case of a Nezha-format data set
//! through the same pipeline as `serve`, and what detection made of it.
//!
//! Each case runs in a processor of its own (fresh data directory), fed in
//! event-time order with 10-second requests, as a live SDK would send them:
//! first the fault-free baseline minute, shifted in time to end where the
//! case's data begins, as its history; then the case's three minutes. So
//! every case starts from the same healthy history and no case learns from
//! another's fault.
//!
//! A case is detected when an incident's onset is within 60 s of the
//! injection; an incident whose onset is earlier than that lies in healthy
//! data (the baseline or the fault-free seconds before the injection) and
//! counts as a false alarm.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use causeway_model::{Anomaly, Incident, TenantId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use serde::Serialize;

use super::{FaultCase, case_minutes, convert_files, load_fault_list};
use crate::app::Session;
use crate::config::Config;

/// An incident within this much of the injection detects the case.
const ONSET_TOLERANCE_NS: i64 = 60_000_000_000;
/// Requests cover this much event time each.
const CHUNK_NS: u64 = 10_000_000_000;

/// A data set: its labelled days and its fault-free baseline.
#[derive(Debug)]
pub(crate) struct DataSet {
    /// Day directories with their cases.
    pub(crate) days: Vec<(PathBuf, Vec<FaultCase>)>,
    /// The baseline's day directories (`baseline/<day>`).
    pub(crate) baseline: Vec<PathBuf>,
}

impl DataSet {
    /// Finds `DIR/<day>/` directories with a `*fault_list.json`, and
    /// `DIR/baseline/<day>/`.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let mut days = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if !path.is_dir() || path.file_name().is_some_and(|n| n == "baseline") {
                continue;
            }
            let Some(list) = super::cli::find_fault_list(&path)? else {
                continue;
            };
            days.push((path, load_fault_list(&list)?));
        }
        days.sort_by(|a, b| a.0.cmp(&b.0));
        let mut baseline: Vec<PathBuf> = std::fs::read_dir(dir.join("baseline"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("trace").is_dir())
                    .collect()
            })
            .unwrap_or_default();
        baseline.sort();
        if days.is_empty() {
            anyhow::bail!(
                "{}: no day directory with a *fault_list.json",
                dir.display()
            );
        }
        if baseline.is_empty() {
            anyhow::bail!(
                "{}: no baseline/<day>/trace directory (the fault-free history each case starts from)",
                dir.display()
            );
        }
        Ok(Self { days, baseline })
    }

    /// Every minute of the baseline as one request.
    pub(crate) fn baseline_request(&self) -> anyhow::Result<ExportTraceServiceRequest> {
        let mut files = Vec::new();
        for day in &self.baseline {
            let mut minutes: Vec<PathBuf> = std::fs::read_dir(day.join("trace"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| super::minute_of(p).is_some())
                .collect();
            minutes.sort();
            for trace in minutes {
                let minute = super::minute_of(&trace).unwrap_or_default().to_owned();
                let log = day.join("log").join(format!("{minute}_log.csv"));
                files.push((trace, log.is_file().then_some(log)));
            }
        }
        Ok(convert_files(&files)?.0)
    }
}

/// What detection made of one case.
#[derive(Debug, Serialize)]
pub(crate) struct CaseResult {
    pub(crate) inject_time: String,
    pub(crate) service: String,
    pub(crate) kind: String,
    /// Onset of the detecting incident minus the injection, seconds.
    pub(crate) onset_delay_s: Option<f64>,
    /// Services of the detecting incident.
    pub(crate) services: Vec<String>,
    /// `metric subject` of its anomalies, in detection order.
    pub(crate) anomalies: Vec<String>,
    /// Incidents with an onset in healthy data.
    pub(crate) false_alarms: Vec<String>,
    /// The detecting incident and its anomalies, for RCA.
    #[serde(skip)]
    pub(crate) incident: Option<(Incident, Vec<Anomaly>)>,
}

/// Replays one case after the shifted baseline; returns what was found.
pub(crate) async fn run_case(
    day: &Path,
    case: &FaultCase,
    baseline: &ExportTraceServiceRequest,
    scratch: &Path,
) -> anyhow::Result<CaseResult> {
    let files = case_minutes(day, case);
    if files.is_empty() {
        anyhow::bail!("no span files for the case");
    }
    let (case_req, _) = convert_files(&files)?;
    let (case_start, _) = start_range(&case_req).context("the case has no spans")?;
    let mut history = baseline.clone();
    let (_, last) = start_range(&history).context("the baseline has no spans")?;
    // The baseline's last span starts a millisecond before the case's first.
    shift(&mut history, i128::from(case_start) - i128::from(last) - 1_000_000);

    let mut config = Config::default();
    config.storage.data_dir = scratch.to_owned();
    let tenant = TenantId::new("eval").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut session = Session::start(&config, tenant)?;
    for (i, chunk) in chunks(&history)
        .into_iter()
        .chain(chunks(&case_req))
        .enumerate()
    {
        session
            .submit(Bytes::from(chunk.encode_to_vec()), &format!("request {i}"))
            .await;
    }
    let report = session.finish().await?;
    if let Some(e) = report.errors.first() {
        anyhow::bail!("the pipeline refused a request: {e}");
    }
    let inject = case.inject_time_ns;
    let mut result = CaseResult {
        inject_time: case.inject_time.clone(),
        service: case.service.clone(),
        kind: case.kind.clone(),
        onset_delay_s: None,
        services: Vec::new(),
        anomalies: Vec::new(),
        false_alarms: Vec::new(),
        incident: None,
    };
    for (incident, anomalies) in report.incidents {
        let describe = |a: &Anomaly| format!("{} {}", a.metric, a.subject);
        if incident.onset_ns < inject - ONSET_TOLERANCE_NS {
            result.false_alarms.push(format!(
                "onset {:+.0}s: {}",
                (incident.onset_ns - inject) as f64 / 1e9,
                anomalies.iter().map(describe).collect::<Vec<_>>().join("; ")
            ));
            continue;
        }
        if result.incident.is_some() || incident.onset_ns > inject + ONSET_TOLERANCE_NS {
            continue;
        }
        result.onset_delay_s = Some((incident.onset_ns - inject) as f64 / 1e9);
        result.services = incident.services.iter().cloned().collect();
        result.anomalies = anomalies.iter().map(describe).collect();
        result.incident = Some((incident, anomalies));
    }
    Ok(result)
}

/// Earliest and latest span start.
fn start_range(req: &ExportTraceServiceRequest) -> Option<(u64, u64)> {
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
fn shift(req: &mut ExportTraceServiceRequest, delta_ns: i128) {
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
fn chunks(req: &ExportTraceServiceRequest) -> Vec<ExportTraceServiceRequest> {
    let mut by_chunk: std::collections::BTreeMap<u64, ExportTraceServiceRequest> =
        std::collections::BTreeMap::new();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let out = by_chunk.entry(span.start_time_unix_nano / CHUNK_NS).or_default();
                let r = match out
                    .resource_spans
                    .iter_mut()
                    .position(|o| o.resource == rs.resource)
                {
                    Some(i) => &mut out.resource_spans[i],
                    None => {
                        out.resource_spans.push(ResourceSpans {
                            resource: rs.resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: rs.schema_url.clone(),
                        });
                        out.resource_spans.last_mut().unwrap_or_else(|| unreachable!())
                    }
                };
                let s = match r.scope_spans.iter_mut().position(|o| o.scope == ss.scope) {
                    Some(i) => &mut r.scope_spans[i],
                    None => {
                        r.scope_spans.push(ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        });
                        r.scope_spans.last_mut().unwrap_or_else(|| unreachable!())
                    }
                };
                s.spans.push(span.clone());
            }
        }
    }
    by_chunk.into_values().collect()
}

/// Runs every case; prints a line per case and a summary.
pub(crate) fn eval_nezha(dir: &Path, json: bool) -> anyhow::Result<Summary> {
    let set = DataSet::open(dir)?;
    let baseline = set.baseline_request()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let scratch_root = std::env::temp_dir().join(format!("causeway-eval-{}", std::process::id()));
    let mut results = Vec::new();
    for (day, cases) in &set.days {
        for (i, case) in cases.iter().enumerate() {
            let scratch = scratch_root.join(format!(
                "{}-{i}",
                day.file_name().and_then(|n| n.to_str()).unwrap_or("day")
            ));
            let outcome = runtime.block_on(run_case(day, case, &baseline, &scratch));
            let _ = std::fs::remove_dir_all(&scratch);
            match outcome {
                Ok(r) => {
                    print_case(&r);
                    results.push(r);
                }
                Err(e) => {
                    tracing::warn!(case = %case.inject_time, error = %format!("{e:#}"), "case skipped");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch_root);
    let summary = Summary::of(&results);
    summary.print(json);
    Ok(summary)
}

#[allow(clippy::print_stdout)]
fn print_case(r: &CaseResult) {
    let found = match r.onset_delay_s {
        Some(d) => format!(
            "incident onset {d:+.0}s, services [{}]: {}",
            r.services.join(", "),
            r.anomalies.join("; ")
        ),
        None => "MISSED".to_owned(),
    };
    println!("{} {} {}: {found}", r.inject_time, r.kind, r.service);
    for f in &r.false_alarms {
        println!("    false alarm, {f}");
    }
}

/// Totals over the cases.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) cases: usize,
    /// Cases with an incident within 60 s of the injection.
    pub(crate) detected: usize,
    /// Cases with an incident in healthy data.
    pub(crate) false_alarm_cases: usize,
    /// Mean |onset − injection| of the detected cases, seconds.
    pub(crate) mean_abs_onset_s: f64,
}

impl Summary {
    fn of(results: &[CaseResult]) -> Self {
        let delays: Vec<f64> = results.iter().filter_map(|r| r.onset_delay_s).collect();
        Self {
            cases: results.len(),
            detected: delays.len(),
            false_alarm_cases: results.iter().filter(|r| !r.false_alarms.is_empty()).count(),
            mean_abs_onset_s: if delays.is_empty() {
                0.0
            } else {
                delays.iter().map(|d| d.abs()).sum::<f64>() / delays.len() as f64
            },
        }
    }

    #[allow(clippy::print_stdout)]
    fn print(&self, json: bool) {
        println!(
            "{} cases: {} detected (onset within 60 s), {} with a false alarm; mean |onset - injection| {:.1} s",
            self.cases, self.detected, self.false_alarm_cases, self.mean_abs_onset_s
        );
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "cases": self.cases,
                    "detected": self.detected,
                    "false_alarm_cases": self.false_alarm_cases,
                    "mean_abs_onset_s": self.mean_abs_onset_s,
                })
            );
        }
    }
}
