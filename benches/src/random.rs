//! Random applications and random faults in them, for a root-cause
//! benchmark that cannot be fitted to one application: every seed draws
//! its own topology (10 to 60 services, up to 6 levels deep, fan-out,
//! databases, caches, a queue with an asynchronous consumer,
//! uninstrumented services, low-volume paths, an entry service that
//! takes the users' traffic), its own traffic and noise, and one fault
//! of the kinds public chaos benchmarks inject.
//!
//! Everything is drawn from the seed: the same seed gives the same
//! scenario, so a set of seeds is a fixed benchmark, and seeds can be
//! split into a set one may look at while developing and a set one
//! reports.

use std::time::Duration;

use crate::fault::{Fault, FaultKind};
use crate::sim::SimConfig;
use crate::topology::{Call, Operation, Protocol, Service, call, op};
use crate::workload::Rng;

const MINUTE_NS: u64 = 60_000_000_000;

/// Words service names are made of (names carry no meaning to causeway).
const WORDS: [&str; 24] = [
    "order", "ledger", "billing", "catalog", "profile", "search", "stock", "pricing", "quote",
    "route", "seat", "ticket", "notify", "auth", "review", "media", "basket", "tax", "fraud",
    "invoice", "loyalty", "geo", "session", "report",
];

const LANGUAGES: [&str; 6] = ["java", "go", "nodejs", "python", "dotnet", "rust"];

/// A log-uniform draw in `[lo, hi]`.
fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.unit() * (hi.ln() - lo.ln())).exp()
}

/// A uniform draw in `[lo, hi]`.
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + rng.unit() * (hi - lo)
}

