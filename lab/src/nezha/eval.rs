//! `causeway eval nezha DIR`: every labelled case of a Nezha-format data set
//! through the same pipeline as `serve`, and what detection made of it.
//!
//! The whole data set goes through one processor (a fresh data directory),
//! in event-time order, in 10-second requests as a live SDK would send
//! them, as a long-running causeway would have seen that day: first the
//! fault-free baseline, shifted in time to end just before the first case's
//! data (the history detection starts from), then every case's three
//! minutes. Between cases the data set has gaps; detection sees no windows
//! there, not empty ones.
//!
//! A data set without a baseline (or with an empty one) is replayed the
//! same way without it: as in a live deployment, which never has an
//! explicit fault-free minute, detection and the RCA's reference learn
//! from whatever data came before each fault (earlier cases and the
//! healthy seconds before the injection). The summary says so.
//!
//! A case whose minute files are not all there is incomplete: it is still
//! replayed and scored with what exists, counted apart, and named.
//!
//! A case is detected when an incident's onset is within 60 s of the
//! injection (of several, the one nearest it is the case's incident, whose
//! RCA is scored); an incident whose onset is in the case's data earlier than
//! that lies in its healthy seconds and counts as a false alarm, as does
//! any incident in the baseline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use causeway_model::{Anomaly, Incident, TenantId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Serialize;

use super::requests::{CHUNK_NS, chunks, shift, start_range};
use super::{FaultCase, case_minutes, convert_files, load_fault_list};
use crate::scoring::{Outcome, Summary};
use causeway_app::Session;
use causeway_app::config::Config;

/// An incident within this much of the injection detects the case.
const ONSET_TOLERANCE_NS: i64 = 60_000_000_000;

/// A data set: its labelled days and its fault-free baseline.
#[derive(Debug)]
pub(crate) struct DataSet {
    /// Day directories with their cases.
    pub(crate) days: Vec<(PathBuf, Vec<FaultCase>)>,
    /// The baseline's day directories (`baseline/<day>`); may be none.
    pub(crate) baseline: Vec<PathBuf>,
}

