//! The faults the simulator injects, as chaos benchmarks inject them, and
//! what each does to a span of the service it hits ([`Effects`]).

use std::time::Duration;

use crate::topology::Service;

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// One operation of a service (or all, without `operation`) becomes
    /// `factor` times slower in its own work.
    Latency {
        /// Service name.
        service: String,
        /// Span name; `None` for all of the service's operations.
        operation: Option<String>,
        /// Slowdown factor.
        factor: f64,
    },
    /// Calls from `client` to `server` take `added` longer on the wire.
    EdgeLatency {
        /// Calling service.
        client: String,
        /// Called service.
        server: String,
        /// Added delay.
        added: Duration,
    },
    /// A share of the service's spans fail with the usual exceptions.
    ErrorBurst {
        /// Service name.
        service: String,
        /// Share of its spans that fail.
        rate: f64,
    },
    /// A share of the service's spans fail with an exception never seen
    /// before.
    NewException {
        /// Service name.
        service: String,
        /// `exception.type`.
        exception: String,
        /// Share of its spans that fail.
        rate: f64,
    },
    /// The service's CPU is saturated: everything it does is slower, and
    /// more variable.
    CpuSaturation {
        /// Service name.
        service: String,
        /// Slowdown factor.
        factor: f64,
    },
    /// A new `service.version` is deployed and fails a share of its spans
    /// with a new exception.
    BadDeploy {
        /// Service name.
        service: String,
        /// The new version.
        version: String,
        /// Share of its spans that fail.
        rate: f64,
    },
    /// The network of the service's pod delays every packet in and out of
    /// it (as `tc netem delay` or a chaos tool's network delay injects
    /// it): its callers wait `added` longer on each way of a call, and so
    /// does it on its own calls.
    NetworkDelay {
        /// Service name.
        service: String,
        /// Added per direction.
        added: Duration,
    },
    /// The network of the service's pod drops a share of packets: a call
    /// in or out of it waits out a TCP retransmission timeout (200 ms,
    /// doubling) now and then, and a few calls fail.
    PacketLoss {
        /// Service name.
        service: String,
        /// Share of packets lost.
        loss: f64,
    },
    /// Memory pressure: stop-the-world GC pauses hit a share of the
    /// service's spans.
    GcPauses {
        /// Service name.
        service: String,
        /// Share of its spans paused.
        rate: f64,
        /// Pause length.
        pause: Duration,
    },
    /// The service's code returns a wrong result, without an error, on a
    /// share of requests: it returns early (skipping its own calls and
    /// most of its work), and its callers, seeing the wrong answer, skip
    /// the rest of their calls.
    WrongReturn {
        /// Service name.
        service: String,
        /// Share of its requests.
        rate: f64,
    },
    /// The service's pod restarts at the fault's start: a new instance,
    /// calls into it refused for `down`, then slow while it warms up.
    PodRestart {
        /// Service name.
        service: String,
        /// How long calls into it are refused.
        down: Duration,
    },
    /// Not a fault (noise): the service's own work drifts slowly to
    /// `factor` times its usual by the end (a growing table, a filling
    /// cache).
    Drift {
        /// Service name.
        service: String,
        /// Slowdown at the end.
        factor: f64,
    },
    /// Not a fault (noise): the entry operation `operation` gets `factor`
    /// times its usual share of the traffic (a campaign, a crawler).
    MixChange {
        /// Index of the entry service's operation.
        operation: usize,
        /// Weight multiplier.
        factor: f64,
    },
}

impl FaultKind {
    /// Stable name, as in `--fault` and the ground truth.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::EdgeLatency { .. } => "edge-latency",
            FaultKind::ErrorBurst { .. } => "errors",
            FaultKind::NewException { .. } => "new-exception",
            FaultKind::CpuSaturation { .. } => "cpu",
            FaultKind::BadDeploy { .. } => "bad-deploy",
            FaultKind::NetworkDelay { .. } => "network-delay",
            FaultKind::PacketLoss { .. } => "packet-loss",
            FaultKind::GcPauses { .. } => "gc-pauses",
            FaultKind::WrongReturn { .. } => "wrong-return",
            FaultKind::PodRestart { .. } => "pod-restart",
            FaultKind::Drift { .. } => "drift",
            FaultKind::MixChange { .. } => "mix-change",
        }
    }

    /// The service at fault (for an edge, the called one).
    pub fn service(&self) -> &str {
        match self {
            FaultKind::Latency { service, .. }
            | FaultKind::ErrorBurst { service, .. }
            | FaultKind::NewException { service, .. }
            | FaultKind::CpuSaturation { service, .. }
            | FaultKind::BadDeploy { service, .. }
            | FaultKind::NetworkDelay { service, .. }
            | FaultKind::PacketLoss { service, .. }
            | FaultKind::GcPauses { service, .. }
            | FaultKind::WrongReturn { service, .. }
            | FaultKind::PodRestart { service, .. }
            | FaultKind::Drift { service, .. } => service,
            FaultKind::EdgeLatency { server, .. } => server,
            FaultKind::MixChange { .. } => "",
        }
    }
}

