//! The only place that creates channels: receivers → bounded queue →
//! processor; API → query channel → processor. Shutdown runs in flow order:
//! receivers stop accepting and finish in-flight requests, the processor
//! drains everything they acknowledged, then the API stops.

use std::sync::Arc;

use anyhow::Context;
use causeway_exporter::api::{self, ApiState, Readiness};
use causeway_processor::{ProcessorStage, QueryHandle};
use causeway_receiver::net::{self, Listener, ServeOptions};
use causeway_receiver::{Admission, Authenticator, Ingest, OtlpReceiver, ReceiverMetrics};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Capacity of the API → processor query channel.
const QUERY_CAPACITY: usize = 64;

/// Runs causeway until SIGTERM or SIGINT, then shuts down losing nothing
/// that was acknowledged.
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.storage.data_dir.display()
        )
    })?;
    let grace = config.service.shutdown_timeout;
    let mut registry = Registry::default();
    let receiver_metrics = ReceiverMetrics::register(&mut registry);

    let auth = Arc::new(Authenticator::new(&config.auth.api_keys));
    let (batch_tx, batch_rx) = mpsc::channel(config.processors.queue.capacity);
    let (query_tx, query_rx) = mpsc::channel(QUERY_CAPACITY);
    let admission = Admission::new(batch_tx, &config.processors.queue, auth.tenants().len());
    let ingest = Arc::new(Ingest::new(admission, receiver_metrics));

    let receiver = OtlpReceiver::bind(&config.receivers.otlp, ingest, Arc::clone(&auth), grace)
        .await
        .context("starting the OTLP receiver")?;
    let api_cfg = &config.exporters.api;
    let api_listener = Listener::bind(api_cfg.endpoint, api_cfg.tls.as_ref())
        .await
        .context("starting the API")?;

    let processor = tokio::spawn(
        ProcessorStage::new(batch_rx, query_rx, config.processors.spans.clone()).run(),
    );

    let ready = Arc::new(Readiness::default());
    let api_state = Arc::new(ApiState {
        auth: Arc::clone(&auth),
        processor: QueryHandle::new(query_tx),
        registry: Arc::new(registry),
        ready: Arc::clone(&ready),
    });
    let receivers_stop = CancellationToken::new();
    let api_stop = CancellationToken::new();
    tracing::info!(
        grpc = ?receiver.grpc_addr(),
        http = ?receiver.http_addr(),
        api = %api_listener.local_addr(),
        data_dir = %config.storage.data_dir.display(),
        tenants = ?auth.tenants(),
        "causeway is ready"
    );
    let receivers = tokio::spawn(receiver.run(receivers_stop.clone()));
    let api_server = tokio::spawn(net::serve(
        api_listener,
        api::router(api_state),
        ServeOptions {
            grace,
            ..ServeOptions::default()
        },
        api_stop.clone(),
    ));
    ready.set(true);

    let signal = shutdown_signal().await;
    tracing::info!(
        signal,
        "shutting down: no new requests; draining what was acknowledged"
    );
    ready.set(false);
    // A second signal stops at once, for operators who do not want to wait.
    tokio::spawn(async {
        let again = shutdown_signal().await;
        tracing::warn!(signal = again, "second signal: exiting without draining");
        std::process::exit(130);
    });

    receivers_stop.cancel();
    receivers.await.context("receiver task")?;
    // Every sender of the queue is gone now; the processor ends once it
    // has processed everything that was queued.
    processor.await.context("processor task")?;
    api_stop.cancel();
    api_server.await.context("API task")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
