//! `causeway eval bench`: root-cause accuracy on random applications
//! with random faults, a benchmark that cannot be fitted to one
//! application.
//!
//! Each seed draws an application (10 to 60 services, up to 6 levels,
//! databases, caches, a queue, uninstrumented services, low-volume paths),
//! its traffic and noise (background errors and recurring error bursts,
//! drift, request-mix changes, data gaps) and one fault of the kinds chaos
//! benchmarks inject ([`causeway_benches::BENCH_KINDS`]); see
//! `benches/src/random.rs`. Every scenario runs through the same pipeline
//! and correlator as `serve`.
//!
//! Seeds are split: the **tune** set (seeds from 1) is for looking at while
//! developing; the **test** set (seeds from 1,000,000) is what
//! `docs/evaluation.md` reports, and nothing is chosen by its outcome.
//!
//! Scored per scenario: detection (an incident whose onset is within 60 s
//! of the fault), detection precision (that incident names the culprit
//! or a service it calls or is called by; incidents before the fault are
//! false alarms), and the rank of the culprit in the incident's RCA. With
//! `--healthy-hours`, a stretch of healthy traffic of the first
//! applications is also run, where every incident is a false alarm.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_benches::{BENCH_KINDS, Scenario, SimConfig};
use serde::Serialize;

use crate::scoring::{Outcome, Summary};
use crate::simulate::{Analysed, analysed_with};

/// An incident whose onset is within this much of the fault's start
/// detects it (as `eval nezha` counts).
const TOLERANCE_NS: i64 = 60_000_000_000;
/// First seed of the test set: far from the tune set's, so the two never
/// meet however many tune scenarios are run.
const TEST_SEEDS: u64 = 1_000_000;

/// Which seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub(crate) enum SeedSet {
    /// Seeds 1, 2, …: for development.
    Tune,
    /// Seeds 1,000,000, …: for reporting.
    Test,
}

/// `causeway eval bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The seed set.
    #[arg(long, value_enum, default_value = "test")]
    pub(crate) set: SeedSet,
    /// Scenarios (one seed each).
    #[arg(long, default_value_t = 500)]
    pub(crate) scenarios: u64,
    /// Healthy minutes before each fault (the history detection learns).
    #[arg(long, default_value_t = 20)]
    pub(crate) lead_minutes: u64,
    /// Minutes each fault lasts (and is simulated).
    #[arg(long, default_value_t = 6)]
    pub(crate) fault_minutes: u64,
    /// Only this fault kind (e.g. `network-delay`).
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Also this many hours of healthy traffic (one hour per application
    /// of the set's first seeds), where any incident is a false alarm.
    #[arg(long, default_value_t = 0)]
    pub(crate) healthy_hours: u64,
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

/// One scenario and what causeway made of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchResult {
    pub(crate) seed: u64,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) service: String,
    /// Services in the application (instrumented).
    pub(crate) services: usize,
    pub(crate) onset_delay_s: Option<f64>,
    /// The detecting incident names the culprit.
    pub(crate) on_culprit: bool,
    /// … or a service it calls or is called by.
    pub(crate) on_culprit_or_neighbour: bool,
    pub(crate) false_alarms: usize,
    pub(crate) rca_rank: Option<usize>,
    pub(crate) rca_services: Vec<String>,
    pub(crate) error: Option<String>,
    #[serde(skip)]
    pub(crate) incidents: Vec<String>,
}

fn seed_of(args: &BenchArgs, i: u64) -> u64 {
    match args.set {
        SeedSet::Tune => 1 + i,
        SeedSet::Test => TEST_SEEDS + i,
    }
}

fn scenario_of(args: &BenchArgs, i: u64) -> Scenario {
    causeway_benches::scenario(
        seed_of(args, i),
        Duration::from_secs(args.lead_minutes * 60),
        Duration::from_secs(args.fault_minutes * 60),
        args.kind.as_deref(),
    )
}