/// A fault active over `[start_ns, end_ns)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// Unix ns.
    pub start_ns: u64,
    /// Unix ns.
    pub end_ns: u64,
}

impl Fault {
    /// Parses `KIND:TARGET@OFFSET[+DURATION]`, offsets from `start_ns`
    /// (default duration 15 minutes; a bad deploy lasts to the end):
    ///
    /// - `latency:SERVICE[/OPERATION]` (×10), `cpu:SERVICE` (×4),
    /// - `edge-latency:CLIENT->SERVER` (+200 ms),
    /// - `errors:SERVICE` (30% fail), `new-exception:SERVICE` (30% fail
    ///   with `com.shop.InventoryMismatchException`),
    /// - `bad-deploy:SERVICE` (version `9.9.9-rc1`, 30% fail with
    ///   `java.lang.NullPointerException`),
    /// - `network-delay:SERVICE` (+1 s each way), `packet-loss:SERVICE`
    ///   (30%), `gc-pauses:SERVICE` (400 ms on 10% of spans),
    ///   `wrong-return:SERVICE` (half its requests), `pod-restart:SERVICE`
    ///   (20 s refused).
    pub fn parse(spec: &str, start_ns: u64) -> Result<Self, String> {
        let (what, when) = spec
            .split_once('@')
            .ok_or_else(|| format!("{spec:?}: expected KIND:TARGET@OFFSET[+DURATION]"))?;
        let (kind, target) = what
            .split_once(':')
            .ok_or_else(|| format!("{spec:?}: expected KIND:TARGET before '@'"))?;
        let (offset, duration) = match when.split_once('+') {
            Some((o, d)) => (o, Some(d)),
            None => (when, None),
        };
        let dur =
            |s: &str| humantime::parse_duration(s).map_err(|e| format!("{spec:?}: {s:?}: {e}"));
        let offset = dur(offset)?;
        let kind = match kind {
            "latency" => {
                let (service, operation) = match target.split_once('/') {
                    Some((s, o)) => (s.to_owned(), Some(o.to_owned())),
                    None => (target.to_owned(), None),
                };
                FaultKind::Latency {
                    service,
                    operation,
                    factor: 10.0,
                }
            }
            "cpu" => FaultKind::CpuSaturation {
                service: target.to_owned(),
                factor: 4.0,
            },
            "edge-latency" => {
                let (client, server) = target
                    .split_once("->")
                    .ok_or_else(|| format!("{spec:?}: expected CLIENT->SERVER"))?;
                FaultKind::EdgeLatency {
                    client: client.to_owned(),
                    server: server.to_owned(),
                    added: Duration::from_millis(200),
                }
            }
            "errors" => FaultKind::ErrorBurst {
                service: target.to_owned(),
                rate: 0.3,
            },
            "new-exception" => FaultKind::NewException {
                service: target.to_owned(),
                exception: "com.shop.InventoryMismatchException".to_owned(),
                rate: 0.3,
            },
            "bad-deploy" => FaultKind::BadDeploy {
                service: target.to_owned(),
                version: "9.9.9-rc1".to_owned(),
                rate: 0.3,
            },
            "network-delay" => FaultKind::NetworkDelay {
                service: target.to_owned(),
                added: Duration::from_secs(1),
            },
            "packet-loss" => FaultKind::PacketLoss {
                service: target.to_owned(),
                loss: 0.3,
            },
            "gc-pauses" => FaultKind::GcPauses {
                service: target.to_owned(),
                rate: 0.1,
                pause: Duration::from_millis(400),
            },
            "wrong-return" => FaultKind::WrongReturn {
                service: target.to_owned(),
                rate: 0.5,
            },
            "pod-restart" => FaultKind::PodRestart {
                service: target.to_owned(),
                down: Duration::from_secs(20),
            },
            other => {
                return Err(format!(
                    "{spec:?}: unknown fault kind {other:?} (latency, edge-latency, errors, new-exception, cpu, bad-deploy, network-delay, packet-loss, gc-pauses, wrong-return, pod-restart)"
                ));
            }
        };
        let start = start_ns.saturating_add(offset.as_nanos() as u64);
        let end = match (duration, &kind) {
            (Some(d), _) => start.saturating_add(dur(d)?.as_nanos() as u64),
            (None, FaultKind::BadDeploy { .. }) => u64::MAX,
            (None, _) => start.saturating_add(15 * 60 * 1_000_000_000),
        };
        Ok(Self {
            kind,
            start_ns: start,
            end_ns: end,
        })
    }
}

