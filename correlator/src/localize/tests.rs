//! Localization on small generated traces: one test per fault shape and
//! per way a symptom can mislead.

use causeway_model::rca::Evidence;

use super::origins::names;
use super::shift::{Point, scanned_shift, shift_score, tail_drift};
use super::{EXAMPLES, localize};
use crate::spans::{Interner, SpanRec, SpanSet};

/// A tiny trace builder: `frontend` calls `checkout`, which calls
/// `db`; each span may log templates.
struct Gen {
    strings: Interner,
    next: u64,
    /// Added to the frontend's wait for checkout (network delay).
    wire_ns: i64,
}

impl Gen {
    fn new() -> Self {
        Self {
            strings: Interner::default(),
            next: 1,
            wire_ns: 0,
        }
    }

    fn id8(&mut self) -> [u8; 8] {
        self.next += 1;
        self.next.to_be_bytes()
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        trace: [u8; 16],
        parent: Option<[u8; 8]>,
        service: &str,
        op: &str,
        start: i64,
        dur: i64,
        error: bool,
        events: &[&str],
    ) -> SpanRec {
        let events = (!events.is_empty()).then(|| self.strings.intern(&events.join("\n")));
        SpanRec {
            trace,
            span: self.id8(),
            parent,
            service: self.strings.intern(service),
            version: None,
            instance: None,
            operation: self.strings.intern(op),
            start_ns: start,
            end_ns: start + dur,
            error,
            events,
            self_ns: dur,
            child_error: false,
            remote_child: None,
            error_text: None,
        }
    }

    /// One request at `t`. `skip_log`: checkout no longer logs its
    /// second line and fails (an exception skipped it), and the
    /// frontend fails with a generic error. `slow_db`: the database's
    /// own work takes `factor` times longer.
    fn request(&mut self, t: i64, skip_log: bool, db_factor: i64) -> Vec<SpanRec> {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&t.to_be_bytes());
        trace[8..].copy_from_slice(&self.next.to_be_bytes());
        let fe = self.span(
            trace,
            None,
            "frontend",
            "GET /buy",
            t,
            10_000_000 + self.wire_ns,
            skip_log,
            if skip_log {
                &["ERROR request failed"]
            } else {
                &[]
            },
        );
        let checkout_events: &[&str] = if skip_log {
            &["INFO Checkout#10 pricing cart"]
        } else {
            &[
                "INFO Checkout#10 pricing cart",
                "INFO Checkout#20 cart priced",
            ]
        };
        let co = self.span(
            trace,
            Some(fe.span),
            "checkout",
            "POST /checkout",
            t + 1_000_000,
            8_000_000,
            false,
            checkout_events,
        );
        // Deterministic jitter so that quantiles are not all ties.
        let jitter = ((t / 1_000_000) % 7) * 10_000;
        let db = self.span(
            trace,
            Some(co.span),
            "db",
            "SELECT cart",
            t + 2_000_000,
            (300_000 + jitter) * db_factor,
            false,
            &[],
        );
        vec![fe, co, db]
    }
}

impl Gen {
    /// `n` requests from `start`, one every `every` ns (see `request`).
    fn requests(
        &mut self,
        n: i64,
        start: i64,
        every: i64,
        fault: impl Fn(i64) -> bool,
        db_factor: i64,
    ) -> SpanSet {
        let mut spans = Vec::new();
        for i in 0..n {
            spans.extend(self.request(start + i * every, fault(i), db_factor));
        }
        set(spans)
    }

    /// Five minutes of healthy traffic from 0, one request a second.
    fn healthy_reference(&mut self) -> SpanSet {
        self.requests(300, 0, 1_000_000_000, |_| false, 1)
    }
}

fn set(mut spans: Vec<SpanRec>) -> SpanSet {
    crate::spans::compute_self_times(&mut spans);
    SpanSet { spans }
}