/// A random application: the services (entry first, then the rest, then
/// the uninstrumented peers: databases, caches, a queue) and the weights
/// of the entry service's operations as roots of traces.
pub fn random_topology(rng: &mut Rng) -> (Vec<Service>, Vec<f64>) {
    let n = 10 + rng.below(51) as usize; // 10..=60 services
    let depth = 3 + rng.below(4) as usize; // 3..=6 levels
    // Levels: the entry at 0, every other level at least one service.
    let mut level = vec![0usize; n];
    for (i, l) in level.iter_mut().enumerate().skip(1) {
        *l = if i < depth {
            i
        } else {
            1 + rng.below(depth as u64 - 1) as usize
        };
    }
    let dbs = 1 + rng.below(3) as usize;
    let caches = rng.below(3) as usize;
    let queue = rng.unit() < 0.5;
    let peers = dbs + caches + usize::from(queue);
    let mut services: Vec<Service> = (0..n)
        .map(|i| {
            let name = if i == 0 {
                "frontend".to_owned()
            } else {
                format!("{}-{}", WORDS[i % WORDS.len()], i)
            };
            let grpc = i > 0 && rng.unit() < 0.5;
            let ops = if i == 0 {
                2 + rng.below(4)
            } else {
                1 + rng.below(3)
            };
            let operations = (0..ops)
                .map(|k| {
                    let (name, detail, protocol) = if grpc {
                        (
                            format!("svc.{}/Op{k}", name.replace('-', "")),
                            format!("Op{k}"),
                            Protocol::Grpc,
                        )
                    } else {
                        let method = if rng.unit() < 0.7 { "GET" } else { "POST" };
                        (
                            format!(
                                "{method} /api/{}/{k}",
                                WORDS[(i + k as usize) % WORDS.len()]
                            ),
                            format!("/api/{}/{k}", WORDS[(i + k as usize) % WORDS.len()]),
                            Protocol::Http,
                        )
                    };
                    Operation {
                        name,
                        detail,
                        protocol,
                        self_us: log_uniform(rng, 150.0, 15_000.0) as u64,
                        calls: Vec::new(),
                    }
                })
                .collect();
            Service {
                name,
                version: format!("{}.{}.{}", 1 + rng.below(3), rng.below(10), rng.below(10)),
                language: LANGUAGES[rng.below(LANGUAGES.len() as u64) as usize].to_owned(),
                operations,
                // One service in ten is not instrumented (never the entry:
                // its traffic is the users').
                instrumented: i == 0 || rng.unit() >= 0.1,
            }
        })
        .collect();
    // Peers: databases, caches, a queue (client spans only).
    const DB_SYSTEMS: [&str; 3] = ["postgresql", "mysql", "mongodb"];
    for d in 0..dbs {
        services.push(Service {
            name: format!("db-{d}"),
            version: String::new(),
            language: String::new(),
            operations: vec![
                op(
                    "SELECT rows",
                    "SELECT * FROM t WHERE id = ?",
                    Protocol::Db(DB_SYSTEMS[d % 3]),
                    log_uniform(rng, 300.0, 5_000.0) as u64,
                    vec![],
                ),
                op(
                    "UPDATE rows",
                    "UPDATE t SET v = ? WHERE id = ?",
                    Protocol::Db(DB_SYSTEMS[d % 3]),
                    log_uniform(rng, 500.0, 8_000.0) as u64,
                    vec![],
                ),
            ],
            instrumented: false,
        });
    }
    for c in 0..caches {
        services.push(Service {
            name: format!("cache-{c}"),
            version: String::new(),
            language: String::new(),
            operations: vec![op(
                "GET",
                "GET key",
                Protocol::Cache,
                log_uniform(rng, 80.0, 600.0) as u64,
                vec![],
            )],
            instrumented: false,
        });
    }
    // Calls: each operation of a non-leaf level calls 1 to 4 services on
    // deeper levels (mostly the next), with a probability each; some
    // paths are rare (low-volume services).
    let by_level = |l: usize| -> Vec<usize> { (0..n).filter(|&i| level[i] == l).collect() };
    for i in 0..n {
        let l = level[i];
        for k in 0..services[i].operations.len() {
            let mut calls: Vec<Call> = Vec::new();
            if l + 1 < depth {
                let fan_out = 1 + rng.below(4) as usize;
                for _ in 0..fan_out {
                    let target_level = if rng.unit() < 0.7 || l + 2 >= depth {
                        l + 1
                    } else {
                        l + 2 + rng.below((depth - l - 2) as u64) as usize
                    };
                    let candidates = by_level(target_level);
                    if candidates.is_empty() {
                        continue;
                    }
                    let callee = candidates[rng.below(candidates.len() as u64) as usize];
                    if calls.iter().any(|c| c.service == callee) {
                        continue;
                    }
                    let p = if rng.unit() < 0.15 {
                        uniform(rng, 0.02, 0.1)
                    } else {
                        uniform(rng, 0.4, 1.0)
                    };
                    let callee_op = rng.below(services[callee].operations.len() as u64) as usize;
                    calls.push(call(callee, callee_op, p));
                }
            }
            // Own storage: a database statement or a cache read.
            if dbs > 0 && i > 0 && rng.unit() < 0.4 {
                let d = n + rng.below(dbs as u64) as usize;
                calls.push(call(d, rng.below(2) as usize, uniform(rng, 0.5, 1.0)));
            }
            if caches > 0 && rng.unit() < 0.25 {
                let c = n + dbs + rng.below(caches as u64) as usize;
                calls.push(call(c, 0, uniform(rng, 0.5, 1.0)));
            }
            services[i].operations[k].calls = calls;
        }
    }
    // Every service reachable: an unreached one is called by an operation
    // of a reached service on a shallower level.
    loop {
        let reached = reachable(&services, n);
        let Some(orphan) = (1..n).find(|&i| !reached[i]) else {
            break;
        };
        let callers: Vec<usize> = (0..n)
            .filter(|&i| reached[i] && level[i] < level[orphan])
            .collect();
        let caller = callers[rng.below(callers.len() as u64) as usize];
        let k = rng.below(services[caller].operations.len() as u64) as usize;
        let callee_op = rng.below(services[orphan].operations.len() as u64) as usize;
        services[caller].operations[k]
            .calls
            .push(call(orphan, callee_op, uniform(rng, 0.3, 1.0)));
    }
    // An asynchronous consumer: a queue the entry publishes to.
    if queue {
        let consumer = 1 + rng.below(n as u64 - 1) as usize;
        let q = services.len();
        services.push(Service {
            name: "queue-0".to_owned(),
            version: String::new(),
            language: String::new(),
            operations: vec![op(
                "events publish",
                "events",
                Protocol::Messaging,
                300,
                vec![call(consumer, 0, 1.0)],
            )],
            instrumented: false,
        });
        let k = rng.below(services[0].operations.len() as u64) as usize;
        services[0].operations[k]
            .calls
            .push(call(q, 0, uniform(rng, 0.2, 0.8)));
    }
    debug_assert_eq!(services.len(), n + peers);
    let weights = (0..services[0].operations.len())
        .map(|_| log_uniform(rng, 0.2, 5.0))
        .collect();
    (services, weights)
}

/// Which of the first `n` services some trace from the entry reaches.
fn reachable(services: &[Service], n: usize) -> Vec<bool> {
    let mut seen = vec![false; services.len()];
    let mut stack = vec![0usize];
    seen[0] = true;
    while let Some(i) = stack.pop() {
        for o in &services[i].operations {
            for c in &o.calls {
                if !seen[c.service] {
                    seen[c.service] = true;
                    stack.push(c.service);
                }
            }
        }
    }
    seen.truncate(n);
    seen
}

/// The fault kinds of the benchmark, as public chaos benchmarks inject
/// them.
pub const BENCH_KINDS: [&str; 11] = [
    "cpu",
    "gc-pauses",
    "network-delay",
    "packet-loss",
    "new-exception",
    "wrong-return",
    "latency",
    "slow-dependency",
    "bad-deploy",
    "pod-restart",
    "errors",
];