/// An injected failure: the share of a service's spans that fail, and the
/// exception type and message (`None`: the usual benign ones).
type Failure = (usize, f64, Option<(String, String)>);

/// What the faults active at one instant do, by service index.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// (service, operation or all, factor)
    slow: Vec<(usize, Option<usize>, f64)>,
    /// (client, server, added ns)
    edges: Vec<(usize, usize, u64)>,
    /// (service, rate, exception type and message, or the usual ones)
    failures: Vec<Failure>,
    /// (service, version)
    versions: Vec<(usize, String)>,
    /// (service, added ns per direction): network delay on its pod.
    pod_delays: Vec<(usize, u64)>,
    /// (service, share of packets lost).
    losses: Vec<(usize, f64)>,
    /// (service, share of spans, pause ns).
    pauses: Vec<(usize, f64, u64)>,
    /// (service, share of requests answered wrongly).
    wrong: Vec<(usize, f64)>,
    /// (service, restarted: refusing calls now) for restarted pods.
    restarts: Vec<(usize, bool)>,
    /// (entry operation, weight multiplier).
    mix: Vec<(usize, f64)>,
}

impl Effects {
    /// The effects of `faults` at `t_ns` (names that match no service do
    /// nothing).
    pub fn at(faults: &[Fault], services: &[Service], t_ns: u64) -> Self {
        let mut e = Self::default();
        let index = |name: &str| services.iter().position(|s| s.name == name);
        for f in faults
            .iter()
            .filter(|f| f.start_ns <= t_ns && t_ns < f.end_ns)
        {
            // How far into the fault, 0 to 1 (for drift and warm-up).
            let progress = (t_ns - f.start_ns) as f64 / (f.end_ns - f.start_ns).max(1) as f64;
            let since = Duration::from_nanos(t_ns - f.start_ns);
            match &f.kind {
                FaultKind::Latency {
                    service,
                    operation,
                    factor,
                } => {
                    if let Some(s) = index(service) {
                        let op = operation
                            .as_ref()
                            .and_then(|o| services[s].operations.iter().position(|x| x.name == *o));
                        e.slow.push((s, op, *factor));
                    }
                }
                FaultKind::CpuSaturation { service, factor } => {
                    if let Some(s) = index(service) {
                        e.slow.push((s, None, *factor));
                    }
                }
                FaultKind::EdgeLatency {
                    client,
                    server,
                    added,
                } => {
                    if let (Some(c), Some(s)) = (index(client), index(server)) {
                        e.edges.push((c, s, added.as_nanos() as u64));
                    }
                }
                FaultKind::ErrorBurst { service, rate } => {
                    if let Some(s) = index(service) {
                        e.failures.push((s, *rate, None));
                    }
                }
                FaultKind::NewException {
                    service,
                    exception,
                    rate,
                } => {
                    if let Some(s) = index(service) {
                        e.failures.push((
                            s,
                            *rate,
                            Some((
                                exception.clone(),
                                "stock count does not match the order".to_owned(),
                            )),
                        ));
                    }
                }
                FaultKind::BadDeploy {
                    service,
                    version,
                    rate,
                } => {
                    if let Some(s) = index(service) {
                        e.versions.push((s, version.clone()));
                        e.failures.push((
                            s,
                            *rate,
                            Some((
                                "java.lang.NullPointerException".to_owned(),
                                "Cannot invoke \"Order.getItems()\" because \"order\" is null"
                                    .to_owned(),
                            )),
                        ));
                    }
                }
                FaultKind::NetworkDelay { service, added } => {
                    if let Some(s) = index(service) {
                        e.pod_delays.push((s, added.as_nanos() as u64));
                    }
                }
                FaultKind::PacketLoss { service, loss } => {
                    if let Some(s) = index(service) {
                        e.losses.push((s, *loss));
                    }
                }
                FaultKind::GcPauses {
                    service,
                    rate,
                    pause,
                } => {
                    if let Some(s) = index(service) {
                        e.pauses.push((s, *rate, pause.as_nanos() as u64));
                    }
                }
                FaultKind::WrongReturn { service, rate } => {
                    if let Some(s) = index(service) {
                        e.wrong.push((s, *rate));
                    }
                }
                FaultKind::PodRestart { service, down } => {
                    if let Some(s) = index(service) {
                        let refusing = since < *down;
                        e.restarts.push((s, refusing));
                        if !refusing {
                            // A cold JIT and empty caches: three times slower
                            // just after start, back to normal over a minute.
                            let warm = (since - *down).as_secs_f64() / 60.0;
                            if warm < 1.0 {
                                e.slow.push((s, None, 1.0 + 2.0 * (1.0 - warm)));
                            }
                        }
                    }
                }
                FaultKind::Drift { service, factor } => {
                    if let Some(s) = index(service) {
                        e.slow.push((s, None, 1.0 + (factor - 1.0) * progress));
                    }
                }
                FaultKind::MixChange { operation, factor } => {
                    e.mix.push((*operation, *factor));
                }
            }
        }
        e
    }

