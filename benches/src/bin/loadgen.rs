//! OTLP trace load generator.
//!
//! Sends pre-encoded batches of whole traces (the web-shop workload, about
//! `--spans` spans per request, the attributes real SDKs set) over OTLP/gRPC
//! or OTLP/HTTP from several connections with several requests in flight
//! each, and reports accepted spans per second. Given the server's `--pid`,
//! it also reads the server's CPU time and peak memory from `/proc` and
//! reports spans per server CPU-second: the figure that compares collectors
//! fairly on a shared machine.
//!
//! By default it saturates the server (as many requests as the server
//! acknowledges). With `--rate`, it sends at a fixed rate instead (open
//! loop, requests spread evenly over time, at most the in-flight limit
//! outstanding), so that two servers are compared doing the same work:
//! at saturation a server that queues more looks cheaper per span until
//! it has to catch up, and the client's own CPU (tonic compressing gzip
//! requests) changes how hard the server is pushed.
//!
//! ```text
//! loadgen --grpc 127.0.0.1:4317 --pid $(pgrep causeway) --duration 20s
//! loadgen --http http://127.0.0.1:4318 --gzip --pid ...
//! loadgen --grpc 127.0.0.1:4317 --rate 100000 --pid ...
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes};
use causeway_benches::{Workload, WorkloadConfig, span_count};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

#[derive(Debug, Parser)]
#[command(about = "OTLP trace load generator")]
struct Args {
    /// OTLP/gRPC target, host:port.
    #[arg(long, conflicts_with = "http")]
    grpc: Option<String>,
    /// OTLP/HTTP base URL (the path /v1/traces is appended).
    #[arg(long)]
    http: Option<String>,
    /// Spans per request (whole traces, so slightly more).
    #[arg(long, default_value_t = 1000)]
    spans: usize,
    /// Distinct pre-encoded requests to cycle through.
    #[arg(long, default_value_t = 32)]
    batches: usize,
    /// Connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// How long to send, e.g. 20s.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before measuring.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// gzip the requests.
    #[arg(long)]
    gzip: bool,
    /// API key, sent as `Authorization: Bearer`.
    #[arg(long)]
    api_key: Option<String>,
    /// PID of the server, for CPU and memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// Send exactly this many requests (no warm-up, no time limit), then
    /// report how many spans were acknowledged: for delivery checks.
    #[arg(long)]
    requests: Option<u64>,
    /// Name printed with the results.
    #[arg(long, default_value = "server")]
    label: String,
    /// Send at this many spans per second (requests evenly spaced)
    /// instead of as fast as the server answers.
    #[arg(long)]
    rate: Option<f64>,
}

/// Spaces requests evenly at a fixed rate, shared by all senders: the
/// `i`-th request (in the order senders ask) is due at `start + i *
/// interval`. A sender that is late sends at once, so the schedule does
/// not drift; the in-flight limit still bounds what is outstanding.
#[derive(Debug)]
struct Pacer {
    start: tokio::time::Instant,
    interval: Duration,
    next: AtomicU64,
}

impl Pacer {
    fn new(spans_per_second: f64, spans_per_request: u64) -> anyhow::Result<Self> {
        if !(spans_per_second.is_finite() && spans_per_second > 0.0) {
            bail!("--rate must be a positive number of spans per second");
        }
        Ok(Self {
            start: tokio::time::Instant::now(),
            interval: Duration::from_secs_f64(spans_per_request as f64 / spans_per_second),
            next: AtomicU64::new(0),
        })
    }

    /// Waits for this sender's next slot.
    async fn wait(&self) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self.start + self.interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
    }
}

#[derive(Debug, Default)]
struct Counters {
    ok_requests: AtomicU64,
    ok_spans: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
}

/// Takes one request from the budget; false when it is spent.
fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; fields resume after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