#[test]
fn a_vanished_log_line_points_at_the_service_whose_code_changed() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    // Half the requests hit the fault.
    let w = g.requests(100, 400_000_000_000, 1_000_000_000, |i| i % 2 == 0, 1);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    let Evidence::EventPattern {
        template,
        score,
        trace_ids,
        observed,
        expected,
        ..
    } = &ranked[0].evidence[0]
    else {
        panic!("pattern evidence expected: {:?}", ranked[0].evidence);
    };
    assert_eq!(template, "INFO Checkout#20 cart priced");
    // Once per call in the reference; 100 calls in the window, half
    // of them without it.
    assert_eq!(*observed, 50.0);
    assert!((expected - 100.0).abs() < 1e-6, "{expected}");
    assert!(*score < -3.0, "the line vanished: {score}");
    assert_eq!(trace_ids.len(), EXAMPLES);
    // The frontend's errors are real but not where the fault is: it
    // ranks below (its error is a symptom).
    assert!(ranked[0].score > ranked[1].score);
}

#[test]
fn healthy_traffic_at_another_rate_points_nowhere() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    // Three times the load, same behaviour.
    let w = g.requests(300, 400_000_000_000, 333_000_000, |_| false, 1);
    let ranked = localize(&r, &w, &mut g.strings);
    assert!(
        ranked.iter().all(|c| c.score < 3.0),
        "no strong evidence on healthy traffic: {ranked:#?}"
    );
}

#[test]
fn a_saturated_service_shows_in_its_self_time_not_its_callers() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    let w = g.requests(60, 400_000_000_000, 1_000_000_000, |_| false, 4);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "db", "{ranked:#?}");
    assert!(matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }));
    // checkout's duration grew too, but not its self time.
    let checkout = ranked.iter().find(|c| c.service == "checkout");
    assert!(checkout.is_none_or(|c| c.score < 1.0), "{checkout:?}");
}

/// A starved service (CPU contention) serves most calls as usual and
/// a few far slower than anything before: the median moved not at
/// all, but two or three calls at 50 times the slowest reference call
/// are beyond chance. One such call alone is not.
#[test]
fn a_few_calls_far_beyond_anything_before_point_at_their_service() {
    let window = |g: &mut Gen, slow: &[i64]| {
        let mut spans = Vec::new();
        for i in 0..60 {
            let factor = if slow.contains(&i) { 50 } else { 1 };
            spans.extend(g.request(400_000_000_000 + i * 1_000_000_000, false, factor));
        }
        set(spans)
    };
    let mut g = Gen::new();
    let r = g.healthy_reference();
    let w = window(&mut g, &[17, 41, 50]);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "db", "{ranked:#?}");
    assert!(
        matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }),
        "{ranked:#?}"
    );
    assert!(ranked[0].score > 1.0, "{ranked:#?}");

    let mut g = Gen::new();
    let r = g.healthy_reference();
    let w = window(&mut g, &[17]);
    let ranked = localize(&r, &w, &mut g.strings);
    let db = ranked.iter().find(|c| c.service == "db");
    assert!(db.is_none_or(|c| c.score < 1.0), "{db:?}");
}

