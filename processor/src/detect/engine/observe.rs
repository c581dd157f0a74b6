//! Feeding sealed windows to the detectors: per window start, operations,
//! own-span self time, slow spans against references, and the services'
//! sliding detectors.

use super::*;

impl TenantDetection {
    /// Feeds sealed RED windows (merged per operation across status codes)
    /// and sealed edge windows; `links` are the graph's (client, server)
    /// pairs, for grouping.
    ///
    /// Per window start, in order: each operation's detector; the slow
    /// spans of each operation against its reference; each service's
    /// sliding detector (a service without spans in a window the tenant
    /// had spans in sees zero calls: that is how a drop shows); then the
    /// references of healthy services learn the window.
    pub fn observe(
        &mut self,
        red: Vec<Sealed<RedKey>>,
        edges: Vec<Sealed<EdgeKey>>,
        self_time: Vec<Sealed<RedKey>>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        if let Some(s) = red.first() {
            self.window_ns = s.len_ns.max(1);
        }
        let by_start = by_start(red);
        // Which services were active, and which edges carried calls, per
        // window start: for the graph's changes.
        let mut active: BTreeMap<i64, Activity> = BTreeMap::new();
        for (start, ops) in &by_start {
            let (services, _) = active.entry(*start).or_default();
            services.extend(ops.iter().map(|(op, ..)| Arc::clone(&op.0)));
        }
        for s in &edges {
            active
                .entry(s.start_ns)
                .or_default()
                .1
                .insert(s.key.clone(), s.stats.calls);
        }
        for (start, ops) in by_start {
            self.first_start_ns.get_or_insert(start);
            if let Some(last) = self.last_start_ns
                && start.saturating_sub(last) > self.incident_settings.gap_ns
            {
                self.end_all(last.saturating_add(self.window_ns));
                // The sliding windows refill and the traffic mix settles
                // before anything new is judged.
                self.rewarm_until_ns = Some(start.saturating_add(self.sliding.slide_ns));
                self.resumed_ns = Some(start);
            }
            self.last_start_ns = Some(self.last_start_ns.map_or(start, |l| l.max(start)));
            // Event time moved to `start`: close what went stale or quiet
            // before this window's findings are grouped (after a data gap,
            // a new fault must not join the previous one's incident).
            self.tick(start);
            self.observe_start(start, ops, links);
        }
        self.observe_self_time(self_time, links);
        let sliding = self.sliding;
        for s in edges {
            let settings = self.settings;
            let mut events = self
                .edges
                .entry(s.key.clone())
                .or_insert_with(|| SeriesDetector::new(&settings))
                .observe(&settings, s.start_ns, s.stats);
            // Slow calls over the sliding minute, for edges with too few
            // calls a window for their quantiles. (Errors are the window
            // detector's; traffic is the graph watch's: the edge detector
            // sees only windows with calls.)
            events.extend(self.edge_slow.observe(
                &sliding,
                &s.key,
                s.start_ns,
                s.stats.calls,
                s.hist,
            ));
            if !events.is_empty() {
                self.apply(edge_subject(&s.key), events, links);
            }
        }
        if let Some(last) = self.last_start_ns {
            // Edges settle only when they carry calls again: keep their
            // windows for the onset search's memory.
            let done = last.saturating_sub(self.window_ns.saturating_mul(KEEP_EDGE_WINDOWS));
            self.edge_slow.forget_before(done);
        }
        for (start, (services, edges)) in active {
            self.watch_edges(start, &services, &edges, links);
        }
    }

    /// Self-time windows: a per-operation detector each, whose latency
    /// findings are reported as self-time ones. Windows arrive later than
    /// the RED ones (a span's self time is final only after the pairing
    /// TTL), so they are judged on their own, not with their window start's
    /// other findings; onsets are still their windows' starts.
    pub(super) fn observe_self_time(
        &mut self,
        self_time: Vec<Sealed<RedKey>>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let sliding = self.sliding;
        // In name order (`by_start` sorts), as in `observe_start`.
        for (start, ops) in by_start(self_time) {
            for (op, calls, _, hist) in ops {
                let stats = CellStats::of(calls, 0, &hist);
                let settings = self.settings;
                let mut events: Vec<Event> = self
                    .self_ops
                    .entry(op.clone())
                    .or_insert_with(|| SeriesDetector::new(&settings))
                    .observe(&settings, start, stats)
                    .into_iter()
                    .filter_map(|e| e.renamed(Metric::as_self_time))
                    .collect();
                // A starved service (CPU, memory, I/O) is slower in its own
                // processing. At a few calls a minute no window has the
                // calls for quantiles, so an operation's spans beyond its
                // normal self time are counted over the sliding minute, as
                // slow calls are (per operation: a service's other
                // operations, whose own work is small, would dilute them).
                if own_span(op.2) {
                    events.extend(
                        self.self_slow
                            .observe(&sliding, &op, start, calls, hist)
                            .into_iter()
                            .filter_map(|e| {
                                e.renamed(|m| {
                                    (m == Metric::SlowRatio).then_some(Metric::SlowSelfTimeRatio)
                                })
                            }),
                    );
                }
                if !events.is_empty() {
                    let subject = Subject::Operation {
                        service: op.0.to_string(),
                        operation: op.1.to_string(),
                        kind: op.2,
                    };
                    self.apply(subject, events, links);
                }
            }
            self.self_slow
                .forget_before(start.saturating_sub(sliding.slide_ns.saturating_mul(2)));
        }
    }