/// The culprit's direct neighbours in the application: services it
/// calls or that call it.
fn neighbours(cfg: &SimConfig, culprit: &str) -> Vec<String> {
    let Some((services, _)) = &cfg.topology else {
        return Vec::new();
    };
    let Some(c) = services.iter().position(|s| s.name == culprit) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, s) in services.iter().enumerate() {
        for o in &s.operations {
            for call in &o.calls {
                let other = if i == c {
                    call.service
                } else if call.service == c {
                    i
                } else {
                    continue;
                };
                let name = services[other].name.clone();
                if other != c && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Scores one scenario's incidents against its fault.
pub(crate) fn score(s: &Scenario, runs: &[Analysed]) -> BenchResult {
    let fault = &s.config.faults[0];
    let begin = i64::try_from(fault.start_ns).unwrap_or(i64::MAX);
    let hit = runs
        .iter()
        .filter(|(i, _, _)| (i.onset_ns - begin).abs() <= TOLERANCE_NS)
        .min_by_key(|(i, _, _)| (i.onset_ns - begin).abs());
    let rca_services: Vec<String> = hit
        .map(|(_, _, rca)| rca.hypotheses.iter().map(|h| h.service.clone()).collect())
        .unwrap_or_default();
    let near = neighbours(&s.config, &s.service);
    let on_culprit = hit.is_some_and(|(i, _, _)| i.services.contains(&s.service));
    BenchResult {
        seed: s.config.seed,
        name: s.name.clone(),
        kind: s.kind.to_owned(),
        service: s.service.clone(),
        services: s.config.topology.as_ref().map_or(0, |(svc, _)| {
            svc.iter().filter(|x| !x.version.is_empty()).count()
        }),
        onset_delay_s: hit.map(|(i, _, _)| (i.onset_ns - begin) as f64 / 1e9),
        on_culprit,
        on_culprit_or_neighbour: on_culprit
            || hit.is_some_and(|(i, _, _)| near.iter().any(|n| i.services.contains(n))),
        false_alarms: runs
            .iter()
            .filter(|(i, _, _)| i.onset_ns < begin - TOLERANCE_NS)
            .count(),
        rca_rank: rca_services
            .iter()
            .position(|x| *x == s.service)
            .map(|r| r + 1),
        rca_services,
        error: None,
        incidents: runs
            .iter()
            .map(|(i, anomalies, rca)| {
                format!(
                    "incident {} onset {:+.0}s [{}] RCA [{}]: {}",
                    i.id,
                    (i.onset_ns - begin) as f64 / 1e9,
                    i.services.iter().cloned().collect::<Vec<_>>().join(", "),
                    rca.hypotheses
                        .iter()
                        .take(3)
                        .map(|h| format!("{} {:.1}", h.service, h.score))
                        .collect::<Vec<_>>()
                        .join(", "),
                    anomalies
                        .iter()
                        .map(|a| format!("{} {}", a.metric, a.subject))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
            .collect(),
    }
}

/// Runs `n` jobs `jobs` at a time; the results in order of index.
pub(crate) fn parallel<T: Send>(n: u64, jobs: usize, run: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(u64, T)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                    if i >= n {
                        break;
                    }
                    let r = run(i);
                    if let Ok(mut o) = out.lock() {
                        o.push((i, r));
                    }
                }
            });
        }
    });
    let mut out = out.into_inner().unwrap_or_default();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Every scenario of the set, printing a line per scenario as it ends.
pub(crate) fn run_all(args: &BenchArgs) -> Vec<BenchResult> {
    parallel(args.scenarios, args.jobs, |i| {
        let s = scenario_of(args, i);
        let result = match analysed_with(s.config.clone(), &[], &|_, _, _| {}) {
            Ok(runs) => score(&s, &runs),
            Err(e) => BenchResult {
                error: Some(format!("{e:#}")),
                ..score(&s, &[])
            },
        };
        print_result(&result, args.verbose);
        result
    })
}

#[allow(clippy::print_stdout)]
fn print_result(r: &BenchResult, verbose: bool) {
    let rca = match (r.rca_rank, r.onset_delay_s, &r.error) {
        (_, _, Some(e)) => format!("FAILED: {e}"),
        (_, None, _) => "MISSED (no incident with its onset within 60 s)".to_owned(),
        (Some(k), Some(d), _) => format!("RCA rank {k}, onset {d:+.0}s"),
        (None, Some(d), _) => format!("RCA misses it, onset {d:+.0}s"),
    };
    println!(
        "seed {} {} ({} services): {rca} [{}]{}",
        r.seed,
        r.name,
        r.services,
        r.rca_services
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        if r.false_alarms > 0 {
            format!(", {} incident(s) before the fault", r.false_alarms)
        } else {
            String::new()
        }
    );
    if verbose {
        for i in &r.incidents {
            println!("    {i}");
        }
    }
}

/// Incidents in an hour of healthy traffic of each of the first `hours`
/// applications of the set.
/// With `verbose`, each incident's minute and anomalies are printed.
#[allow(clippy::print_stdout)]
fn healthy_incidents(args: &BenchArgs) -> Vec<(u64, usize)> {
    parallel(args.healthy_hours, args.jobs, |i| {
        let seed = seed_of(args, i);
        let cfg = causeway_benches::healthy(seed, Duration::from_secs(3600));
        let start = i64::try_from(cfg.start_ns).unwrap_or(i64::MAX);
        let Ok(runs) = analysed_with(cfg, &[], &|_, _, _| {}) else {
            return (seed, usize::MAX);
        };
        if args.verbose {
            for (incident, anomalies, _) in &runs {
                println!(
                    "healthy seed {seed}: incident {} at {:+.0} s: {}",
                    incident.id,
                    (incident.onset_ns - start) as f64 / 1e9,
                    anomalies
                        .iter()
                        .map(|a| format!(
                            "{} {} ({:.3} vs {:.3}, score {:.1}, {:.0} s)",
                            a.metric,
                            a.subject,
                            a.observed,
                            a.expected,
                            a.score,
                            (a.resolved_ns.unwrap_or(a.last_ns) - a.onset_ns) as f64 / 1e9
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
        (seed, runs.len())
    })
}

/// Runs the benchmark and prints the totals; fails when the pipeline
/// failed on a scenario.
#[allow(clippy::print_stdout)]
pub(crate) fn eval_bench(args: &BenchArgs) -> bool {
    if let Some(k) = &args.kind
        && !BENCH_KINDS.contains(&k.as_str())
    {
        eprintln!(
            "causeway eval bench: unknown kind {k:?} (one of {})",
            BENCH_KINDS.join(", ")
        );
        return false;
    }
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
    let detected: Vec<&BenchResult> = results
        .iter()
        .filter(|r| r.onset_delay_s.is_some())
        .collect();
    let near = detected
        .iter()
        .filter(|r| r.on_culprit_or_neighbour)
        .count();
    let alarms: usize = results.iter().map(|r| r.false_alarms).sum();
    let healthy = healthy_incidents(args);
    let healthy_total: usize = healthy.iter().map(|(_, n)| *n).sum();
    let mut summary = Summary::of(&outcomes);
    summary.baseline_incidents = (!healthy.is_empty()).then_some(healthy_total);
    summary.detected_near_culprit = Some(near);
    println!(
        "{:?} set, {} scenarios: {} incident(s) before a fault in {:.1} hours of healthy lead; {} detected fault(s) with an empty RCA",
        args.set,
        results.len(),
        alarms,
        (results.len() as u64 * args.lead_minutes) as f64 / 60.0,
        detected
            .iter()
            .filter(|r| r.rca_services.is_empty())
            .count()
    );
    if !healthy.is_empty() {
        println!(
            "healthy traffic: {healthy_total} incident(s) in {} hour(s) ({})",
            healthy.len(),
            healthy
                .iter()
                .map(|(s, n)| format!("seed {s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    summary.print(args.json);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "set": args.set,
                "scenarios": results.len(),
                "detected": detected.len(),
                "detecting_incident_on_culprit_or_neighbour": near,
                "false_alarms_before_fault": alarms,
                "healthy_hours": healthy.len(),
                "healthy_incidents": healthy_total,
                "empty_rca": detected.iter().filter(|r| r.rca_services.is_empty()).count(),
            })
        );
    }
    results.iter().all(|r| r.error.is_none())
}