/// Something else opened the incident: the window starts two minutes
/// before the database saturates, so over the whole window most of its
/// spans are as usual (the median slowdown is none); its last minute
/// is four times slower.
#[test]
fn a_saturation_that_joins_an_incident_late_shows_in_the_windows_later_part() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    let start = 400_000_000_000;
    let mut w = g.requests(120, start, 1_000_000_000, |_| false, 1);
    let late = g.requests(60, start + 120_000_000_000, 1_000_000_000, |_| false, 4);
    w.spans.extend(late.spans);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "db", "{ranked:#?}");
    let Evidence::SelfTime { score, .. } = &ranked[0].evidence[0] else {
        panic!("self-time evidence expected: {:?}", ranked[0].evidence);
    };
    assert!(*score > 3.0, "{score}");
    // Over the whole window alone the shift is diluted below notice.
    let db = g.strings.intern("db");
    let mut points: Vec<Point> = w
        .spans
        .iter()
        .filter(|s| s.service == db)
        .map(|s| {
            let slow = s.start_ns >= start + 120_000_000_000;
            Point {
                start_ns: s.start_ns,
                u: if slow { 1.0 } else { 0.5 },
                log_ratio: if slow { 4f64.ln() } else { 0.0 },
                over_max: 0.0,
                tail_p: 1.0,
            }
        })
        .collect();
    let all = points.len();
    let usum: f64 = points.iter().map(|p| p.u).sum();
    let mut logs: Vec<f64> = points.iter().map(|p| p.log_ratio).collect();
    assert_eq!(shift_score(usum, all, &mut logs), 0.0);
    assert!(scanned_shift(&mut points, 1.0) > 3.0);
}

/// One `db` span every second from `from` for `n` seconds, its time
/// `base` ms growing by `growth` of `base` per minute (a table that
/// grows through the day), with a deterministic jitter of ±2%.
fn drifting_db(g: &mut Gen, from: i64, n: i64, base: f64, growth: f64) -> Vec<SpanRec> {
    (0..n)
        .map(|i| {
            let t = from + i * 1_000_000_000;
            let minutes = t as f64 / 60e9;
            let jitter = 1.0 + 0.02 * (((i * 7) % 5) as f64 - 2.0) / 2.0;
            let ms = base * (1.0 + growth * minutes) * jitter;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&t.to_be_bytes());
            g.span(
                trace,
                None,
                "db",
                "SELECT cart",
                t,
                (ms * 1e6) as i64,
                false,
                &[],
            )
        })
        .collect()
}

/// A service whose time grows through the reference passes its older
/// maximum in the reference's newer half: the tail test's chance is
/// raised by as much. A steady service's is not.
#[test]
fn the_tail_tests_chance_allows_for_drift_seen_within_the_reference() {
    let mut g = Gen::new();
    let steady = g.healthy_reference();
    let by_service = |s: &SpanRec, keys: &mut Vec<u32>| keys.push(s.service);
    let drift = tail_drift(&steady, &by_service);
    assert!(drift.values().all(|d| d.factor(0.0) < 1.5), "{drift:?}");

    let mut g = Gen::new();
    let r = set(drifting_db(&mut g, 0, 600, 2.0, 0.05));
    let drift = tail_drift(&r, &by_service);
    let db = g.strings.intern("db");
    let d = drift.get(&db).expect("db has a drift");
    // Much of the newer half passes the older maximum a little; 1 in
    // 301 would by chance. Nothing passes it twice over.
    assert!(d.factor(0.0) > 20.0, "{d:?}");
    assert_eq!(d.factor(2f64.ln()), 1.0, "{d:?}");

    // The window goes on as the reference did: no strong evidence.
    let w = set(drifting_db(&mut g, 660, 120, 2.0, 0.05));
    let ranked = localize(&r, &w, &mut g.strings);
    let score = ranked
        .iter()
        .find(|c| c.service == "db")
        .map_or(0.0, |c| c.score);
    assert!(score < 3.0, "{ranked:#?}");
    // A fault on top of the drift still shows: three calls at twenty
    // times the trend.
    let mut w = drifting_db(&mut g, 660, 120, 2.0, 0.05);
    for i in [30, 70, 100] {
        let s = &mut w[i];
        s.end_ns = s.start_ns + (s.end_ns - s.start_ns) * 20;
        s.self_ns = s.end_ns - s.start_ns;
    }
    let ranked = localize(&r, &set(w), &mut g.strings);
    assert_eq!(ranked[0].service, "db", "{ranked:#?}");
    assert!(ranked[0].score > 3.0, "{ranked:#?}");
}

