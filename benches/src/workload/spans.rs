//! Building one span: its attributes, its peer's answer, and how a
//! failure marks it (status, `exception` event).

use super::*;

impl Workload {
    /// When a call to an uninstrumented peer (database, cache) started at
    /// `start` returns: its own work, slowed by active faults, and what
    /// faults add to the network both ways (`to`, `back`: see
    /// `wire_extra`; a lost packet is a 3-s timeout).
    pub(super) fn peer_end(
        &mut self,
        peer: usize,
        op: usize,
        start: u64,
        self_us: u64,
        to: Option<u64>,
        back: Option<u64>,
    ) -> u64 {
        let slow = self.effects.slowdown(peer, op);
        let timeout = 3_000_000_000;
        start
            + to.unwrap_or(timeout)
            + back.unwrap_or(0)
            + self.rng.duration_ns((self_us as f64 * slow) as u64)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn span(
        &mut self,
        trace_id: &[u8; 16],
        span_id: Vec<u8>,
        parent: Option<Vec<u8>>,
        name: &str,
        kind: SpanKind,
        start: u64,
        end: u64,
        attributes: Vec<KeyValue>,
    ) -> Span {
        Span {
            trace_id: trace_id.to_vec(),
            span_id,
            trace_state: String::new(),
            parent_span_id: parent.unwrap_or_default(),
            flags: 0x101,
            name: name.to_owned(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: Some(Status {
                message: String::new(),
                code: StatusCode::Unset as i32,
            }),
        }
    }

    pub(super) fn fail(&mut self, span: &mut Span, at: u64) {
        let (ty, msg) = Self::COMMON_FAILURES[self.rng.below(3) as usize];
        self.fail_with(span, at, ty, msg);
    }

    /// The benign failures every shop has now and then.
    const COMMON_FAILURES: [(&'static str, &'static str); 3] = [
        ("java.net.SocketTimeoutException", "Read timed out"),
        (
            "io.grpc.StatusRuntimeException",
            "UNAVAILABLE: upstream connect error",
        ),
        (
            "org.postgresql.util.PSQLException",
            "ERROR: deadlock detected",
        ),
    ];

    pub(super) fn fail_with(&mut self, span: &mut Span, at: u64, ty: &str, msg: &str) {
        span.status = Some(Status {
            message: msg.to_owned(),
            code: StatusCode::Error as i32,
        });
        span.events.push(Event {
            time_unix_nano: at,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", ty),
                kv("exception.message", msg),
                kv(
                    "exception.stacktrace",
                    format!("{ty}: {msg}\n\tat shop.Handler.handle(Handler.java:42)\n\tat shop.Server.dispatch(Server.java:118)\n\tat java.base/java.lang.Thread.run(Thread.java:1583)"),
                ),
            ],
            dropped_attributes_count: 0,
        });
    }
}