/// A random fault of `kind` in `service` (index into `services`), its
/// magnitude drawn from the range chaos experiments use, mild to severe.
fn fault_kind(rng: &mut Rng, kind: &str, services: &[Service], service: usize) -> FaultKind {
    let name = services[service].name.clone();
    match kind {
        "cpu" => FaultKind::CpuSaturation {
            service: name,
            factor: log_uniform(rng, 1.8, 8.0),
        },
        "gc-pauses" => FaultKind::GcPauses {
            service: name,
            rate: uniform(rng, 0.05, 0.3),
            pause: Duration::from_millis(log_uniform(rng, 80.0, 1_500.0) as u64),
        },
        "network-delay" => FaultKind::NetworkDelay {
            service: name,
            added: Duration::from_millis(log_uniform(rng, 50.0, 2_000.0) as u64),
        },
        "packet-loss" => FaultKind::PacketLoss {
            service: name,
            loss: uniform(rng, 0.1, 0.5),
        },
        "new-exception" => FaultKind::NewException {
            service: name,
            exception: "com.app.IllegalStateException".to_owned(),
            rate: uniform(rng, 0.05, 0.6),
        },
        "wrong-return" => FaultKind::WrongReturn {
            service: name,
            rate: uniform(rng, 0.2, 1.0),
        },
        "latency" => {
            let ops = &services[service].operations;
            let op = ops[rng.below(ops.len() as u64) as usize].name.clone();
            FaultKind::Latency {
                service: name,
                operation: Some(op),
                factor: log_uniform(rng, 3.0, 30.0),
            }
        }
        "bad-deploy" => FaultKind::BadDeploy {
            service: name,
            version: "9.9.9-rc1".to_owned(),
            rate: uniform(rng, 0.05, 0.6),
        },
        "pod-restart" => FaultKind::PodRestart {
            service: name,
            down: Duration::from_secs(5 + rng.below(40)),
        },
        _ => FaultKind::ErrorBurst {
            service: name,
            rate: uniform(rng, 0.05, 0.6),
        },
    }
}

/// One benchmark scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `kind:service`.
    pub name: String,
    /// The fault kind (one of [`BENCH_KINDS`]).
    pub kind: &'static str,
    /// The faulty service.
    pub service: String,
    /// The simulation, fault and noise included.
    pub config: SimConfig,
}

/// The scenario of `seed`: a random application, `lead` of healthy
/// traffic with noise (the history detection and the RCA's reference
/// learn from), then a fault of a kind chosen by the seed (or `kind`) in a
/// service chosen by the seed, lasting `fault`.
pub fn scenario(seed: u64, lead: Duration, fault: Duration, kind: Option<&str>) -> Scenario {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(17));
    let (services, weights) = random_topology(&mut rng);
    let kind: &'static str = match kind {
        Some(k) => BENCH_KINDS
            .iter()
            .find(|b| **b == k)
            .copied()
            .unwrap_or("errors"),
        None => BENCH_KINDS[rng.below(BENCH_KINDS.len() as u64) as usize],
    };
    let instrumented: Vec<usize> = (0..services.len())
        .filter(|&i| services[i].instrumented && !services[i].version.is_empty())
        .collect();
    // A slow dependency is a service's own database or cache being slow:
    // the service that owns those calls is at fault.
    let with_peer: Vec<usize> = instrumented
        .iter()
        .copied()
        .filter(|&i| {
            services[i].operations.iter().any(|o| {
                o.calls.iter().any(|c| {
                    matches!(
                        services[c.service].operations[c.operation].protocol,
                        Protocol::Db(_) | Protocol::Cache
                    )
                })
            })
        })
        .collect();
    let pool = if kind == "slow-dependency" && !with_peer.is_empty() {
        &with_peer
    } else {
        &instrumented
    };
    let target = pool[rng.below(pool.len() as u64) as usize];
    let kind_value = if kind == "slow-dependency" {
        let peer = services[target]
            .operations
            .iter()
            .flat_map(|o| &o.calls)
            .map(|c| c.service)
            .find(|&c| {
                matches!(
                    services[c].operations[0].protocol,
                    Protocol::Db(_) | Protocol::Cache
                )
            })
            .unwrap_or(target);
        FaultKind::EdgeLatency {
            client: services[target].name.clone(),
            server: services[peer].name.clone(),
            added: Duration::from_millis(log_uniform(&mut rng, 30.0, 1_000.0) as u64),
        }
    } else {
        fault_kind(&mut rng, kind, &services, target)
    };
    // Any hour of the day: night lows to afternoon peaks.
    let day = SimConfig::default().start_ns;
    let start_ns = day + rng.below(24 * 60) * MINUTE_NS;
    let fault_start = start_ns + lead.as_nanos() as u64;
    let end_ns = fault_start + fault.as_nanos() as u64;
    let noise = noise(&mut rng, &services, &instrumented, start_ns, end_ns);
    // A data gap now and then (a collector restart), in the healthy part.
    let gaps = if rng.unit() < 0.3 {
        let at = start_ns + rng.below(lead.as_nanos() as u64 / 2);
        vec![(at, at + 30_000_000_000)]
    } else {
        Vec::new()
    };
    let name = format!("{kind}:{}", services[target].name);
    Scenario {
        name,
        kind,
        service: services[target].name.clone(),
        config: SimConfig {
            seed,
            start_ns,
            duration: lead + fault,
            rate: log_uniform(&mut rng, 3.0, 12.0),
            diurnal: 0.6,
            benign_errors: log_uniform(&mut rng, 0.0005, 0.01),
            step: Duration::from_secs(1),
            faults: vec![Fault {
                kind: kind_value,
                start_ns: fault_start,
                end_ns,
            }],
            noise,
            gaps,
            topology: Some((services, weights)),
        },
    }
}