#[test]
fn network_delay_into_a_service_is_the_callees_not_the_callers() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    // The frontend now waits 20 ms longer for checkout, whose own span
    // is unchanged: time on checkout's network or in its queue.
    g.wire_ns = 20_000_000;
    let w = g.requests(60, 400_000_000_000, 1_000_000_000, |_| false, 1);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    let Evidence::SelfTime { operation, .. } = &ranked[0].evidence[0] else {
        panic!("self-time evidence expected: {:?}", ranked[0].evidence);
    };
    assert!(operation.contains("calls into checkout"), "{operation}");
    let frontend = ranked.iter().find(|c| c.service == "frontend");
    assert!(frontend.is_none_or(|c| c.score < 1.0), "{frontend:?}");
}

/// checkout has two operations; the line `Checkout#20` is logged by
/// one of them on every call. In the window the request mix moves to
/// the other operation: the line is logged less, but exactly as often
/// per call of its operation, so it is no evidence.
#[test]
fn a_line_logged_less_because_its_operation_is_called_less_is_no_evidence() {
    let mut g = Gen::new();
    let mix = |g: &mut Gen, n: i64, start: i64, priced_every: i64| {
        let mut spans = Vec::new();
        for i in 0..n {
            let t = start + i * 1_000_000_000;
            let trace = [(i % 251) as u8; 16];
            let (op, events): (&str, &[&str]) = if i % priced_every == 0 {
                ("POST /checkout", &["INFO Checkout#20 cart priced"])
            } else {
                ("GET /cart", &["INFO Cart#5 cart read"])
            };
            spans.push(g.span(trace, None, "checkout", op, t, 5_000_000, false, events));
        }
        set(spans)
    };
    // Reference: every other call prices a cart; window: one in five.
    let r = mix(&mut g, 300, 0, 2);
    let w = mix(&mut g, 200, 400_000_000_000, 5);
    let ranked = localize(&r, &w, &mut g.strings);
    assert!(
        ranked.iter().all(|c| c.score < 1.0),
        "a change of mix is not a fault: {ranked:#?}"
    );
}

