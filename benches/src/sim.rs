//! A traffic simulator: the web shop under a daily load cycle, with noise,
//! benign errors, and faults injected at given times, plus the ground truth
//! of what was injected.
//!
//! Time is event time: the simulator produces one request per step of
//! simulated time (traces that started in that step), as fast as asked, so
//! a day takes seconds to generate; a caller that sends in real time paces
//! itself.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::fault::Fault;
use crate::workload::{Rng, Workload, WorkloadConfig};

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// PRNG seed.
    pub seed: u64,
    /// First instant, unix ns.
    pub start_ns: u64,
    /// How much event time to simulate.
    pub duration: Duration,
    /// Mean traces per second over a day.
    pub rate: f64,
    /// Daily cycle: the rate swings by this share around the mean (0.8:
    /// from 0.2× at night to 1.8× in the afternoon).
    pub diurnal: f64,
    /// Share of leaf operations failing with a benign error.
    pub benign_errors: f64,
    /// One request per this much event time.
    pub step: Duration,
    /// Faults (the ground truth).
    pub faults: Vec<Fault>,
    /// What a live system does without a fault (error bursts, drift,
    /// request-mix changes): applied like faults, not part of the truth.
    pub noise: Vec<Fault>,
    /// Spans of traces starting in these `[from, to)` ranges (unix ns) are
    /// lost, as when a collector restarts.
    pub gaps: Vec<(u64, u64)>,
    /// Another topology than the web shop, with the weights of its entry
    /// service's operations.
    pub topology: Option<(Vec<crate::topology::Service>, Vec<f64>)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start_ns: 1_764_547_200_000_000_000, // 2025-12-01T00:00:00Z
            duration: Duration::from_secs(3600),
            rate: 20.0,
            diurnal: 0.6,
            benign_errors: 0.002,
            step: Duration::from_secs(1),
            faults: Vec::new(),
            noise: Vec::new(),
            gaps: Vec::new(),
            topology: None,
        }
    }
}

/// Generates the simulated traffic, one request per step.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    workload: Workload,
    rng: Rng,
    now_ns: u64,
    end_ns: u64,
}

const DAY_NS: f64 = 86_400e9;

impl Simulator {
    /// A simulator at the config's start.
    pub fn new(cfg: SimConfig) -> Self {
        let mut workload = Workload::new(WorkloadConfig {
            seed: cfg.seed,
            error_rate: cfg.benign_errors,
            start_ns: cfg.start_ns,
            spacing_ns: 0,
        })
        .with_faults(cfg.faults.iter().chain(&cfg.noise).cloned().collect());
        if let Some((services, weights)) = &cfg.topology {
            workload = workload.with_topology(services.clone(), weights.clone());
        }
        Self {
            rng: Rng::new(cfg.seed ^ 0x5eed),
            now_ns: cfg.start_ns,
            end_ns: cfg.start_ns.saturating_add(cfg.duration.as_nanos() as u64),
            workload,
            cfg,
        }
    }

    /// Traces per second at `t_ns`: the daily cycle, peaking at 15:00 UTC.
    pub fn rate_at(&self, t_ns: u64) -> f64 {
        let phase = ((t_ns as f64) % DAY_NS) / DAY_NS; // 0 at midnight
        let cycle = ((phase - 0.375) * std::f64::consts::TAU).sin(); // peak at 15:00
        (self.cfg.rate * (1.0 + self.cfg.diurnal * cycle)).max(0.0)
    }

    /// The next step's request and its start (unix ns), or `None` at the
    /// end. A step without traces gives an empty request.
    pub fn next_step(&mut self) -> Option<(u64, ExportTraceServiceRequest)> {
        if self.now_ns >= self.end_ns {
            return None;
        }
        let step = self.cfg.step.as_nanos() as u64;
        let start = self.now_ns;
        let lambda = self.rate_at(start) * self.cfg.step.as_secs_f64();
        let n = poisson(&mut self.rng, lambda);
        let mut starts: Vec<u64> = (0..n).map(|_| start + self.rng.below(step)).collect();
        starts.sort_unstable();
        for t in starts {
            self.workload.trace_at(t);
        }
        self.now_ns = start.saturating_add(step);
        let req = self.workload.take();
        if self.cfg.gaps.iter().any(|&(a, b)| (a..b).contains(&start)) {
            return Some((start, ExportTraceServiceRequest::default()));
        }
        Some((start, req))
    }

    /// The faults, for the ground truth.
    pub fn faults(&self) -> &[Fault] {
        &self.cfg.faults
    }
}

/// A Poisson draw (Knuth for small means, normal approximation above).
fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        let z = (0..12).map(|_| rng.unit()).sum::<f64>() - 6.0;
        return (lambda + lambda.sqrt() * z).round().max(0.0) as u64;
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p = rng.unit();
    while p > limit {
        k += 1;
        p *= rng.unit();
    }
    k
}

/// Posts OTLP/HTTP protobuf requests to a receiver, retrying what it
/// pushes back on (429, 503, connection errors) with backoff.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    url: http::Uri,
    api_key: Option<String>,
}

impl HttpSender {
    /// A sender to `endpoint` (`http://host:port`, `/v1/traces` appended
    /// unless the path is given).
    pub fn new(endpoint: &str, api_key: Option<String>) -> Result<Self, String> {
        let mut url = endpoint.trim_end_matches('/').to_owned();
        if !url.ends_with("/v1/traces") {
            url.push_str("/v1/traces");
        }
        let url: http::Uri = url.parse().map_err(|e| format!("{endpoint:?}: {e}"))?;
        if url.scheme_str() != Some("http") {
            return Err(format!(
                "{endpoint:?}: only http:// endpoints are supported"
            ));
        }
        Ok(Self {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
            url,
            api_key,
        })
    }

    /// Sends one request; gives up after about a minute of refusals.
    pub async fn send(&self, body: bytes::Bytes) -> Result<(), String> {
        use http_body_util::BodyExt;
        let mut backoff = Duration::from_millis(50);
        let mut last = String::new();
        for _ in 0..12 {
            let mut b = http::Request::post(self.url.clone())
                .header("content-type", "application/x-protobuf");
            if let Some(k) = &self.api_key {
                b = b.header("authorization", format!("Bearer {k}"));
            }
            let req = b
                .body(http_body_util::Full::new(body.clone()))
                .map_err(|e| e.to_string())?;
            match self.client.request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp
                        .into_body()
                        .collect()
                        .await
                        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        .unwrap_or_default();
                    if status.is_success() {
                        return Ok(());
                    }
                    if status.as_u16() != 429 && status.as_u16() != 503 {
                        return Err(format!("HTTP {status}: {text}"));
                    }
                    last = format!("HTTP {status}");
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        Err(format!("gave up after retries: {last}"))
    }
}