/// A healthy stretch of the application of `seed`, with its noise and no
/// fault: what detection must stay quiet on.
pub fn healthy(seed: u64, duration: Duration) -> SimConfig {
    let mut s = scenario(seed, duration, Duration::ZERO, None);
    s.config.faults.clear();
    s.config.duration = duration;
    s.config
}

/// What a live system does without a fault, over `[start, end)`:
/// recurring short bursts of a benign error in a few services, one
/// service drifting slower over the hours, a request-mix change.
fn noise(
    rng: &mut Rng,
    services: &[Service],
    instrumented: &[usize],
    start: u64,
    end: u64,
) -> Vec<Fault> {
    let mut out = Vec::new();
    let pick = |rng: &mut Rng| {
        services[instrumented[rng.below(instrumented.len() as u64) as usize]]
            .name
            .clone()
    };
    // Error bursts: 20-s bursts of the usual errors at 5-15% every 5 to
    // 15 minutes in one or two services (a flaky dependency, a cron job).
    for _ in 0..1 + rng.below(2) {
        let service = pick(rng);
        let every = (5 + rng.below(11)) * MINUTE_NS;
        let rate = uniform(rng, 0.05, 0.15);
        let mut t = start + rng.below(every);
        while t < end {
            out.push(Fault {
                kind: FaultKind::ErrorBurst {
                    service: service.clone(),
                    rate,
                },
                start_ns: t,
                end_ns: t + 20_000_000_000,
            });
            t += every;
        }
    }
    // Drift: one service 10-40% slower by the end.
    if rng.unit() < 0.5 {
        out.push(Fault {
            kind: FaultKind::Drift {
                service: pick(rng),
                factor: uniform(rng, 1.1, 1.4),
            },
            start_ns: start,
            end_ns: end,
        });
    }
    // A request-mix change somewhere in the run.
    if rng.unit() < 0.4 {
        let ops = services[0].operations.len() as u64;
        let at = start + rng.below((end - start).max(1));
        out.push(Fault {
            kind: FaultKind::MixChange {
                operation: rng.below(ops) as usize,
                factor: uniform(rng, 1.5, 3.0),
            },
            start_ns: at,
            end_ns: end,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_topologies_are_whole_and_vary() {
        let mut sizes = Vec::new();
        for seed in 1..=40 {
            let mut rng = Rng::new(seed);
            let (services, weights) = random_topology(&mut rng);
            let instrumented = services.iter().filter(|s| !s.version.is_empty()).count();
            assert!((10..=60).contains(&instrumented), "{instrumented}");
            assert_eq!(weights.len(), services[0].operations.len());
            assert!(reachable(&services, instrumented).iter().all(|&r| r));
            for s in &services {
                for o in &s.operations {
                    for c in &o.calls {
                        assert!(c.operation < services[c.service].operations.len());
                    }
                }
            }
            sizes.push(instrumented);
        }
        sizes.sort_unstable();
        assert!(sizes[0] < 25 && sizes[39] > 40, "{sizes:?}");
    }

    #[test]
    fn a_scenario_is_its_seed() {
        let a = scenario(7, Duration::from_secs(1200), Duration::from_secs(360), None);
        let b = scenario(7, Duration::from_secs(1200), Duration::from_secs(360), None);
        assert_eq!(
            (a.name.as_str(), a.config.start_ns),
            (b.name.as_str(), b.config.start_ns)
        );
        assert_eq!(a.config.faults, b.config.faults);
        let kinds: std::collections::HashSet<&str> = (1..200)
            .map(|s| scenario(s, Duration::from_secs(60), Duration::from_secs(60), None).kind)
            .collect();
        assert_eq!(kinds.len(), BENCH_KINDS.len());
    }
}
