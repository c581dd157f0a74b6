//! `GET /api/v1/events`: a server-sent events stream of the caller's new and
//! changed incidents (`event: incident`, as the processor hands the change
//! to the RCA stage) and RCA reports (`event: rca`, as they are written),
//! each with `data: {"id": "..."}`. A subscriber that falls behind gets
//! `event: reload` and should re-read what it shows.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiState, Caller, error};

pub(super) async fn stream(
    State(state): State<Arc<ApiState>>,
    Extension(Caller(tenant)): Extension<Caller>,
) -> Response {
    let Some(rca) = &state.rca else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "incident analysis is not running in this process",
        );
    };
    let rx = rca.subscribe();
    let events = futures::stream::unfold(rx, move |mut rx| {
        let tenant = tenant.clone();
        async move {
            loop {
                match rx.recv().await {
                    // Other tenants' events never reach this stream.
                    Ok(ev) if ev.tenant == tenant => {
                        let event = Event::default()
                            .event(ev.kind)
                            .data(format!("{{\"id\":\"{}\"}}", ev.id));
                        return Some((Ok::<_, Infallible>(event), rx));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("reload").data("{}")), rx));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
