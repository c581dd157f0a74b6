//! Trace generation.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::fault::{Effects, Fault};
pub use crate::rng::Rng;
use crate::topology::{Protocol, Service, web_shop};

mod spans;

/// Settings of a [`Workload`].
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Probability that a leaf operation fails (with an exception event).
    pub error_rate: f64,
    /// Start time of the first trace, unix ns.
    pub start_ns: u64,
    /// Time between trace starts, ns.
    pub spacing_ns: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            error_rate: 0.01,
            start_ns: 1_764_000_000_000_000_000,
            spacing_ns: 2_000_000,
        }
    }
}

/// Generates batches of whole traces.
#[derive(Debug, Clone)]
pub struct Workload {
    services: Vec<Service>,
    rng: Rng,
    cfg: WorkloadConfig,
    clock_ns: u64,
    /// Spans per (service index, `service.version`, restarted pod) of the
    /// batch being built.
    pending: Vec<(usize, String, bool, Vec<Span>)>,
    /// Weights of the entry service's operations as roots of traces;
    /// `None`: the web shop's fixed mix.
    entry_weights: Option<Vec<f64>>,
    /// Faults to inject, by event time.
    faults: Vec<Fault>,
    /// What the faults active for the trace being built do.
    effects: Effects,
}

/// Shorthand for a string attribute.
fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// Shorthand for an int attribute.
fn kvi(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}

impl Workload {
    /// A workload over the web-shop topology.
    pub fn new(cfg: WorkloadConfig) -> Self {
        Self {
            rng: Rng::new(cfg.seed),
            clock_ns: cfg.start_ns,
            services: web_shop(),
            cfg,
            pending: Vec::new(),
            entry_weights: None,
            faults: Vec::new(),
            effects: Effects::default(),
        }
    }

    /// Another topology: `services[0]` is the entry service, whose
    /// operations root traces with the given weights.
    pub fn with_topology(mut self, services: Vec<Service>, entry_weights: Vec<f64>) -> Self {
        self.services = services;
        self.entry_weights = Some(entry_weights);
        self
    }

    /// Faults injected into traces that start while they are active.
    pub fn with_faults(mut self, faults: Vec<Fault>) -> Self {
        self.faults = faults;
        self
    }

    /// Generates one whole trace starting at `start_ns` into the pending
    /// request; returns its span count.
    pub fn trace_at(&mut self, start_ns: u64) -> usize {
        self.clock_ns = start_ns;
        self.trace()
    }

    /// The pending spans as one request (empty if none), grouped by
    /// service and version.
    pub fn take(&mut self) -> ExportTraceServiceRequest {
        self.flush()
    }

    /// The services (index order matches span attribution).
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// One export request of whole traces holding at least `spans` spans.
    pub fn batch(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let mut n = 0;
        while n < spans {
            n += self.trace();
        }
        self.flush()
    }

    /// `count` encoded requests of about `spans` spans each.
    pub fn encoded(&mut self, count: usize, spans: usize) -> Vec<Bytes> {
        (0..count)
            .map(|_| Bytes::from(self.batch(spans).encode_to_vec()))
            .collect()
    }