    /// Added network delay on a packet from `from` to `to` (pod network
    /// faults of either end), ns.
    pub fn pod_delay_ns(&self, from: usize, to: usize) -> u64 {
        self.pod_delays
            .iter()
            .filter(|(s, _)| *s == from || *s == to)
            .map(|(_, d)| *d)
            .sum()
    }

    /// Share of packets lost between `a` and `b`.
    pub fn loss(&self, a: usize, b: usize) -> f64 {
        self.losses
            .iter()
            .filter(|(s, _)| *s == a || *s == b)
            .map(|(_, l)| *l)
            .fold(0.0, f64::max)
    }

    /// (share of spans, pause ns) of GC pauses in `service`.
    pub fn pause(&self, service: usize) -> Option<(f64, u64)> {
        self.pauses
            .iter()
            .find(|(s, ..)| *s == service)
            .map(|&(_, r, p)| (r, p))
    }

    /// Share of `service`'s requests answered wrongly.
    pub fn wrong_rate(&self, service: usize) -> f64 {
        self.wrong
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(0.0, |(_, r)| *r)
    }

    /// `Some(refusing)` when `service`'s pod restarted: a new instance,
    /// refusing calls while it starts.
    pub fn restarted(&self, service: usize) -> Option<bool> {
        self.restarts
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, r)| *r)
    }

    /// Weight multiplier of the entry operation `op`.
    pub fn mix_factor(&self, op: usize) -> f64 {
        self.mix
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, f)| *f)
            .product()
    }

    /// Factor applied to the own work of `service`'s operation `op`.
    pub fn slowdown(&self, service: usize, op: usize) -> f64 {
        self.slow
            .iter()
            .filter(|(s, o, _)| *s == service && o.is_none_or(|o| o == op))
            .map(|(_, _, f)| *f)
            .fold(1.0, f64::max)
    }

    /// Added network delay from `client` to `server`, ns.
    pub fn edge_delay_ns(&self, client: usize, server: usize) -> u64 {
        self.edges
            .iter()
            .filter(|(c, s, _)| *c == client && *s == server)
            .map(|(_, _, d)| *d)
            .sum()
    }

    /// Injected failure rate of `service` and its exception (`None`: the
    /// usual ones).
    pub fn failure(&self, service: usize) -> Option<(f64, Option<(String, String)>)> {
        self.failures
            .iter()
            .find(|(s, _, _)| *s == service)
            .map(|(_, r, e)| (*r, e.clone()))
    }

    /// The deployed version of `service`, if a fault changed it.
    pub fn version(&self, service: usize) -> Option<&str> {
        self.versions
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, v)| v.as_str())
    }
}