impl DataSet {
    /// Finds `DIR/<day>/` directories with a `*fault_list.json`, and
    /// `DIR/baseline/<day>/` when there is one.
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
            tracing::warn!(
                dir = %dir.display(),
                "no baseline/<day>/trace directory: detection learns from the data before each fault"
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
    /// Incidents with an onset in the case's healthy seconds before the
    /// injection (more than 60 s before it).
    pub(crate) false_alarms: Vec<String>,
    /// The detecting incident and its anomalies, for RCA.
    #[serde(skip)]
    pub(crate) incident: Option<(Incident, Vec<Anomaly>)>,
    /// Rank of the true root-cause service among the RCA's hypotheses
    /// (from 1); `None` when no incident, no RCA, or not ranked.
    pub(crate) rca_rank: Option<usize>,
    /// The RCA's ranked services.
    pub(crate) rca_services: Vec<String>,
    /// The strongest evidence of the first hypotheses, in words.
    #[serde(skip)]
    pub(crate) rca_why: Vec<String>,
    /// Minutes of the case with no span file (0 for a complete case).
    pub(crate) missing_minutes: usize,
    /// Services that call the culprit or that it calls, in the data.
    #[serde(skip)]
    pub(crate) neighbours: Vec<String>,
}

impl CaseResult {
    /// The detecting incident names the culprit or a direct neighbour.
    pub(crate) fn near_culprit(&self) -> bool {
        self.onset_delay_s.is_some()
            && (self.services.contains(&self.service)
                || self.neighbours.iter().any(|n| self.services.contains(n)))
    }
}

/// Who calls whom in the requests: per service, the services it calls or
/// is called by (a span whose parent is in another service).
fn call_graph<'a>(
    requests: impl Iterator<Item = &'a ExportTraceServiceRequest>,
) -> std::collections::HashMap<String, Vec<String>> {
    use std::collections::HashMap;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for req in requests {
        let mut service_of: HashMap<(&[u8], &[u8]), &str> = HashMap::new();
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.as_str()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                service_of.insert((&span.trace_id, &span.span_id), service);
            }
        }
        for rs in &req.resource_spans {
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let (Some(&me), Some(&parent)) = (
                    service_of.get(&(span.trace_id.as_slice(), span.span_id.as_slice())),
                    service_of.get(&(span.trace_id.as_slice(), span.parent_span_id.as_slice())),
                ) else {
                    continue;
                };
                if me == parent {
                    continue;
                }
                for (a, b) in [(me, parent), (parent, me)] {
                    let e = out.entry(a.to_owned()).or_default();
                    if !e.iter().any(|x| x == b) {
                        e.push(b.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// One labelled case, converted.
struct Prepared<'a> {
    case: &'a FaultCase,
    /// Minutes with no span file.
    missing: usize,
    request: ExportTraceServiceRequest,
    /// Earliest and latest span start.
    range: (u64, u64),
}

/// Replays the whole data set in event-time order through one pipeline,
/// as a long-running causeway would have seen it: the fault-free baseline
/// first (shifted to end just before the first case's data: it is the
/// history detection learns from), then every case's minutes. Returns the
/// per-case results, the baseline's false alarms (`None` when there is
/// no baseline with spans) and the cases that could not be replayed at
/// all (no span in any of their minutes).
pub(crate) async fn run_all(
    set: &DataSet,
    scratch: &Path,
    verbose: bool,
) -> anyhow::Result<Replayed> {
    let mut prepared = Vec::new();
    let mut unplayable = Vec::new();
    for (day, cases) in &set.days {
        for case in cases {
            let missing = super::missing_minutes(day, case);
            let files = case_minutes(day, case);
            let converted = if files.is_empty() {
                None
            } else {
                let (request, _) = convert_files(&files)?;
                start_range(&request).map(|range| (request, range))
            };
            let Some((request, range)) = converted else {
                tracing::warn!(case = %case.inject_time, "the case has no spans: reported as incomplete, not scored");
                unplayable.push(case.clone());
                continue;
            };
            if missing > 0 {
                tracing::warn!(case = %case.inject_time, missing, "minute files missing: the case is scored on what exists and reported as incomplete");
            }
            prepared.push(Prepared {
                case,
                missing,
                request,
                range,
            });
        }
    }
    prepared.sort_by_key(|p| p.range.0);
    let first = prepared.first().context("no case with spans")?.range.0;
    let mut history = set.baseline_request()?;
    // The baseline's last span starts a millisecond before the first case's
    // first span; without one, the replay starts with the first case.
    let baseline_range = match start_range(&history) {
        Some((b0, b1)) => {
            let delta = i128::from(first) - i128::from(b1) - 1_000_000;
            shift(&mut history, delta);
            Some((
                i64::try_from(i128::from(b0) + delta).unwrap_or(0),
                i64::try_from(i128::from(b1) + delta).unwrap_or(0),
            ))
        }
        None => {
            tracing::warn!(
                "the baseline has no spans: detection and the RCA's reference learn from the data before each fault"
            );
            None
        }
    };

    let mut config = Config::default();
    config.storage.data_dir = scratch.to_owned();
    let tenant = TenantId::new("eval").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut session = Session::start(&config, tenant.clone())?;
    let mut n = 0;
    let history = baseline_range.is_some().then_some(&history);
    for request in history
        .into_iter()
        .chain(prepared.iter().map(|p| &p.request))
    {
        for chunk in chunks(request) {
            n += 1;
            session
                .submit(Bytes::from(chunk.encode_to_vec()), &format!("request {n}"))
                .await;
        }
    }
    let report = session.finish().await?;
    if let Some(e) = report.errors.first() {
        anyhow::bail!("the pipeline refused a request: {e}");
    }
    let describe = |anomalies: &[Anomaly]| {
        anomalies
            .iter()
            .map(|a| format!("{} {}", a.metric, a.subject))
            .collect::<Vec<_>>()
    };
    let graph = call_graph(prepared.iter().map(|p| &p.request));
    let mut results: Vec<CaseResult> = prepared
        .iter()
        .map(|p| CaseResult {
            inject_time: p.case.inject_time.clone(),
            service: p.case.service.clone(),
            kind: p.case.kind.clone(),
            onset_delay_s: None,
            services: Vec::new(),
            anomalies: Vec::new(),
            false_alarms: Vec::new(),
            incident: None,
            rca_rank: None,
            rca_services: Vec::new(),
            rca_why: Vec::new(),
            missing_minutes: p.missing,
            neighbours: graph.get(&p.case.service).cloned().unwrap_or_default(),
        })
        .collect();
    let all_incidents: Vec<Incident> = report.incidents.iter().map(|(i, _)| i.clone()).collect();
    let mut baseline_alarms = Vec::new();
    for (incident, anomalies) in report.incidents {
        let onset = incident.onset_ns;
        if verbose {
            print_incident(&incident, &anomalies);
        }
        if baseline_range.is_some_and(|(b0, b1)| (b0..=b1 + CHUNK_NS as i64).contains(&onset)) {
            baseline_alarms.push(describe(&anomalies).join("; "));
            continue;
        }
        // The case whose data holds the onset.
        let Some((p, r)) = prepared.iter().zip(results.iter_mut()).find(|(p, _)| {
            let (lo, hi) = (p.range.0 as i64, p.range.1 as i64);
            (lo - CHUNK_NS as i64..=hi).contains(&onset)
        }) else {
            continue;
        };
        let inject = p.case.inject_time_ns;
        if onset < inject - ONSET_TOLERANCE_NS {
            r.false_alarms.push(format!(
                "onset {:+.0}s: {}",
                (onset - inject) as f64 / 1e9,
                describe(&anomalies).join("; ")
            ));
        } else if onset <= inject + ONSET_TOLERANCE_NS
            && r.incident
                .as_ref()
                .is_none_or(|(i, _)| (onset - inject).abs() < (i.onset_ns - inject).abs())
        {
            // Of several incidents within the tolerance, the fault's is
            // the one whose onset is nearest the injection.
            r.onset_delay_s = Some((onset - inject) as f64 / 1e9);
            r.services = incident.services.iter().cloned().collect();
            r.anomalies = describe(&anomalies);
            r.incident = Some((incident, anomalies));
        }
    }
    rca_all(
        &scratch.join("spans"),
        &tenant,
        &all_incidents,
        &mut results,
    )?;
    Ok(Replayed {
        results,
        baseline_alarms: baseline_range.map(|_| baseline_alarms),
        unplayable,
    })
}

/// What replaying a data set gave.
pub(crate) struct Replayed {
    /// One per case with spans, in time order.
    pub(crate) results: Vec<CaseResult>,
    /// Incidents in the baseline; `None` without a baseline.
    pub(crate) baseline_alarms: Option<Vec<String>>,
    /// Cases with no span in any of their minutes: not scored.
    pub(crate) unplayable: Vec<FaultCase>,
}

/// The RCA of every detected case's incident, as `serve` computes it, and
/// the rank of the true root-cause service in it.
fn rca_all(
    spans_dir: &Path,
    tenant: &TenantId,
    incidents: &[Incident],
    results: &mut [CaseResult],
) -> anyhow::Result<()> {
    use causeway_correlator::{Case, CorrelatorConfig, StoreSource, excluded_ranges, investigate};
    let store = causeway_store::SpanStore::open(spans_dir, Default::default())
        .context("opening the replayed spans")?;
    let config = CorrelatorConfig::default();
    for r in results.iter_mut() {
        let Some((incident, anomalies)) = &r.incident else {
            continue;
        };
        let case = Case {
            tenant,
            incident,
            anomalies,
            excluded: &excluded_ranges(incident, incidents),
            signals: &[],
            now_ns: incident.updated_ns,
            feedback: &[],
            history: &causeway_correlator::history::History::default(),
        };
        let report = investigate(&StoreSource(&store, tenant), case, &config)?;
        r.rca_services = report
            .hypotheses
            .iter()
            .map(|h| h.service.clone())
            .collect();
        r.rca_rank = r
            .rca_services
            .iter()
            .position(|s| *s == r.service)
            .map(|i| i + 1);
        // The first two hypotheses, and the true culprit's when it is
        // ranked lower: what outranked it, and by how much.
        let truth = report
            .hypotheses
            .iter()
            .skip(2)
            .filter(|h| h.service == r.service);
        r.rca_why = report
            .hypotheses
            .iter()
            .take(2)
            .chain(truth)
            .filter_map(|h| {
                h.evidence.first().map(|e| {
                    format!(
                        "{:.1} {}",
                        h.score,
                        causeway_correlator::report::describe_evidence(e)
                    )
                })
            })
            .collect();
    }
    Ok(())
}

/// Runs every case; prints a line per case and a summary.
pub(crate) fn eval_nezha(dir: &Path, json: bool, verbose: bool) -> anyhow::Result<Summary> {
    let set = DataSet::open(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let scratch = std::env::temp_dir().join(format!("causeway-eval-{}", std::process::id()));
    let outcome = runtime.block_on(run_all(&set, &scratch, verbose));
    let _ = std::fs::remove_dir_all(&scratch);
    let Replayed {
        results,
        baseline_alarms,
        unplayable,
    } = outcome?;
    for r in &results {
        print_case(r);
    }
    fn outcome_of(r: &CaseResult) -> Outcome<'_> {
        Outcome {
            kind: &r.kind,
            onset_delay_s: r.onset_delay_s,
            on_culprit: r.services.contains(&r.service),
            false_alarm: !r.false_alarms.is_empty(),
            rank: r.rca_rank,
        }
    }
    let mut summary = Summary::of(&results.iter().map(outcome_of).collect::<Vec<_>>());
    let complete: Vec<Outcome<'_>> = results
        .iter()
        .filter(|r| r.missing_minutes == 0)
        .map(outcome_of)
        .collect();
    summary.complete = Some(crate::scoring::Completeness {
        complete_cases: complete.len(),
        complete_accuracy: crate::scoring::Accuracy::of(
            &complete.iter().map(|o| o.rank).collect::<Vec<_>>(),
        ),
        incomplete: results
            .iter()
            .filter(|r| r.missing_minutes > 0)
            .map(|r| {
                format!(
                    "{} {} ({} of 3 minutes missing)",
                    r.inject_time, r.service, r.missing_minutes
                )
            })
            .chain(
                unplayable
                    .iter()
                    .map(|c| format!("{} {} (no spans: not scored)", c.inject_time, c.service)),
            )
            .collect(),
    });
    summary.baseline_incidents = baseline_alarms.as_ref().map(Vec::len);
    summary.detected_near_culprit = Some(results.iter().filter(|r| r.near_culprit()).count());
    match &baseline_alarms {
        Some(alarms) => print_baseline(alarms),
        None => print_no_baseline(),
    }
    summary.print(json);
    Ok(summary)
}

/// One incident with its anomalies' onsets relative to its own.
#[allow(clippy::print_stdout)]
fn print_incident(incident: &Incident, anomalies: &[Anomaly]) {
    let onset = incident.onset_ns;
    println!(
        "incident {} onset {}:{:02} ({}), updated +{}s: {}",
        incident.id,
        super::minute_name(onset.div_euclid(60_000_000_000)),
        onset.rem_euclid(60_000_000_000) / 1_000_000_000,
        incident.state.as_str(),
        (incident.updated_ns - onset) / 1_000_000_000,
        anomalies
            .iter()
            .map(|a| format!(
                "{} {} at +{}s (detected +{}s)",
                a.metric,
                a.subject,
                (a.onset_ns - onset) / 1_000_000_000,
                (a.detected_ns - onset) / 1_000_000_000
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

#[allow(clippy::print_stdout)]
fn print_baseline(alarms: &[String]) {
    for a in alarms {
        println!("baseline minute: incident: {a}");
    }
}

#[allow(clippy::print_stdout)]
fn print_no_baseline() {
    println!(
        "no fault-free baseline: detection and the RCA's reference learned from the data before each fault"
    );
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
    let rca = match r.rca_rank {
        Some(k) => format!("RCA rank {k}"),
        None if r.rca_services.is_empty() => "no RCA".to_owned(),
        None => "RCA misses it".to_owned(),
    };
    println!(
        "{} {} {}: {rca} [{}]; {found}",
        r.inject_time,
        r.kind,
        r.service,
        r.rca_services
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in &r.rca_why {
        println!("    RCA: {w}");
    }
    for f in &r.false_alarms {
        println!("    false alarm, {f}");
    }
}
