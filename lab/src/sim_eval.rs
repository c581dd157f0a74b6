//! `causeway eval simulate`: root-cause accuracy on simulated faults of
//! every kind, in every service of the simulated web shop.
//!
//! The Nezha data set has 28 cases of three fault types in one application;
//! a method tuned to it could still fail on a fault it has not seen. This
//! sweep injects each fault kind into each service it applies to (edge
//! latency on each call edge between instrumented services), at times of
//! day from the night's low to the afternoon's peak, each with its own
//! seed, runs every scenario through the same pipeline and correlator as
//! `serve`, and scores the RCA of the incident whose onset is nearest the
//! fault's start, within 60 s, as `eval nezha` does: the rank of the true service, AC@1..5 and Avg@5,
//! overall and per kind. `--mild` adds each scenario again at a third of
//! the magnitude (latency ×3, CPU ×2, +60 ms on an edge, 10% failing), where
//! a fault is harder to tell from noise.
//!
//! No scenario's outcome is used to set anything: the figure is a check
//! on the method, alongside the real data's.

use std::time::Duration;

use causeway_benches::{Fault, FaultKind, SimConfig};
use serde::Serialize;

use crate::scoring::{Outcome, Summary};
use crate::simulate::{Analysed, analysed_with};

const MINUTE_NS: u64 = 60_000_000_000;
/// An incident whose onset is within this much of the fault's start
/// detects it (as `eval nezha` counts).
const TOLERANCE_NS: i64 = 60_000_000_000;

/// `causeway eval simulate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimEvalArgs {
    /// Mean traces per second over a day (about 13 spans each).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rate: f64,
    /// Healthy minutes before each fault (the history detection learns).
    #[arg(long, default_value_t = 20)]
    pub(crate) lead_minutes: u64,
    /// Minutes each fault lasts (and is simulated).
    #[arg(long, default_value_t = 6)]
    pub(crate) fault_minutes: u64,
    /// First seed (scenario i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Also every scenario at a third of the magnitude.
    #[arg(long)]
    pub(crate) mild: bool,
    /// Only scenarios whose name contains this (e.g. `cpu:` or `->payment`).
    #[arg(long)]
    pub(crate) only: Option<String>,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 2)]
    pub(crate) jobs: usize,
    /// End with one JSON line of totals.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also list every incident of each scenario, with its anomalies.
    #[arg(long, short)]
    pub(crate) verbose: bool,
}

/// One injected fault and what causeway made of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    /// `kind:target`, with `(mild)` for the reduced magnitude.
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) service: String,
    /// Fault start, RFC 3339.
    pub(crate) start: String,
    pub(crate) seed: u64,
    /// Onset of the scoring incident minus the fault's start, seconds.
    pub(crate) onset_delay_s: Option<f64>,
    /// The scoring incident involves the faulty service.
    pub(crate) on_culprit: bool,
    /// Incidents that began before the fault (healthy traffic).
    pub(crate) false_alarms: usize,
    /// Rank of the true service among the RCA's hypotheses (from 1).
    pub(crate) rca_rank: Option<usize>,
    /// The RCA's services, in rank order.
    pub(crate) rca_services: Vec<String>,
    /// Set when the pipeline failed on the scenario.
    pub(crate) error: Option<String>,
    /// Every incident, with its anomalies, in words.
    #[serde(skip)]
    pub(crate) incidents: Vec<String>,
}

/// The fault kinds at full or reduced magnitude.
fn kinds(service: &str, mild: bool) -> Vec<FaultKind> {
    let s = service.to_owned();
    let (slow, cpu, share) = if mild {
        (3.0, 2.0, 0.1)
    } else {
        (10.0, 4.0, 0.3)
    };
    vec![
        FaultKind::Latency {
            service: s.clone(),
            operation: None,
            factor: slow,
        },
        FaultKind::ErrorBurst {
            service: s.clone(),
            rate: share,
        },
        FaultKind::NewException {
            service: s.clone(),
            exception: "com.shop.InventoryMismatchException".to_owned(),
            rate: share,
        },
        FaultKind::CpuSaturation {
            service: s.clone(),
            factor: cpu,
        },
        FaultKind::BadDeploy {
            service: s,
            version: "9.9.9-rc1".to_owned(),
            rate: share,
        },
    ]
}