/// checkout fails its calls to `db` before they leave ("No instances
/// available for db"): no span reaches db, and checkout's error is the
/// failed call's, not an error of checkout's own code.
#[test]
fn an_error_that_names_a_dependency_is_not_an_origin_in_the_caller() {
    let mut g = Gen::new();
    let r = g.healthy_reference();
    let mut w = g.requests(100, 400_000_000_000, 1_000_000_000, |_| false, 1);
    let db = g.strings.intern("db");
    let checkout = g.strings.intern("checkout");
    let text = g
        .strings
        .intern("Request processing failed; nested exception is java.lang.IllegalStateException: No instances available for db");
    let mut failed = 0;
    // Every other request: the db span never happened.
    let mut gone = std::collections::HashSet::new();
    for (i, s) in w.spans.iter().enumerate() {
        if s.service == db && (s.start_ns / 1_000_000_000) % 2 == 0 {
            gone.insert(i);
        }
    }
    let dropped: Vec<[u8; 16]> = gone.iter().map(|&i| w.spans[i].trace).collect();
    let mut kept = Vec::new();
    for (i, mut s) in std::mem::take(&mut w.spans).into_iter().enumerate() {
        if gone.contains(&i) {
            continue;
        }
        if s.service == checkout && dropped.contains(&s.trace) {
            s.error = true;
            s.error_text = Some(text);
            failed += 1;
        }
        kept.push(s);
    }
    let w = set(kept);
    assert_eq!(failed, 50);
    let ranked = localize(&r, &w, &mut g.strings);
    let origin_in_checkout = ranked.iter().any(|c| {
        c.service == "checkout"
            && c.evidence
                .iter()
                .any(|e| matches!(e, Evidence::ErrorOrigin { .. }))
    });
    assert!(!origin_in_checkout, "{ranked:#?}");

    // The same errors without the dependency's name are checkout's.
    let plain = g.strings.intern("NullPointerException in PriceCalculator");
    let mut spans = w.spans;
    for s in &mut spans {
        if s.error_text == Some(text) {
            s.error_text = Some(plain);
        }
    }
    let ranked = localize(&r, &set(spans), &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    assert!(matches!(
        ranked[0].evidence[0],
        Evidence::ErrorOrigin { .. }
    ));
}

/// The frontend's calls go to two services; in the window every call
/// waits 20 ms longer outside the callee's span, into both. The
/// common factor is the caller (a saturated frontend), not either
/// callee.
#[test]
fn slower_calls_from_one_caller_into_several_callees_are_the_callers() {
    let mut g = Gen::new();
    let traffic = |g: &mut Gen, n: i64, start: i64, extra: i64| {
        let mut spans = Vec::new();
        for i in 0..n {
            let t = start + i * 1_000_000_000;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&t.to_be_bytes());
            let callee = if i % 2 == 0 { "checkout" } else { "search" };
            let jitter = (i % 7) * 100_000;
            let fe = g.span(
                trace,
                None,
                "frontend",
                "HTTP GET",
                t,
                10_000_000 + jitter + extra,
                false,
                &[],
            );
            let server = g.span(
                trace,
                Some(fe.span),
                callee,
                "GET /api",
                t + 1_000_000 + extra / 2,
                8_000_000,
                false,
                &[],
            );
            spans.push(fe);
            spans.push(server);
        }
        set(spans)
    };
    let r = traffic(&mut g, 300, 0, 0);
    let w = traffic(&mut g, 60, 400_000_000_000, 20_000_000);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "frontend", "{ranked:#?}");
    assert!(matches!(ranked[0].evidence[0], Evidence::SelfTime { .. }));
    for callee in ["checkout", "search"] {
        let c = ranked.iter().find(|c| c.service == callee);
        assert!(
            c.is_none_or(|c| c.score < ranked[0].score),
            "{callee}: {c:?}"
        );
    }
}

#[test]
fn names_match_whole_service_names_only() {
    assert!(names(
        "No instances available for ts-basic-service",
        "ts-basic-service"
    ));
    assert!(names("connect to cart:8080 refused", "cart"));
    assert!(!names(
        "No instances available for ts-basic-service-v2",
        "ts-basic-service"
    ));
    assert!(!names("cartography failed", "cart"));
    assert!(!names("anything", ""));
}

/// A shop whose frontend serves every request itself and calls, with
/// client spans as real instrumentation records them, `checkout` on
/// every third request (which calls `db`) and `search` on the others.
/// `fe_own_ns`: the frontend's own work; `net_ns`: added by the network
/// to every packet in and out of checkout's pod (its callers wait that
/// much longer for it, and it waits that much longer for `db`).
fn shop(g: &mut Gen, n: i64, start: i64, fe_own_ns: i64, net_ns: i64) -> SpanSet {
    let mut spans = Vec::new();
    for i in 0..n {
        let t = start + i * 1_000_000_000;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&t.to_be_bytes());
        let jitter = ((i * 7) % 11) * 50_000;
        let to_checkout = i % 3 == 0;
        // Durations from the leaves up.
        let db = 2_000_000 + jitter;
        let (callee, callee_op, callee_ns) = if to_checkout {
            // checkout's server span: its work, then its call to db.
            let co_client = 300_000 + db + net_ns;
            ("checkout", "POST /checkout", 3_000_000 + jitter + co_client)
        } else {
            ("search", "GET /search", 5_000_000 + jitter)
        };
        let wait = 400_000 + jitter / 2 + if to_checkout { net_ns } else { 0 };
        let client_ns = callee_ns + wait;
        let fe = g.span(
            trace,
            None,
            "frontend",
            "GET /",
            t,
            fe_own_ns + jitter + client_ns,
            false,
            &[],
        );
        let fe_client = g.span(
            trace,
            Some(fe.span),
            "frontend",
            "HTTP POST",
            t + fe_own_ns,
            client_ns,
            false,
            &[],
        );
        let callee_start = t + fe_own_ns + wait / 2;
        let server = g.span(
            trace,
            Some(fe_client.span),
            callee,
            callee_op,
            callee_start,
            callee_ns,
            false,
            &[],
        );
        spans.extend([fe, fe_client, server]);
        if to_checkout {
            let co_client_start = callee_start + 3_000_000 + jitter;
            let co_client_ns = 300_000 + db + net_ns;
            let co_client = g.span(
                trace,
                Some(server.span),
                "checkout",
                "HTTP GET",
                co_client_start,
                co_client_ns,
                false,
                &[],
            );
            let db_span = g.span(
                trace,
                Some(co_client.span),
                "db",
                "SELECT cart",
                co_client_start + 150_000 + net_ns,
                db,
                false,
                &[],
            );
            spans.extend([co_client, db_span]);
        }
    }
    set(spans)
}