    /// One window start's operations.
    pub(super) fn observe_start(
        &mut self,
        start: i64,
        ops: Vec<OpWindow>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        // In name order: findings of one window are grouped in the order
        // they are applied, which must not depend on hashing.
        let mut services: BTreeMap<Arc<str>, Counts> = BTreeMap::new();
        let mut tenant_calls = 0;
        for (op, calls, errors, hist) in &ops {
            let stats = CellStats::of(*calls, *errors, hist);
            let settings = self.settings;
            let events = self
                .ops
                .entry(op.clone())
                .or_insert_with(|| SeriesDetector::new(&settings))
                .observe(&settings, start, stats);
            if !events.is_empty() {
                let subject = Subject::Operation {
                    service: op.0.to_string(),
                    operation: op.1.to_string(),
                    kind: op.2,
                };
                self.apply(subject, events, links);
            }
            tenant_calls += calls;
            if !own_span(op.2) {
                continue;
            }
            let c = services.entry(Arc::clone(&op.0)).or_default();
            c.calls += calls;
            c.errors += errors;
            if let Some(slow) = self.references.get(op).and_then(|r| r.slow_in(hist)) {
                c.measured += calls;
                c.slow += slow;
            }
        }
        // Services known but silent in this window see zero calls.
        for known in self.services.keys() {
            services.entry(Arc::clone(known)).or_default();
        }
        let sliding = self.sliding;
        // This window's own-span durations wait until the window leaves the
        // sliding window; then they teach their operations' references if
        // nothing slow built up meanwhile.
        let mut own = OwnWindows::new();
        for (op, _, _, hist) in ops.into_iter().filter(|(op, ..)| own_span(op.2)) {
            own.entry(Arc::clone(&op.0)).or_default().push((op, hist));
        }
        if !own.is_empty() {
            self.unsettled.insert(start, own);
        }
        let mut settled: Vec<(Arc<str>, i64)> = Vec::new();
        for (service, counts) in services {
            let detector = self.services.entry(Arc::clone(&service)).or_default();
            let events = detector.observe(&sliding, start, counts, tenant_calls);
            for (at, latency_ok) in detector.take_settled() {
                if latency_ok {
                    settled.push((Arc::clone(&service), at));
                }
            }
            if !events.is_empty() {
                self.apply(
                    Subject::Service {
                        service: service.to_string(),
                    },
                    events,
                    links,
                );
            }
        }
        for (service, at) in settled {
            let Some(ops) = self.unsettled.get_mut(&at).and_then(|m| m.remove(&service)) else {
                continue;
            };
            for (op, hist) in ops {
                self.references
                    .entry(op)
                    .or_default()
                    .learn(&hist, &sliding);
            }
        }
        // Every service settles a window within the sliding window's length
        // (plus the onset search's memory); older ones are done.
        let done = start.saturating_sub(sliding.slide_ns.saturating_mul(2));
        self.unsettled = self.unsettled.split_off(&done);
    }

    /// Reads a converted span batch for error signatures new to their
    /// operation; each opens an anomaly at once (no window to wait for).
    pub fn observe_batch(&mut self, batch: &arrow_array::RecordBatch, edges: &SeriesSet<EdgeKey>) {
        let found = self.signatures.observe(
            batch,
            self.settings.signature_learn_ns,
            self.settings.signature_regress_ns,
            (
                self.settings.signature_confirm,
                self.settings.signature_confirm_ns,
            ),
        );
        if found.is_empty() {
            return;
        }
        // Built only when there is something to group.
        let links = links_of(edges);
        let links = &links;
        for n in found {
            let subject = Subject::Operation {
                service: n.op.0.to_string(),
                operation: n.op.1.to_string(),
                kind: n.op.2,
            };
            let detail = if n.regression {
                format!("error back after a quiet period: {}", n.signature)
            } else {
                format!("new error: {}", n.signature)
            };
            self.event_anomaly(
                subject,
                "new_error_signature",
                n.first_ns,
                n.count,
                n.traces,
                detail,
                links,
            );
        }
    }
}

/// Sealed RED-keyed windows merged over status codes (error ratio needs
/// them together, and latency is of all calls), per window start.
pub(super) fn by_start(sealed: Vec<Sealed<RedKey>>) -> BTreeMap<i64, Vec<OpWindow>> {
    let mut merged: BTreeMap<(i64, OpKey), (u64, u64, Histogram<u64>)> = BTreeMap::new();
    for s in sealed {
        let key = (
            s.start_ns,
            (
                Arc::clone(&s.key.service),
                Arc::clone(&s.key.operation),
                s.key.kind,
            ),
        );
        match merged.get_mut(&key) {
            Some((calls, errors, h)) => {
                *calls += s.stats.calls;
                *errors += s.stats.errors;
                // Same settings on both sides: adding cannot fail.
                let _ = h.add(&s.hist);
            }
            None => {
                merged.insert(key, (s.stats.calls, s.stats.errors, s.hist));
            }
        }
    }
    let mut out: BTreeMap<i64, Vec<OpWindow>> = BTreeMap::new();
    for ((start, op), (calls, errors, hist)) in merged {
        out.entry(start)
            .or_default()
            .push((op, calls, errors, hist));
    }
    out
}

/// Whether a span of this kind is the service's own work (not a call out,
/// whose duration and status are the callee's).
pub(super) fn own_span(kind: i8) -> bool {
    !matches!(
        kind,
        causeway_model::schema::kind::CLIENT | causeway_model::schema::kind::PRODUCER
    )
}