/// Every scenario of the sweep: each kind in each instrumented service,
/// and edge latency on each call edge between instrumented services.
pub(crate) fn scenarios(args: &SimEvalArgs) -> Vec<(String, SimConfig)> {
    let shop = causeway_benches::web_shop();
    // Instrumented services have a version; peers (database, cache,
    // queue) are seen only through their clients.
    let instrumented: Vec<usize> = (0..shop.len())
        .filter(|&i| !shop[i].version.is_empty())
        .collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for &c in &instrumented {
        for op in &shop[c].operations {
            for call in &op.calls {
                let e = (c, call.service);
                if call.service != c && instrumented.contains(&call.service) && !edges.contains(&e)
                {
                    edges.push(e);
                }
            }
        }
    }
    let mut faults: Vec<(String, FaultKind)> = Vec::new();
    for mild in [false, true] {
        if mild && !args.mild {
            continue;
        }
        let tag = if mild { " (mild)" } else { "" };
        for &i in &instrumented {
            for kind in kinds(&shop[i].name, mild) {
                faults.push((format!("{}:{}{tag}", kind.name(), shop[i].name), kind));
            }
        }
        for &(c, s) in &edges {
            let kind = FaultKind::EdgeLatency {
                client: shop[c].name.to_owned(),
                server: shop[s].name.to_owned(),
                added: Duration::from_millis(if mild { 60 } else { 200 }),
            };
            faults.push((
                format!("{}:{}->{}{tag}", kind.name(), shop[c].name, shop[s].name),
                kind,
            ));
        }
    }
    let day = SimConfig::default().start_ns;
    faults
        .into_iter()
        .enumerate()
        .filter(|(_, (name, _))| args.only.as_deref().is_none_or(|o| name.contains(o)))
        .map(|(i, (name, kind))| {
            // Hours 01, 04, …, 22: the night's low to the afternoon's peak.
            let hour = (1 + 3 * (i as u64 % 8)) % 24;
            let start_ns = day + hour * 60 * MINUTE_NS;
            let fault_start = start_ns + args.lead_minutes * MINUTE_NS;
            let cfg = SimConfig {
                seed: args.seed + i as u64,
                start_ns,
                duration: Duration::from_secs((args.lead_minutes + args.fault_minutes) * 60),
                rate: args.rate,
                faults: vec![Fault {
                    kind,
                    start_ns: fault_start,
                    end_ns: fault_start + args.fault_minutes * MINUTE_NS,
                }],
                ..SimConfig::default()
            };
            (name, cfg)
        })
        .collect()
}