/// The network of checkout's pod adds 2 s to every packet: its callers
/// wait 2 s longer outside its spans, and it waits 2 s longer on its own
/// calls. The frontend, which waits on it, and db, which it waits on,
/// are not where the fault is: each has other edges that are not
/// delayed, and checkout is the common end of every delayed edge.
#[test]
fn a_delay_on_every_edge_in_and_out_of_a_service_is_that_services() {
    let mut g = Gen::new();
    let r = shop(&mut g, 300, 0, 4_000_000, 0);
    let w = shop(&mut g, 90, 400_000_000_000, 4_000_000, 2_000_000_000);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    let Evidence::SelfTime { operation, .. } = &ranked[0].evidence[0] else {
        panic!("wait evidence expected: {:?}", ranked[0].evidence);
    };
    assert!(operation.contains("time outside"), "{operation}");
    for other in ["frontend", "db", "search"] {
        let c = ranked.iter().find(|c| c.service == other);
        assert!(c.is_none_or(|c| c.score < 1.0), "{other}: {c:?}");
    }
}

/// Effect size counts: the frontend's own work doubles (4 ms to 8 ms) on
/// all 90 requests, a shift as surprising as any; the 30 calls into
/// checkout wait 2 s more (from under a millisecond). Nine doublings
/// against one: checkout is where the time went.
#[test]
fn a_large_wait_outranks_a_small_shift_in_a_busier_service() {
    let mut g = Gen::new();
    let r = shop(&mut g, 300, 0, 4_000_000, 0);
    let w = shop(&mut g, 90, 400_000_000_000, 8_000_000, 2_000_000_000);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    let frontend = ranked.iter().find(|c| c.service == "frontend");
    assert!(
        frontend.is_some_and(|c| c.score > 1.0 && c.score < ranked[0].score / 2.0),
        "the frontend's own shift is real but small: {frontend:?}"
    );
}

