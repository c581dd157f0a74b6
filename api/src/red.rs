//! `GET /api/v1/red` and `GET /api/v1/graph`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use causeway_processor::RedQuery;
use causeway_processor::series::CellStats;
use serde::{Deserialize, Serialize};

use super::{ApiState, Caller, Q, error, kind_name};

/// Default range when `from` is absent: the last 15 minutes.
const DEFAULT_RANGE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Deserialize)]
pub(super) struct RedParams {
    service: Option<String>,
    operation: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RangeParams {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
}

/// Parses a time: RFC 3339, or unix milliseconds.
pub(super) fn parse_time(name: &str, raw: &str) -> Result<i64, String> {
    if let Ok(ms) = raw.parse::<i64>() {
        // Before 1970 or past 2262 (where ns overflow i64) is a mistake,
        // and arithmetic on such bounds would overflow downstream.
        return ms
            .checked_mul(1_000_000)
            .filter(|ns| (0..=MAX_TIME_NS).contains(ns))
            .ok_or_else(|| format!("{name}={raw} is out of range (unix ms from 1970 to 2200)"));
    }
    humantime::parse_rfc3339_weak(raw)
        .map_err(|_| {
            format!(
                "{name}={raw:?} is neither RFC 3339 (2025-01-02T15:04:05Z) nor unix milliseconds"
            )
        })
        .and_then(|t| {
            let d = t
                .duration_since(UNIX_EPOCH)
                .map_err(|_| format!("{name} is before 1970"))?;
            i64::try_from(d.as_nanos())
                .ok()
                .filter(|ns| *ns <= MAX_TIME_NS)
                .ok_or_else(|| format!("{name} is out of range (1970 to 2200)"))
        })
}

/// Latest time accepted in a query: 2200-01-01, far from i64's end so that
/// windows and steps added to it cannot overflow.
pub(super) const MAX_TIME_NS: i64 = 7_258_118_400_000_000_000;

pub(super) use causeway_model::time::now_ns;

/// `[from, to)` in ns; default: the last 15 minutes.
pub(super) fn range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), String> {
    let to = match to {
        Some(t) => parse_time("to", t)?,
        None => now_ns(),
    };
    let from = match from {
        Some(f) => parse_time("from", f)?,
        None => to.saturating_sub(i64::try_from(DEFAULT_RANGE.as_nanos()).unwrap_or(0)),
    };
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

pub(super) use causeway_model::time::rfc3339_millis as rfc3339;

fn ms(us: u64) -> f64 {
    (us as f64) / 1000.0
}

#[derive(Debug, Serialize)]
struct Stats {
    calls: u64,
    errors: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl From<CellStats> for Stats {
    fn from(s: CellStats) -> Self {
        Self {
            calls: s.calls,
            errors: s.errors,
            p50_ms: ms(s.p50_us),
            p90_ms: ms(s.p90_us),
            p99_ms: ms(s.p99_us),
            max_ms: ms(s.max_us),
        }
    }
}

/// Self time (span duration minus time in children) quantiles.
#[derive(Debug, Serialize)]
struct SelfStats {
    self_p50_ms: f64,
    self_p90_ms: f64,
    self_p99_ms: f64,
}

impl From<CellStats> for SelfStats {
    fn from(s: CellStats) -> Self {
        Self {
            self_p50_ms: ms(s.p50_us),
            self_p90_ms: ms(s.p90_us),
            self_p99_ms: ms(s.p99_us),
        }
    }
}

#[derive(Debug, Serialize)]
struct Point {
    t: String,
    #[serde(flatten)]
    stats: Stats,
    #[serde(flatten)]
    self_time: Option<SelfStats>,
}

#[derive(Debug, Serialize)]
struct Series {
    service: String,
    operation: String,
    kind: &'static str,
    #[serde(flatten)]
    stats: Stats,
    #[serde(flatten)]
    self_time: Option<SelfStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<Point>>,
}

pub(super) async fn red(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(p): Q<RedParams>,
) -> Response {
    let (from_ns, to_ns) = match range(p.from.as_deref(), p.to.as_deref()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let step_ns = match p.step.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(d)) if d >= Duration::from_secs(1) && d <= Duration::from_secs(366 * 86_400) => {
            Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "step must be a duration from 1s to 366d, e.g. 60s",
            );
        }
    };
    if step_ns.is_some_and(|step| (to_ns - from_ns) / step > 10_000) {
        return error(
            StatusCode::BAD_REQUEST,
            "range / step would return more than 10000 points",
        );
    }
    let query = RedQuery {
        service: p.service,
        operation: p.operation,
        from_ns,
        to_ns,
        step_ns,
    };
    match state.processor.red(tenant, query).await {
        Ok(rows) => {
            let series: Vec<Series> = rows
                .into_iter()
                .map(|r| {
                    let selfs: std::collections::HashMap<i64, CellStats> =
                        r.self_points.into_iter().collect();
                    Series {
                        service: r.service,
                        operation: r.operation,
                        kind: kind_name(r.kind),
                        stats: r.total.into(),
                        self_time: r.self_total.map(SelfStats::from),
                        points: step_ns.map(|_| {
                            r.points
                                .into_iter()
                                .map(|(t, s)| Point {
                                    t: rfc3339(t),
                                    stats: s.into(),
                                    self_time: selfs.get(&t).copied().map(SelfStats::from),
                                })
                                .collect()
                        }),
                    }
                })
                .collect();
            Json(serde_json::json!({ "series": series })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(Debug, Serialize)]
struct Edge {
    client: String,
    server: String,
    connection_type: &'static str,
    calls: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

pub(super) async fn graph(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
    Q(p): Q<RangeParams>,
) -> Response {
    let (from_ns, to_ns) = match range(p.from.as_deref(), p.to.as_deref()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match state.processor.graph(tenant, from_ns, to_ns).await {
        Ok(rows) => {
            let edges: Vec<Edge> = rows
                .into_iter()
                .map(|e| Edge {
                    client: e.client,
                    server: e.server,
                    connection_type: e.connection.as_str(),
                    calls: e.stats.calls,
                    errors: e.stats.errors,
                    p50_ms: ms(e.stats.p50_us),
                    p99_ms: ms(e.stats.p99_us),
                })
                .collect();
            Json(serde_json::json!({ "edges": edges })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_ms() {
        assert_eq!(
            parse_time("from", "1700000000000"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("from", "2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("from", "2023-11-14T22:13:20.5Z"),
            Ok(1_700_000_000_500_000_000)
        );
        assert!(parse_time("from", "yesterday").is_err());
        assert!(range(Some("2000"), Some("1000")).is_err());
        let (f, t) = range(None, None).expect("default");
        assert_eq!(t - f, 15 * 60 * 1_000_000_000);
    }
}