    fn flush(&mut self) -> ExportTraceServiceRequest {
        let mut resource_spans = Vec::new();
        self.pending
            .sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        for (i, version, restarted, spans) in std::mem::take(&mut self.pending) {
            if spans.is_empty() {
                continue;
            }
            let s = &self.services[i];
            // A restarted pod is a new instance with a new name.
            let host = format!(
                "{}-7d9c{}-x{}{}",
                s.name,
                i,
                i * 7 % 10,
                if restarted { "r" } else { "" }
            );
            let resource = Resource {
                attributes: vec![
                    kv("service.name", s.name.clone()),
                    kv("service.version", version),
                    kv("service.namespace", "shop"),
                    kv("deployment.environment.name", "production"),
                    kv("host.name", host.clone()),
                    kv("k8s.pod.name", host),
                    kv("k8s.namespace.name", "shop"),
                    kv("telemetry.sdk.name", "opentelemetry"),
                    kv("telemetry.sdk.language", s.language.clone()),
                    kv("telemetry.sdk.version", "1.38.0"),
                    kvi("process.pid", 1000 + i as i64),
                ],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            };
            resource_spans.push(ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("io.opentelemetry.{}", s.language),
                        version: "2.10.0".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.27.0".into(),
                }],
                schema_url: String::new(),
            });
        }
        ExportTraceServiceRequest { resource_spans }
    }

    /// Generates one trace; returns its span count.
    fn trace(&mut self) -> usize {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        let start = self.clock_ns;
        self.clock_ns += self.cfg.spacing_ns;
        self.effects = Effects::at(&self.faults, &self.services, start);
        let root_op = match &self.entry_weights {
            None => [0usize, 0, 0, 2, 2, 3, 1][self.rng.below(7) as usize],
            Some(w) => {
                let weights: Vec<f64> = w
                    .iter()
                    .enumerate()
                    .map(|(op, w)| w * self.effects.mix_factor(op))
                    .collect();
                let mut x = self.rng.unit() * weights.iter().sum::<f64>();
                weights
                    .iter()
                    .position(|w| {
                        x -= w;
                        x < 0.0
                    })
                    .unwrap_or(0)
            }
        };
        let mut count = 0;
        self.server_span(&trace_id, 0, root_op, None, start, &mut count);
        count
    }

    fn new_span_id(&mut self) -> Vec<u8> {
        self.rng.next_u64().max(1).to_be_bytes().to_vec()
    }

    /// Emits the server-side span of `service`/`op` and its subtree; returns
    /// (end time, failed, answered wrongly).
    fn server_span(
        &mut self,
        trace_id: &[u8; 16],
        service: usize,
        op: usize,
        parent: Option<Vec<u8>>,
        start: u64,
        count: &mut usize,
    ) -> (u64, bool, bool) {
        let operation = self.services[service].operations[op].clone();
        let instrumented = self.services[service].instrumented;
        // An uninstrumented service passes the trace context on: its
        // callees' spans hang under its caller's span.
        let span_id = if instrumented {
            self.new_span_id()
        } else {
            parent.clone().unwrap_or_else(|| self.new_span_id())
        };
        let slow = self.effects.slowdown(service, op);
        // A wrong answer: the code returns early, skipping its calls and
        // most of its work.
        let wrong_rate = self.effects.wrong_rate(service);
        let wrong = wrong_rate > 0.0 && self.rng.unit() < wrong_rate;
        let work = if wrong { 0.3 } else { 1.0 };
        let self_us = (operation.self_us as f64 * slow * work) as u64;
        let mut t = start + self.rng.duration_ns(self_us / 3);
        if let Some((rate, pause)) = self.effects.pause(service)
            && self.rng.unit() < rate
        {
            t += pause;
        }
        let mut failed = false;
        for c in &operation.calls {
            if wrong || self.rng.unit() >= c.probability {
                continue;
            }
            let (end, f, callee_wrong) = self.client_call(
                trace_id,
                service,
                &span_id,
                c.service,
                c.operation,
                t,
                count,
            );
            t = end + self.rng.duration_ns(20);
            failed |= f;
            if callee_wrong {
                // A wrong answer from a callee: what it said makes the
                // rest of this request's calls moot.
                break;
            }
        }
        let leaf_failed = operation.calls.is_empty() && self.rng.unit() < self.cfg.error_rate;
        let injected = match self.effects.failure(service) {
            Some((rate, exception)) if self.rng.unit() < rate => Some(exception),
            _ => None,
        };
        failed |= leaf_failed || injected.is_some();
        let end = t + self.rng.duration_ns(self_us * 2 / 3);
        if !instrumented {
            return (end, failed, wrong);
        }
        let mut attributes = Vec::new();
        let kind = match operation.protocol {
            Protocol::Http => {
                let (method, path) = operation.name.split_once(' ').unwrap_or(("GET", "/"));
                attributes.extend([
                    kv("http.request.method", method),
                    kv("url.path", path.replace(":id", &format!("{}", self.rng.below(5000)))),
                    kv("url.scheme", "http"),
                    kv("http.route", operation.detail.clone()),
                    kvi("http.response.status_code", if failed { 500 } else { 200 }),
                    kv("server.address", "shop.example.com"),
                    kvi("server.port", 8080),
                    kv("client.address", format!("10.0.{}.{}", self.rng.below(255), self.rng.below(255))),
                    kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"),
                    kv("network.protocol.version", "1.1"),
                ]);
                SpanKind::Server
            }
            Protocol::Grpc => {
                let (svc, method) = operation.name.split_once('/').unwrap_or(("svc", "m"));
                attributes.extend([
                    kv("rpc.system", "grpc"),
                    kv("rpc.service", svc),
                    kv("rpc.method", method),
                    kvi("rpc.grpc.status_code", if failed { 2 } else { 0 }),
                    kv(
                        "network.peer.address",
                        format!("10.1.{}.{}", self.rng.below(255), self.rng.below(255)),
                    ),
                ]);
                SpanKind::Server
            }
            Protocol::Messaging => {
                attributes.extend([
                    kv("messaging.system", "kafka"),
                    kv("messaging.destination.name", operation.detail.clone()),
                    kv("messaging.operation.type", "process"),
                    kv("messaging.consumer.group.name", "email"),
                ]);
                SpanKind::Consumer
            }
            Protocol::Db(_) | Protocol::Cache => SpanKind::Internal,
        };
        let mut span = self.span(
            trace_id,
            span_id,
            parent,
            &operation.name,
            kind,
            start,
            end,
            attributes,
        );
        if let Some(Some((ty, msg))) = &injected {
            self.fail_with(&mut span, end, ty, msg);
        } else if leaf_failed || injected.is_some() {
            self.fail(&mut span, end);
        } else if failed {
            span.status = Some(Status {
                message: String::new(),
                code: StatusCode::Error as i32,
            });
        }
        self.push(service, span);
        *count += 1;
        (end, failed, wrong)
    }

    fn push(&mut self, service: usize, span: Span) {
        let version = self
            .effects
            .version(service)
            .unwrap_or(&self.services[service].version)
            .to_owned();
        let restarted = self.effects.restarted(service).is_some();
        match self
            .pending
            .iter_mut()
            .find(|(s, v, r, _)| *s == service && *v == version && *r == restarted)
        {
            Some((.., spans)) => spans.push(span),
            None => self.pending.push((service, version, restarted, vec![span])),
        }
    }

    /// What faults add to one way of a call between `caller` and
    /// `callee` on the network, ns: injected delays (the edge's with
    /// `edge`), and TCP retransmission timeouts (200 ms, doubling) for
    /// each time the packet is lost; `None` when lost four times (the call
    /// times out). Draws nothing when no packet is lost, so traffic without
    /// network faults is the same as without this.
    fn wire_extra(&mut self, caller: usize, callee: usize, edge: bool) -> Option<u64> {
        let mut ns = self.effects.pod_delay_ns(caller, callee)
            + if edge {
                self.effects.edge_delay_ns(caller, callee)
            } else {
                0
            };
        let loss = self.effects.loss(caller, callee);
        if loss <= 0.0 {
            return Some(ns);
        }
        let mut rto = 200_000_000;
        for _ in 0..4 {
            if self.rng.unit() >= loss {
                return Some(ns);
            }
            ns += rto;
            rto *= 2;
        }
        None
    }

    /// Emits a client span in `caller` and, for instrumented callees, the
    /// callee's server span beneath it.
    #[allow(clippy::too_many_arguments)]
    fn client_call(
        &mut self,
        trace_id: &[u8; 16],
        caller: usize,
        parent: &[u8],
        callee: usize,
        op: usize,
        start: u64,
        count: &mut usize,
    ) -> (u64, bool, bool) {
        let operation = self.services[callee].operations[op].clone();
        let span_id = self.new_span_id();
        // The usual time on the wire, then what faults add each way: an
        // edge's delay both ways of a call into an instrumented service,
        // once to a peer.
        let base = self.rng.duration_ns(150);
        let peer = matches!(operation.protocol, Protocol::Db(_) | Protocol::Cache);
        let to = self.wire_extra(caller, callee, true);
        let back = self.wire_extra(caller, callee, !peer);
        let net = base + to.unwrap_or(0);
        let mut wrong = false;
        // A call that cannot connect or times out: no span in the callee.
        let refused = self.effects.restarted(callee) == Some(true);
        let lost = (to.is_none() || back.is_none()) && !refused;
        let (end, failed, kind, attributes) = match operation.protocol {
            Protocol::Http | Protocol::Grpc if refused || lost => {
                let end = start
                    + if lost {
                        3_000_000_000
                    } else {
                        self.rng.duration_ns(500)
                    };
                let attrs = vec![kv(
                    "server.address",
                    format!("{}.shop.svc", self.services[callee].name),
                )];
                (end, true, SpanKind::Client, attrs)
            }
            Protocol::Db(system) => {
                let end = self.peer_end(callee, op, start, operation.self_us, to, back);
                let failed = self.rng.unit() < self.cfg.error_rate / 4.0;
                let attrs = vec![
                    kv("db.system", system),
                    kv("db.namespace", "shop"),
                    kv(
                        "db.operation.name",
                        operation.name.split(' ').next().unwrap_or("SELECT"),
                    ),
                    kv("db.query.text", operation.detail.clone()),
                    kv("server.address", "postgres.shop.svc"),
                    kvi("server.port", 5432),
                ];
                (end, failed, SpanKind::Client, attrs)
            }
            Protocol::Cache => {
                let end = self.peer_end(callee, op, start, operation.self_us, to, back);
                let attrs = vec![
                    kv("db.system", "redis"),
                    kv("db.operation.name", operation.name.clone()),
                    kv("db.query.text", operation.detail.clone()),
                    kv("server.address", "redis.shop.svc"),
                    kvi("server.port", 6379),
                ];
                (end, false, SpanKind::Client, attrs)
            }
            Protocol::Messaging => {
                // Publish (PRODUCER in the caller); the consumer runs later
                // as a child in its own service.
                let end = start + self.rng.duration_ns(operation.self_us);
                let attrs = vec![
                    kv("messaging.system", "kafka"),
                    kv("messaging.destination.name", operation.detail.clone()),
                    kv("messaging.operation.type", "publish"),
                    kv("server.address", "kafka.shop.svc"),
                ];
                for c in &operation.calls {
                    let _ = self.server_span(
                        trace_id,
                        c.service,
                        c.operation,
                        Some(span_id.clone()),
                        end + net,
                        count,
                    );
                }
                (end, false, SpanKind::Producer, attrs)
            }
            Protocol::Http | Protocol::Grpc => {
                let (end, failed, w) = self.server_span(
                    trace_id,
                    callee,
                    op,
                    Some(span_id.clone()),
                    start + net,
                    count,
                );
                wrong = w;
                let net = base + back.unwrap_or(0);
                let (svc, method) = operation.name.split_once('/').unwrap_or(("svc", "m"));
                let attrs = vec![
                    kv("rpc.system", "grpc"),
                    kv("rpc.service", svc),
                    kv("rpc.method", method),
                    kv(
                        "server.address",
                        format!("{}.shop.svc", self.services[callee].name),
                    ),
                    kvi("server.port", 8080),
                    kvi("rpc.grpc.status_code", if failed { 2 } else { 0 }),
                ];
                (end + net, failed, SpanKind::Client, attrs)
            }
        };
        let name = match operation.protocol {
            Protocol::Db(_) | Protocol::Cache => operation.name.to_owned(),
            Protocol::Messaging => format!("{} publish", operation.detail),
            _ => operation.name.to_owned(),
        };
        let mut span = self.span(
            trace_id,
            span_id,
            Some(parent.to_vec()),
            &name,
            kind,
            start,
            end,
            attributes,
        );
        if refused || lost {
            let callee_name = self.services[callee].name.clone();
            let (ty, msg) = if refused {
                (
                    "java.net.ConnectException",
                    format!("Connection refused: {callee_name}.shop.svc:8080"),
                )
            } else {
                (
                    "java.net.SocketTimeoutException",
                    format!("Read timed out calling {callee_name}.shop.svc"),
                )
            };
            self.fail_with(&mut span, end, ty, &msg);
        } else if failed {
            if matches!(operation.protocol, Protocol::Db(_)) {
                self.fail(&mut span, end);
            } else {
                span.status = Some(Status {
                    message: String::new(),
                    code: StatusCode::Error as i32,
                });
            }
        }
        self.push(caller, span);
        *count += 1;
        (end, failed, wrong)
    }
}

#[cfg(test)]
mod tests;