/// checkout serves `POST /checkout`: it calls pricing (which runs a
/// `SELECT prices` of its own), then payment. `wrong(i)`: pricing
/// answers request `i` wrongly: it returns early, without its query, and
/// checkout, given a wrong price, skips payment. No error anywhere.
fn pricing_shop(g: &mut Gen, n: i64, start: i64, wrong: impl Fn(i64) -> bool) -> SpanSet {
    let mut spans = Vec::new();
    for i in 0..n {
        let t = start + i * 1_000_000_000;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&t.to_be_bytes());
        let j = ((i * 7) % 11) * 40_000;
        let bad = wrong(i);
        // An early return is quicker: no query to wait for.
        let pricing_ns = if bad { 4_000_000 } else { 7_000_000 } + j;
        let co = g.span(
            trace,
            None,
            "checkout",
            "POST /checkout",
            t,
            30_000_000,
            false,
            &[],
        );
        let to_pricing = g.span(
            trace,
            Some(co.span),
            "checkout",
            "HTTP POST",
            t + 1_000_000,
            pricing_ns + 1_000_000,
            false,
            &[],
        );
        let pricing = g.span(
            trace,
            Some(to_pricing.span),
            "pricing",
            "POST /price",
            t + 1_200_000,
            pricing_ns,
            false,
            &[],
        );
        spans.extend([co, to_pricing, pricing]);
        if !bad {
            let q = g.span(
                trace,
                Some(pricing.span),
                "pricing",
                "SELECT prices",
                t + 2_000_000,
                3_000_000 + j,
                false,
                &[],
            );
            let to_pay = g.span(
                trace,
                Some(co.span),
                "checkout",
                "HTTP GET",
                t + 10_000_000,
                15_000_000,
                false,
                &[],
            );
            let pay = g.span(
                trace,
                Some(to_pay.span),
                "payment",
                "GET /charge",
                t + 10_500_000,
                14_000_000 + j,
                false,
                &[],
            );
            spans.extend([q, to_pay, pay]);
        }
    }
    set(spans)
}

/// A wrong return value leaves no error and no slow span: pricing stops
/// running its query on half its requests. checkout stops calling
/// payment in exactly those traces, because of pricing's answer: the
/// deepest service whose steps changed is where the fault is.
#[test]
fn steps_a_service_stops_making_point_at_it_not_at_its_callers() {
    let mut g = Gen::new();
    let r = pricing_shop(&mut g, 300, 0, |_| false);
    let w = pricing_shop(&mut g, 100, 400_000_000_000, |i| i % 2 == 0);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "pricing", "{ranked:#?}");
    let Evidence::EventPattern {
        template,
        operation,
        ..
    } = &ranked[0].evidence[0]
    else {
        panic!("a call pattern expected: {:?}", ranked[0].evidence);
    };
    assert_eq!(template, "calls SELECT prices");
    assert_eq!(operation, "POST /price");
    let checkout = ranked.iter().find(|c| c.service == "checkout");
    assert!(checkout.is_none_or(|c| c.score < 1.0), "{checkout:?}");
}

/// checkout's pod restarts: for a while every call into it is refused
/// (no span in checkout, the frontend's call fails naming it), then a new
/// instance serves. The frontend's failures are checkout's.
#[test]
fn calls_refused_into_a_service_with_a_new_instance_are_a_restart() {
    let mut g = Gen::new();
    let old = g.strings.intern("checkout-7d9c-a");
    let new = g.strings.intern("checkout-7d9c-b");
    let refused = g
        .strings
        .intern("java.net.ConnectException: Connection refused: checkout.shop.svc:8080");
    let checkout = g.strings.intern("checkout");
    let traffic = |g: &mut Gen, n: i64, start: i64, down: i64| {
        let mut spans = Vec::new();
        for i in 0..n {
            let mut req = g.request(start + i * 1_000_000_000, false, 1);
            let instance = if start > 0 { new } else { old };
            if i < down {
                // Refused: only the frontend's span, failing.
                req.truncate(1);
                req[0].error = true;
                req[0].error_text = Some(refused);
            }
            for s in &mut req {
                if s.service == checkout {
                    s.instance = Some(instance);
                }
            }
            spans.extend(req);
        }
        set(spans)
    };
    let r = traffic(&mut g, 300, 0, 0);
    let w = traffic(&mut g, 120, 400_000_000_000, 30);
    let ranked = localize(&r, &w, &mut g.strings);
    assert_eq!(ranked[0].service, "checkout", "{ranked:#?}");
    assert!(
        matches!(&ranked[0].evidence[0], Evidence::NewInstance { instance, .. } if instance == "checkout-7d9c-b"),
        "{ranked:#?}"
    );
    let frontend = ranked.iter().find(|c| c.service == "frontend");
    assert!(
        frontend.is_none_or(|c| c.score < ranked[0].score),
        "{frontend:?}"
    );
}