/// Scores one scenario's incidents against its fault: the incident whose
/// onset is nearest the fault's start, within 60 s, is the fault's; one
/// that began earlier is a false alarm.
pub(crate) fn score(name: &str, cfg: &SimConfig, runs: &[Analysed]) -> ScenarioResult {
    let fault = &cfg.faults[0];
    let begin = i64::try_from(fault.start_ns).unwrap_or(i64::MAX);
    let service = fault.kind.service().to_owned();
    let hit = runs
        .iter()
        .filter(|(i, _, _)| (i.onset_ns - begin).abs() <= TOLERANCE_NS)
        .min_by_key(|(i, _, _)| (i.onset_ns - begin).abs());
    let rca_services: Vec<String> = hit
        .map(|(_, _, rca)| rca.hypotheses.iter().map(|h| h.service.clone()).collect())
        .unwrap_or_default();
    let on_culprit = hit.is_some_and(|(i, _, _)| i.services.contains(&service));
    ScenarioResult {
        name: name.to_owned(),
        kind: fault.kind.name().to_owned(),
        rca_rank: rca_services
            .iter()
            .position(|s| *s == service)
            .map(|r| r + 1),
        service,
        start: crate::simulate::rfc3339(fault.start_ns),
        seed: cfg.seed,
        onset_delay_s: hit.map(|(i, _, _)| (i.onset_ns - begin) as f64 / 1e9),
        on_culprit,
        false_alarms: runs
            .iter()
            .filter(|(i, _, _)| i.onset_ns < begin - TOLERANCE_NS)
            .count(),
        rca_services,
        error: None,
        incidents: runs
            .iter()
            .map(|(i, anomalies, _)| {
                format!(
                    "incident {} onset {:+.0}s [{}]: {}",
                    i.id,
                    (i.onset_ns - begin) as f64 / 1e9,
                    i.services.iter().cloned().collect::<Vec<_>>().join(", "),
                    anomalies
                        .iter()
                        .map(|a| format!(
                            "{} {} at {:+.0}s ({:.3} vs {:.3})",
                            a.metric,
                            a.subject,
                            (a.onset_ns - begin) as f64 / 1e9,
                            a.observed,
                            a.expected
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
            .collect(),
    }
}

/// Runs every scenario, `jobs` at a time, printing a line per scenario as
/// it completes.
pub(crate) fn run_all(args: &SimEvalArgs) -> Vec<ScenarioResult> {
    let all = scenarios(args);
    crate::bench_eval::parallel(all.len() as u64, args.jobs, |i| {
        let (name, cfg) = &all[i as usize];
        let result = match analysed_with(cfg.clone(), &[], &|_, _, _| {}) {
            Ok(runs) => score(name, cfg, &runs),
            Err(e) => ScenarioResult {
                error: Some(format!("{e:#}")),
                ..score(name, cfg, &[])
            },
        };
        print_scenario(&result, args.verbose);
        result
    })
}

#[allow(clippy::print_stdout)]
fn print_scenario(r: &ScenarioResult, verbose: bool) {
    let rca = match (r.rca_rank, r.onset_delay_s, &r.error) {
        (_, _, Some(e)) => format!("FAILED: {e}"),
        (_, None, _) => "MISSED (no incident with its onset within 60 s)".to_owned(),
        (Some(k), Some(d), _) => format!("RCA rank {k}, onset {d:+.0}s"),
        (None, Some(d), _) => format!("RCA misses it, onset {d:+.0}s"),
    };
    let alarms = if r.false_alarms > 0 {
        format!(", {} incident(s) before the fault", r.false_alarms)
    } else {
        String::new()
    };
    println!(
        "{} at {} (seed {}): {rca} [{}]{alarms}",
        r.name,
        r.start,
        r.seed,
        r.rca_services
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if verbose {
        for i in &r.incidents {
            println!("    {i}");
        }
    }
}

/// Runs the sweep and prints the totals; fails when the pipeline failed
/// on a scenario.
pub(crate) fn eval_simulate(args: &SimEvalArgs) -> bool {
    let results = run_all(args);
    let outcomes: Vec<Outcome<'_>> = results
        .iter()
        .map(|r| Outcome {
            kind: &r.kind,
            onset_delay_s: r.onset_delay_s,
            on_culprit: r.on_culprit,
            false_alarm: r.false_alarms > 0,
            rank: r.rca_rank,
        })
        .collect();
    Summary::of(&outcomes).print(args.json);
    results.iter().all(|r| r.error.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SimEvalArgs {
        SimEvalArgs {
            rate: 10.0,
            lead_minutes: 20,
            fault_minutes: 6,
            seed: 1,
            mild: false,
            only: None,
            jobs: 1,
            json: false,
            verbose: false,
        }
    }

    #[test]
    fn the_sweep_covers_every_kind_in_every_instrumented_service_and_edge() {
        let all = scenarios(&args());
        // 10 instrumented services × 5 kinds, plus the call edges between
        // instrumented services.
        let edges = all
            .iter()
            .filter(|(n, _)| n.starts_with("edge-latency:"))
            .count();
        assert_eq!(all.len() - edges, 50);
        assert!(
            all.iter()
                .any(|(n, _)| n == "edge-latency:checkout->payment")
        );
        assert!(
            all.iter()
                .any(|(n, _)| n == "edge-latency:recommendation->product-catalog")
        );
        assert!(
            !all.iter()
                .any(|(n, _)| n.contains("postgres") || n.contains("redis"))
        );
        // Every scenario has its own seed; times of day vary.
        let mut seeds: Vec<u64> = all.iter().map(|(_, c)| c.seed).collect();
        seeds.dedup();
        assert_eq!(seeds.len(), all.len());
        let hours: std::collections::BTreeSet<u64> = all
            .iter()
            .map(|(_, c)| c.start_ns / (60 * MINUTE_NS) % 24)
            .collect();
        assert_eq!(hours.len(), 8, "{hours:?}");
        let mild = scenarios(&SimEvalArgs {
            mild: true,
            ..args()
        });
        assert_eq!(mild.len(), 2 * all.len());
        let only = scenarios(&SimEvalArgs {
            only: Some("cpu:".to_owned()),
            ..args()
        });
        assert_eq!(only.len(), 10);
    }

    #[test]
    fn a_scenario_is_scored_on_the_incident_nearest_its_start() {
        let (name, cfg) = scenarios(&args())
            .into_iter()
            .find(|(n, _)| n == "errors:payment")
            .expect("scenario");
        let begin = i64::try_from(cfg.faults[0].start_ns).expect("fits");
        let analysed = |onset: i64, services: &[&str]| -> Analysed {
            use causeway_model::{
                CauseKind, Hypothesis, Incident, IncidentState, RcaReport, Severity,
            };
            let hypotheses = services
                .iter()
                .zip(1..)
                .map(|(s, rank)| Hypothesis {
                    rank,
                    service: (*s).to_owned(),
                    operation: None,
                    cause: CauseKind::CodeError,
                    confidence: 0.5,
                    score: 1.0,
                    change: None,
                    evidence: Vec::new(),
                    precedents: Vec::new(),
                })
                .collect();
            let incident = Incident {
                id: 1,
                state: IncidentState::Open,
                onset_ns: onset,
                updated_ns: onset,
                last_onset_ns: None,
                resolved_ns: None,
                severity: Severity::Major,
                services: services.iter().map(|s| (*s).to_owned()).collect(),
                anomalies: Vec::new(),
            };
            let rca = RcaReport {
                id: 1,
                tenant: "sim".into(),
                incident: 1,
                window_start_ns: onset,
                window_end_ns: onset,
                reference_spans: 0,
                reference_seconds: 0,
                summary: String::new(),
                narrative: String::new(),
                narrative_by: "template".into(),
                hypotheses,
                impacted_services: Vec::new(),
                reports: Vec::new(),
                timeline: Vec::new(),
                next_steps: Vec::new(),
                feedback: Vec::new(),
                computed_ns: 0,
                incident_updated_ns: onset,
            };
            (incident, Vec::new(), rca)
        };
        let runs = vec![
            analysed(begin - 5 * 60_000_000_000, &["cart"]),
            analysed(begin + 30_000_000_000, &["checkout", "payment"]),
            analysed(begin + 20_000_000_000, &["frontend", "checkout", "payment"]),
        ];
        let r = score(&name, &cfg, &runs);
        assert_eq!(r.false_alarms, 1);
        assert_eq!(r.onset_delay_s, Some(20.0));
        assert_eq!(r.rca_rank, Some(3));
        let early = score(
            &name,
            &cfg,
            &[analysed(begin - 30_000_000_000, &["payment"])],
        );
        assert_eq!((early.rca_rank, early.false_alarms), (Some(1), 0));
        let late = score(
            &name,
            &cfg,
            &[analysed(begin + 120_000_000_000, &["payment"])],
        );
        assert_eq!(late.onset_delay_s, None);
        assert_eq!(late.rca_rank, None);
    }
}
