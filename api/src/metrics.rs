//! `GET /metrics`: Prometheus text exposition.
//!
//! Series carry a `tenant` label; a caller sees only its own tenant's series
//! and those without a tenant (process-wide health), so one tenant cannot
//! learn another's names or volumes from the scrape.
//!
//! After the process's own metrics come the caller's span metrics and
//! service graph metrics, named as the OpenTelemetry Collector's
//! `spanmetrics` and `servicegraph` connectors name them behind its
//! Prometheus exporter (`traces_span_metrics_calls_total`,
//! `traces_span_metrics_duration_seconds`, `traces_service_graph_request_total`,
//! `…_failed_total`, `…_server_seconds`, `…_client_seconds`), with the same
//! labels and default buckets, so dashboards built for those work unchanged.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::fmt::Write as _;

use causeway_processor::MetricsSnapshot;
use causeway_processor::graph::EdgeKey;
use causeway_processor::red::{RedKey, kind_label, status_label};
use causeway_processor::series::{TOTALS_BUCKETS_US, Totals};

use super::{ApiState, Caller, error};

pub(super) async fn scrape(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics: {e}"),
        );
    }
    let own = format!("tenant=\"{}\"", tenant.as_str());
    let mut filtered: String = text
        .lines()
        .filter(|line| {
            *line != "# EOF"
                && (line.starts_with('#') || !line.contains("tenant=\"") || line.contains(&own))
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    match state.processor.metrics(tenant.clone()).await {
        Ok(snap) => render_trace_metrics(&mut filtered, &snap),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    match state.processor.incidents(tenant.clone()).await {
        Ok(list) => {
            let open = list.iter().filter(|i| i.resolved_ns.is_none()).count();
            let active: usize = list
                .iter()
                .filter(|i| i.resolved_ns.is_none())
                .map(|i| i.anomalies.len())
                .sum();
            let t = escape(tenant.as_str());
            let _ = writeln!(filtered, "# TYPE causeway_incidents_open gauge");
            let _ = writeln!(
                filtered,
                "# HELP causeway_incidents_open Incidents not resolved yet."
            );
            let _ = writeln!(filtered, "causeway_incidents_open{{tenant=\"{t}\"}} {open}");
            let _ = writeln!(filtered, "# TYPE causeway_anomalies_active gauge");
            let _ = writeln!(
                filtered,
                "# HELP causeway_anomalies_active Anomalies in incidents not resolved yet."
            );
            let _ = writeln!(
                filtered,
                "causeway_anomalies_active{{tenant=\"{t}\"}} {active}"
            );
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    filtered.push_str("# EOF\n");
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        filtered,
    )
        .into_response()
}

/// Appends the span and service graph metrics in OpenMetrics text.
fn render_trace_metrics(out: &mut String, snap: &MetricsSnapshot) {
    let span_labels = |k: &RedKey| {
        format!(
            "service_name=\"{}\",span_name=\"{}\",span_kind=\"{}\",status_code=\"{}\"",
            escape(&k.service),
            escape(&k.operation),
            kind_label(k.kind),
            status_label(k.status)
        )
    };
    let red = labelled(&snap.red, span_labels);
    counter(
        out,
        "traces_span_metrics_calls",
        "Spans, by service, span name, kind and status.",
        &red,
        |t| t.calls,
    );
    histogram(
        out,
        "traces_span_metrics_duration_seconds",
        "Span durations, by service, span name, kind and status.",
        &red,
    );

    let edge_labels = |k: &EdgeKey| {
        format!(
            "client=\"{}\",server=\"{}\",connection_type=\"{}\"",
            escape(&k.client),
            escape(&k.server),
            k.connection.as_str()
        )
    };
    let edges = labelled(&snap.edges, edge_labels);
    let server = labelled(&snap.edges_server, edge_labels);
    counter(
        out,
        "traces_service_graph_request",
        "Requests between two nodes of the service graph.",
        &edges,
        |t| t.calls,
    );
    counter(
        out,
        "traces_service_graph_request_failed",
        "Failed requests between two nodes of the service graph.",
        &edges,
        |t| t.errors,
    );
    histogram(
        out,
        "traces_service_graph_request_server_seconds",
        "Request durations as the server saw them.",
        &server,
    );
    histogram(
        out,
        "traces_service_graph_request_client_seconds",
        "Request durations as the client saw them (the server's when the client has no span).",
        &edges,
    );
}

/// Rows with their label sets, sorted so scrapes are stable.
fn labelled<K>(rows: &[(K, Totals)], label: impl Fn(&K) -> String) -> Vec<(String, &Totals)> {
    let mut out: Vec<(String, &Totals)> = rows.iter().map(|(k, t)| (label(k), t)).collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    rows: &[(String, &Totals)],
    value: impl Fn(&Totals) -> u64,
) {
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, t) in rows {
        let _ = writeln!(out, "{name}_total{{{labels}}} {}", value(t));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, rows: &[(String, &Totals)]) {
    let _ = writeln!(out, "# TYPE {name} histogram");
    let _ = writeln!(out, "# UNIT {name} seconds");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, t) in rows {
        let mut cumulative = 0u64;
        for (i, le) in TOTALS_BUCKETS_US.iter().enumerate() {
            cumulative += t.buckets[i];
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                *le as f64 / 1e6
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", t.calls);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", t.sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", t.calls);
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    std::borrow::Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}