/// Peak and current resident memory of a process, MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut workload = Workload::new(WorkloadConfig::default());
    let mut batches = Vec::with_capacity(args.batches);
    for _ in 0..args.batches {
        let req = workload.batch(args.spans);
        let spans: u64 = span_count(&req);
        let bytes = Bytes::from(prost::Message::encode_to_vec(&req));
        batches.push((bytes, spans));
    }
    let avg_bytes = batches.iter().map(|(b, _)| b.len()).sum::<usize>() / batches.len();
    let avg_spans = batches.iter().map(|(_, s)| *s).sum::<u64>() / batches.len() as u64;
    let batches = Arc::new(batches);
    let pacer = args
        .rate
        .map(|r| Pacer::new(r, avg_spans.max(1)))
        .transpose()?
        .map(Arc::new);
    let counters = Arc::new(Counters::default());
    let exact = args.requests.is_some();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(exact));
    let (warmup, duration) = if exact {
        (Duration::ZERO, Duration::from_secs(24 * 3600))
    } else {
        (args.warmup, args.duration)
    };
    let deadline = Instant::now() + warmup + duration;
    // Requests left to send in --requests mode.
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX)));

    let mut tasks = Vec::new();
    let transport;
    if let Some(target) = &args.grpc {
        transport = if args.gzip { "grpc+gzip" } else { "grpc" };
        for c in 0..args.connections {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(4 << 20)
                .connect()
                .await
                .with_context(|| format!("connecting to {target}"))?;
            for i in 0..args.inflight {
                let channel = channel.clone();
                let batches = Arc::clone(&batches);
                let counters = Arc::clone(&counters);
                let measuring = Arc::clone(&measuring);
                let key = args.api_key.clone();
                let gzip = args.gzip;
                let budget = Arc::clone(&budget);
                let pacer = pacer.clone();
                tasks.push(tokio::spawn(async move {
                    let mut client = tonic::client::Grpc::new(channel);
                    if gzip {
                        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                    }
                    let mut n = c * 7 + i;
                    while Instant::now() < deadline && take(&budget) {
                        if let Some(p) = &pacer {
                            p.wait().await;
                        }
                        let (bytes, spans) = &batches[n % batches.len()];
                        n += 1;
                        let mut req = tonic::Request::new(bytes.clone());
                        if let Some(Ok(v)) = key.as_ref().map(|k| format!("Bearer {k}").parse()) {
                            req.metadata_mut().insert("authorization", v);
                        }
                        if client.ready().await.is_err() {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        let path = http::uri::PathAndQuery::from_static(
                            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                        );
                        let result = client.unary(req, path, RawCodec).await;
                        let counting = measuring.load(Ordering::Relaxed);
                        match result {
                            Ok(_) if counting => {
                                counters.ok_requests.fetch_add(1, Ordering::Relaxed);
                                counters.ok_spans.fetch_add(*spans, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(s)
                                if matches!(
                                    s.code(),
                                    Code::Unavailable | Code::ResourceExhausted
                                ) =>
                            {
                                counters.throttled.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(s) => {
                                if counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                    eprintln!("first failure: {s}");
                                }
                            }
                        }
                    }
                }));
            }
        }
    } else if let Some(base) = &args.http {
        transport = if args.gzip { "http+gzip" } else { "http" };
        let url: http::Uri = format!("{}/v1/traces", base.trim_end_matches('/')).parse()?;
        let bodies: Vec<(Bytes, u64)> = batches
            .iter()
            .map(|(b, s)| {
                if args.gzip {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    std::io::Write::write_all(&mut e, b)
                        .map(|_| (Bytes::from(e.finish().unwrap_or_default()), *s))
                } else {
                    Ok((b.clone(), *s))
                }
            })
            .collect::<Result<_, _>>()?;
        let bodies = Arc::new(bodies);
        for c in 0..args.connections * args.inflight {
            let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build_http();
            let bodies = Arc::clone(&bodies);
            let counters = Arc::clone(&counters);
            let measuring = Arc::clone(&measuring);
            let url = url.clone();
            let key = args.api_key.clone();
            let gzip = args.gzip;
            let budget = Arc::clone(&budget);
            let pacer = pacer.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = c;
                while Instant::now() < deadline && take(&budget) {
                    if let Some(p) = &pacer {
                        p.wait().await;
                    }
                    let (body, spans) = &bodies[n % bodies.len()];
                    n += 1;
                    let mut b = http::Request::post(url.clone())
                        .header("content-type", "application/x-protobuf");
                    if gzip {
                        b = b.header("content-encoding", "gzip");
                    }
                    if let Some(k) = &key {
                        b = b.header("authorization", format!("Bearer {k}"));
                    }
                    let Ok(req) = b.body(Full::new(body.clone())) else {
                        break;
                    };
                    let counting = measuring.load(Ordering::Relaxed);
                    match client.request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            let _ = resp.into_body().collect().await;
                            if status.is_success() {
                                if counting {
                                    counters.ok_requests.fetch_add(1, Ordering::Relaxed);
                                    counters.ok_spans.fetch_add(*spans, Ordering::Relaxed);
                                }
                            } else if status.as_u16() == 429 || status.as_u16() == 503 {
                                counters.throttled.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            } else if counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failure: HTTP {status}");
                            }
                        }
                        Err(e) => {
                            if counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failure: {e}");
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }));
        }
    } else {
        bail!("give --grpc HOST:PORT or --http URL");
    }

    tokio::time::sleep(warmup).await;
    let cpu0 = args.pid.map(cpu_seconds).transpose()?;
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    if exact {
        for t in tasks.drain(..) {
            let _ = t.await;
        }
    } else {
        tokio::time::sleep(duration).await;
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = args.pid.map(cpu_seconds).transpose()?;
    for t in tasks {
        let _ = t.await;
    }
    let spans = counters.ok_spans.load(Ordering::Relaxed);
    let requests = counters.ok_requests.load(Ordering::Relaxed);
    let rate = spans as f64 / elapsed;
    let mut line = format!(
        "{label:<10} {transport:<9} batch={avg_spans} spans/{kib} KiB  conns={conns}x{inflight}  accepted={spans} spans in {requests} requests  {rate:>10.0} spans/s",
        label = args.label,
        kib = avg_bytes / 1024,
        conns = args.connections,
        inflight = args.inflight,
    );
    if let (Some(pid), Some(c0), Some(c1)) = (args.pid, cpu0, cpu1) {
        let cpu = c1 - c0;
        let (peak, rss) = memory_mib(pid);
        line.push_str(&format!(
            "  server_cpu={cpu:.2}s ({util:.0}% of a core)  {per_cpu:>10.0} spans/CPU-s  rss={rss:.0} MiB peak={peak:.0} MiB",
            util = 100.0 * cpu / elapsed,
            per_cpu = if cpu > 0.0 { spans as f64 / cpu } else { 0.0 },
        ));
    }
    let throttled = counters.throttled.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    line.push_str(&format!("  throttled={throttled} failed={failed}"));
    // The result line is this tool's output.
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
    Ok(())
}

/// Sends pre-encoded request bytes as they are; ignores the response body.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}
