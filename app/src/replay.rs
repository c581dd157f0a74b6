//! `causeway replay`: OTLP files through the same ingest path and processor
//! as `serve`, as fast as the processor takes them, in event time.
//!
//! Each file holds OTLP `ExportTraceServiceRequest`s: protobuf (one request
//! per file), OTLP/JSON (one request per file, or one per line as the
//! Collector's file exporter writes), optionally gzip-compressed (`.gz`).
//! The results land in the data directory, where a later `serve` (or query)
//! finds them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use causeway_model::{TenantId, Transport};
use causeway_receiver::otlp::body::{Encoding, decompress, json_to_protobuf};
use causeway_receiver::{Admission, Ingest, ReceiveError, ReceiverMetrics};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::wiring::{CHANGE_CAPACITY, start_processor};
use crate::config::Config;

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Files read.
    pub files: u64,
    /// OTLP requests submitted.
    pub requests: u64,
    /// Spans accepted.
    pub spans: u64,
    /// Spans refused (malformed requests, partial success).
    pub rejected_spans: u64,
    /// `file[:line]: problem`, for requests that were refused.
    pub errors: Vec<String>,
    /// Incidents detected in the replayed data, with their anomalies.
    pub incidents: Vec<(causeway_model::Incident, Vec<causeway_model::Anomaly>)>,
    /// Wall-clock time the replay took.
    pub elapsed: Duration,
}

/// Replays `files` into `tenant`'s data under the config's data directory.
pub async fn replay(
    config: Config,
    tenant: TenantId,
    files: Vec<PathBuf>,
) -> anyhow::Result<ReplayReport> {
    let mut session = Session::start(&config, tenant)?;
    for file in &files {
        session.report.files += 1;
        if let Err(e) = replay_file(&mut session, file).await {
            session
                .report
                .errors
                .push(format!("{}: {e:#}", file.display()));
        }
    }
    session.finish().await
}

/// A processor fed with requests through the same ingest path as `serve`,
/// without network listeners.
pub struct Session {
    ingest: Arc<Ingest>,
    queries: causeway_processor::QueryHandle,
    processor: tokio::sync::oneshot::Receiver<()>,
    max_bytes: usize,
    tenant: TenantId,
    started: Instant,
    /// Incident changes, until someone takes them (an RCA stage).
    changes: Option<mpsc::Receiver<causeway_processor::IncidentChange>>,
    /// What was submitted so far.
    pub report: ReplayReport,
}

impl Session {
    /// Opens the stores under the config's data directory and starts the
    /// processor.
    pub fn start(config: &Config, tenant: TenantId) -> anyhow::Result<Self> {
        let mut registry = Registry::default();
        let metrics = ReceiverMetrics::register(&mut registry);
        let (batch_tx, batch_rx) = mpsc::channel(config.processors.queue.capacity);
        // Asked once, at the end, for what detection found.
        let (query_tx, query_rx) = mpsc::channel(1);
        let admission = Admission::new(batch_tx, &config.processors.queue, 1);
        // Nobody may take the changes: the processor keeps at most the
        // latest of each incident waiting, and drops them when this goes.
        let (change_tx, change_rx) = mpsc::channel(CHANGE_CAPACITY);
        // A replay is bounded and re-runnable: it needs no write-ahead log
        // (a serve's unreleased records stay for the next serve).
        let (processor, _) = start_processor(
            config,
            batch_rx,
            query_rx,
            Some(change_tx),
            causeway_processor::ProcessorMetrics::register(&mut registry),
            None,
            None,
        )?;
        Ok(Self {
            ingest: Arc::new(Ingest::new(admission, metrics)),
            queries: causeway_processor::QueryHandle::new(query_tx),
            processor,
            max_bytes: config.receivers.otlp.largest_request(),
            tenant,
            started: Instant::now(),
            changes: Some(change_rx),
            report: ReplayReport::default(),
        })
    }

