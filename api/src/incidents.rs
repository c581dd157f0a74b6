//! `GET /api/v1/anomalies`, `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use causeway_model::{Anomaly, Incident, Subject};
use serde_json::{Value, json};

use super::red::{RangeParams, range, rfc3339};
use super::{ApiState, Caller, PageParams, Q, error, paginate};

fn anomaly_json(a: &Anomaly) -> Value {
    let subject = match &a.subject {
        Subject::Operation {
            service,
            operation,
            kind,
        } => {
            json!({"type": "operation", "service": service, "operation": operation, "kind": super::kind_name(*kind)})
        }
        Subject::Service { service } => json!({"type": "service", "service": service}),
        Subject::Edge {
            client,
            server,
            connection,
        } => {
            json!({"type": "edge", "client": client, "server": server, "connection_type": connection})
        }
    };
    // Latency in ms, ratios as they are.
    let (unit, scale) = if a.metric.starts_with("latency") || a.metric.starts_with("self_time") {
        ("ms", 1e-3)
    } else if a.metric.starts_with("traffic") {
        ("calls", 1.0)
    } else if matches!(
        a.metric,
        "new_error_signature" | "new_edge" | "edge_vanished"
    ) {
        // Events: how many occurrences (or calls) were seen.
        ("count", 1.0)
    } else {
        ("ratio", 1.0)
    };
    json!({
        "id": a.id.to_string(),
        "incident": a.incident.to_string(),
        "subject": subject,
        "metric": a.metric,
        "unit": unit,
        "observed": a.observed * scale,
        "expected": a.expected * scale,
        "score": (a.score * 100.0).round() / 100.0,
        "severity": a.severity.as_str(),
        "onset": rfc3339(a.onset_ns),
        "detected": rfc3339(a.detected_ns),
        "last": rfc3339(a.last_ns),
        "resolved": a.resolved_ns.map(rfc3339),
        "example_trace_ids": a.example_trace_ids,
        "detail": a.detail,
    })
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id.to_string(),
        "state": i.state.as_str(),
        "severity": i.severity.as_str(),
        "onset": rfc3339(i.onset_ns),
        "updated": rfc3339(i.updated_ns),
        "resolved": i.resolved_ns.map(rfc3339),
        "services": i.services,
        "anomalies": i.anomalies.iter().map(u64::to_string).collect::<Vec<_>>(),
    })
}

pub(super) async fn anomalies(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(p): Q<RangeParams>,
    Q(pp): Q<PageParams>,
) -> Response {
    let (from, to) = match range(p.from.as_deref(), p.to.as_deref()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let page = match pp.page() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match state.processor.anomalies(tenant, from, to).await {
        Ok(list) => {
            let (list, next) = paginate(list, |a| (a.onset_ns, a.id), page);
            Json(json!({
                "anomalies": list.iter().map(anomaly_json).collect::<Vec<_>>(),
                "next_cursor": next,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(super) async fn incidents(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(pp): Q<PageParams>,
) -> Response {
    let page = match pp.page() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match state.processor.incidents(tenant).await {
        Ok(list) => {
            let (list, next) = paginate(list, |i| (i.onset_ns, i.id), page);
            Json(json!({
                "incidents": list.iter().map(incident_json).collect::<Vec<_>>(),
                "next_cursor": next,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(super) async fn incident(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    // Unknown, malformed and other tenants' ids all read as "no such
    // incident": existence is not leaked.
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, "no such incident");
    };
    match state.processor.incident(tenant, id).await {
        Ok(Some((incident, anomalies))) => {
            let mut body = incident_json(&incident);
            let mut timeline: Vec<(i64, String)> = Vec::new();
            for a in &anomalies {
                let what = a.subject.to_string();
                timeline.push((a.onset_ns, format!("{} of {what} shifted", a.metric)));
                timeline.push((
                    a.detected_ns,
                    format!("{} of {what} detected ({})", a.metric, a.severity.as_str()),
                ));
                if let Some(r) = a.resolved_ns {
                    timeline.push((r, format!("{} of {what} back to normal", a.metric)));
                }
            }
            if let Some(r) = incident.resolved_ns {
                timeline.push((r, "incident resolved".to_owned()));
            }
            timeline.sort_by_key(|(t, _)| *t);
            body["anomalies"] = Value::Array(anomalies.iter().map(anomaly_json).collect());
            body["timeline"] = Value::Array(
                timeline
                    .into_iter()
                    .map(|(t, e)| json!({"time": rfc3339(t), "event": e}))
                    .collect(),
            );
            Json(body).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such incident"),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use causeway_model::{Severity, Subject};

    use super::*;

    /// An operation's kind reads the same in an anomaly as in the RED
    /// series and traces of that operation.
    #[test]
    fn an_anomaly_names_its_operations_kind_as_the_red_api_does() {
        let a = Anomaly {
            id: 1,
            subject: Subject::Operation {
                service: "checkout".into(),
                operation: "POST /checkout".into(),
                kind: causeway_model::schema::kind::SERVER,
            },
            metric: "latency_p99",
            onset_ns: 1,
            detected_ns: 2,
            last_ns: 2,
            resolved_ns: None,
            observed: 2.0,
            expected: 1.0,
            score: 7.0,
            severity: Severity::Major,
            example_trace_ids: Vec::new(),
            incident: 1,
            detail: None,
        };
        let v = anomaly_json(&a);
        assert_eq!(v["subject"]["kind"], "server");
        assert_eq!(v["subject"]["type"], "operation");
    }
}