    /// Submits one protobuf `ExportTraceServiceRequest`, waiting while the
    /// queue is full: a replay has no client to push back on, so it slows
    /// down to the processor's pace. `origin` names it in errors.
    pub async fn submit(&mut self, payload: Bytes, origin: &str) {
        loop {
            match self
                .ingest
                .export(self.tenant.clone(), Transport::File, payload.clone())
                .await
            {
                Ok(outcome) => {
                    self.report.requests += 1;
                    self.report.spans += outcome.accepted;
                    self.report.rejected_spans += outcome.rejected;
                    if outcome.rejected > 0 {
                        self.report
                            .errors
                            .push(format!("{origin}: {}", outcome.message));
                    }
                    return;
                }
                Err(ReceiveError::Overloaded { .. } | ReceiveError::TenantThrottled { .. }) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
                    self.report.errors.push(format!("{origin}: {e}"));
                    return;
                }
            }
        }
    }

    /// The processor's query handle (what `serve`'s API and RCA service
    /// ask).
    pub fn queries(&self) -> causeway_processor::QueryHandle {
        self.queries.clone()
    }

    /// The processor's incident changes, for an RCA stage (the first call
    /// takes them; later calls answer `None`).
    pub fn take_changes(&mut self) -> Option<mpsc::Receiver<causeway_processor::IncidentChange>> {
        self.changes.take()
    }

    /// Waits until everything submitted is processed, collects the
    /// incidents found, and stops the processor (final checkpoint).
    pub async fn finish(mut self) -> anyhow::Result<ReplayReport> {
        // The stage answers after processing everything queued before the
        // question: the input is over, its last windows are judged, and
        // these are the incidents of the whole replay.
        if let Err(e) = self.queries.end_of_input(self.tenant.clone()).await {
            tracing::warn!(error = %e, "the last windows were not judged");
        }
        if let Ok(list) = self.queries.incidents(self.tenant.clone()).await {
            for i in list.into_iter().rev() {
                if let Ok(Some(detail)) = self.queries.incident(self.tenant.clone(), i.id).await {
                    self.report.incidents.push(detail);
                }
            }
        }
        drop(self.queries);
        // Closing the queue lets the processor drain it, write its final
        // checkpoint and stop.
        drop(self.ingest);
        self.processor
            .await
            .context("the processor thread ended abnormally")?;
        self.report.elapsed = self.started.elapsed();
        Ok(self.report)
    }
}

async fn replay_file(session: &mut Session, path: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(path).with_context(|| "cannot read the file".to_owned())?;
    let mut data = Bytes::from(raw);
    let name = path.to_string_lossy();
    let name = name.strip_suffix(".gz").map(str::to_owned);
    if name.is_some() || data.starts_with(&[0x1f, 0x8b]) {
        data = decompress(data, Encoding::Gzip, session.max_bytes.saturating_mul(64))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let lower = name
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
        .to_ascii_lowercase();
    let first = data.iter().copied().find(|b| !b.is_ascii_whitespace());
    let json = lower.ends_with(".json")
        || lower.ends_with(".jsonl")
        || lower.ends_with(".ndjson")
        || first == Some(b'{');
    let origin = path.display().to_string();
    if !json {
        session.submit(data, &origin).await;
        return Ok(());
    }
    // One request per file, or one per line.
    match json_to_protobuf(&data) {
        Ok(payload) => {
            session.submit(payload, &origin).await;
            Ok(())
        }
        Err(whole) => {
            let text = std::str::from_utf8(&data).context("OTLP/JSON must be UTF-8")?;
            let lines: Vec<(usize, &str)> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .collect();
            if lines.len() < 2 {
                anyhow::bail!("{whole}");
            }
            for (i, line) in lines {
                let at = format!("{origin}:{}", i + 1);
                match json_to_protobuf(line.as_bytes()) {
                    Ok(payload) => session.submit(payload, &at).await,
                    Err(e) => session.report.errors.push(format!("{at}: {e}")),
                }
            }
            Ok(())
        }
    }
}
