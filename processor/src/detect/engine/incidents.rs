//! From detector events to anomalies, and anomalies grouped into
//! incidents; the clock that resolves them.

use super::*;

impl TenantDetection {
    /// An anomaly that is an event rather than a shift (a new error
    /// signature, a new edge): it opens and closes by itself after the
    /// signature quiet period.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event_anomaly(
        &mut self,
        subject: Subject,
        metric: &'static str,
        at_ns: i64,
        count: u64,
        traces: Vec<String>,
        detail: String,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let finding = Finding {
            metric: Metric::ErrorRatio,
            onset_ns: at_ns,
            detected_ns: at_ns,
            observed: count as f64,
            expected: 0.0,
            score: count as f64,
        };
        let incident = self.assign_incident(&subject, id, &finding, links);
        let severity = if count >= 5 {
            Severity::Major
        } else {
            Severity::Minor
        };
        if let Some(i) = self.incidents.get_mut(&incident) {
            i.severity = i.severity.max(severity);
        }
        self.anomalies.insert(
            id,
            Anomaly {
                id,
                subject,
                metric,
                onset_ns: at_ns,
                detected_ns: at_ns,
                last_ns: at_ns,
                resolved_ns: None,
                observed: count as f64,
                expected: 0.0,
                score: count as f64,
                severity,
                example_trace_ids: traces,
                incident,
                detail: Some(detail),
            },
        );
        self.signature_open
            .push((id, at_ns.saturating_add(self.settings.signature_quiet_ns)));
        self.trim();
    }

    pub(super) fn apply(
        &mut self,
        subject: Subject,
        events: Vec<Event>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        self.apply_named(subject, events, links, None);
    }

    /// Applies events; `name` overrides the metric's name on new anomalies.
    pub(super) fn apply_named(
        &mut self,
        subject: Subject,
        events: Vec<Event>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
        name: Option<&'static str>,
    ) {
        for event in events {
            match event {
                Event::Opened(f)
                    if self
                        .rewarm_until_ns
                        .is_some_and(|until| f.detected_ns < until) =>
                {
                    // Not judged yet: the detector tries again next window.
                    self.close_detector(&subject, f.metric);
                }
                Event::Opened(f) => {
                    let key = (subject.clone(), f.metric);
                    if !self.recurrence.try_hold(&key, &f, name) {
                        self.open_anomaly(subject.clone(), f, links, name);
                    }
                }
                Event::Ongoing(f) if self.recurrence.is_held(&(subject.clone(), f.metric)) => {
                    // Released with its first onset once it outlasted the
                    // series' habit.
                    if let Some(h) = self.recurrence.confirm(&(subject.clone(), f.metric), &f) {
                        self.open_anomaly(subject.clone(), h.finding, links, h.name);
                    }
                }
                Event::Resolved { metric, since_ns }
                    if self
                        .recurrence
                        .end_held(&(subject.clone(), metric), since_ns) => {}
                Event::Ongoing(f) => {
                    if let Some(a) = self
                        .open
                        .get(&(subject.clone(), f.metric))
                        .and_then(|id| self.anomalies.get_mut(id))
                    {
                        a.last_ns = f.detected_ns;
                        a.observed = a.observed.max(f.observed);
                        a.score = a.score.max(f.score);
                        a.severity = a
                            .severity
                            .max(severity(f.metric, a.observed, a.expected, a.score));
                        let incident = a.incident;
                        let (sev, last) = (a.severity, a.last_ns);
                        if let Some(i) = self.incidents.get_mut(&incident) {
                            i.updated_ns = i.updated_ns.max(last);
                            i.severity = i.severity.max(sev);
                            self.touched.insert(incident);
                        }
                    }
                }
                Event::Resolved { metric, since_ns } => {
                    if let Some(a) = self
                        .open
                        .remove(&(subject.clone(), metric))
                        .and_then(|id| self.anomalies.get_mut(&id))
                    {
                        a.resolved_ns = Some(since_ns);
                        let (incident, onset, score) = (a.incident, a.onset_ns, a.score);
                        if let Some(i) = self.incidents.get_mut(&incident) {
                            i.updated_ns = i.updated_ns.max(since_ns);
                            self.touched.insert(incident);
                        }
                        self.recurrence
                            .ended(&(subject.clone(), metric), onset, since_ns, score);
                    }
                }
            }
        }
    }

    pub(super) fn open_anomaly(
        &mut self,
        subject: Subject,
        mut f: Finding,
        links: &HashSet<(Arc<str>, Arc<str>)>,
        name: Option<&'static str>,
    ) {
        // A detector's memory (its sliding minute, its recent windows) may
        // reach back across a data gap; the shift was first seen when data
        // resumed, not in windows nobody observed.
        if let Some(resumed) = self.resumed_ns {
            f.onset_ns = f.onset_ns.max(resumed.min(f.detected_ns));
        }
        let (service, operation) = match &subject {
            Subject::Operation {
                service, operation, ..
            } => (service.as_str(), Some(operation.as_str())),
            // An edge's symptoms show on the called side.
            Subject::Edge { server, .. } => (server.as_str(), None),
            Subject::Service { service } => (service.as_str(), None),
        };
        let errors = f.metric == Metric::ErrorRatio;
        // Detectors know the change point to the window. Within it, the
        // first failed span of the subject is the earliest the change can
        // be placed (an error shift's window has at least one), and when
        // data resumed in that window after a gap, its first span is: the
        // onset is the first evidence, not the window's boundary.
        let resumed_here = self.resumed_ns == Some(f.onset_ns);
        if errors || resumed_here {
            let first = self.recent.first_start(Want {
                service,
                operation,
                from_ns: f.onset_ns,
                to_ns: f.onset_ns.saturating_add(self.window_ns),
                errors,
            });
            if let Some(first) = first {
                f.onset_ns = f.onset_ns.max(first.min(f.detected_ns));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let window = examples_until(f.detected_ns, f.onset_ns);
        let examples = {
            let mut ids = self.recent.examples(
                Want {
                    service,
                    operation,
                    from_ns: f.onset_ns,
                    to_ns: window,
                    errors,
                },
                EXAMPLES,
            );
            if ids.is_empty()
                && let Subject::Edge { client, .. } = &subject
            {
                ids = self.recent.examples(
                    Want {
                        service: client,
                        operation: None,
                        from_ns: f.onset_ns,
                        to_ns: window,
                        errors,
                    },
                    EXAMPLES,
                );
            }
            ids
        };
        let incident = self.assign_incident(&subject, id, &f, links);
        let anomaly = Anomaly {
            id,
            metric: name.unwrap_or(f.metric.as_str()),
            onset_ns: f.onset_ns,
            detected_ns: f.detected_ns,
            last_ns: f.detected_ns,
            resolved_ns: None,
            observed: f.observed,
            expected: f.expected,
            score: f.score,
            severity: severity(f.metric, f.observed, f.expected, f.score),
            example_trace_ids: examples,
            incident,
            subject: subject.clone(),
            detail: None,
        };
        if let Some(i) = self.incidents.get_mut(&incident) {
            i.severity = i.severity.max(anomaly.severity);
        }
        self.open.insert((subject, f.metric), id);
        self.anomalies.insert(id, anomaly);
        self.trim();
    }

    pub(super) fn assign_incident(
        &mut self,
        subject: &Subject,
        anomaly: u64,
        f: &Finding,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) -> u64 {
        let services: Vec<&str> = subject.services();
        let connected = |a: &str, b: &str| {
            a == b
                || links
                    .iter()
                    .any(|(c, s)| (&**c == a && &**s == b) || (&**c == b && &**s == a))
        };
        let window = self.incident_settings.join_window_ns;
        // Overlapping in time: the anomaly began before the incident's last
        // change plus the window, and was seen after its onset minus the
        // window (a finding about old windows, from spans that arrived or
        // were paired late, does not join today's incident).
        // Touching: a service of one of the incident's anomalies still in
        // progress (or over within the window) is the anomaly's or its
        // neighbour's. Every service an incident ever touched would do
        // otherwise, and a long incident that spread over half the graph
        // would take in every later fault.
        let anomalies = &self.anomalies;
        let join = self.incidents.values_mut().find(|i| {
            i.state == IncidentState::Open
                && f.onset_ns <= i.updated_ns + window
                && f.detected_ns.max(f.onset_ns) >= i.onset_ns - window
                && i.anomalies
                    .iter()
                    .filter_map(|id| anomalies.get(id))
                    .filter(|a| a.resolved_ns.is_none_or(|r| r + window >= f.onset_ns))
                    .any(|a| {
                        a.subject
                            .services()
                            .iter()
                            .any(|s| services.iter().any(|n| connected(s, n)))
                    })
        });
        match join {
            Some(i) => {
                i.anomalies.push(anomaly);
                i.onset_ns = i.onset_ns.min(f.onset_ns);
                i.updated_ns = i.updated_ns.max(f.detected_ns);
                i.last_onset_ns = Some(i.last_onset_ns.map_or(f.onset_ns, |l| l.max(f.onset_ns)));
                i.services.extend(services.iter().map(|s| (*s).to_owned()));
                self.touched.insert(i.id);
                i.id
            }
            None => {
                let id = anomaly;
                self.incidents.insert(
                    id,
                    Incident {
                        id,
                        state: IncidentState::Open,
                        onset_ns: f.onset_ns,
                        updated_ns: f.detected_ns,
                        last_onset_ns: Some(f.onset_ns),
                        resolved_ns: None,
                        severity: Severity::Minor,
                        services: services.iter().map(|s| (*s).to_owned()).collect(),
                        anomalies: vec![anomaly],
                    },
                );
                self.touched.insert(id);
                id
            }
        }
    }

    /// Resolves incidents whose anomalies are all resolved and that have
    /// been quiet for the quiet period, at event time `now_ns`.
    pub fn tick(&mut self, now_ns: i64) {
        // An anomaly whose series has not confirmed it for the quiet period
        // (the series went silent: a data gap, a service scaled to zero) is
        // over as far as anyone can tell; its detector forgets it too, so
        // that a shift seen again later opens a new one.
        let stale_before = now_ns.saturating_sub(self.incident_settings.quiet_ns);
        let stale: Vec<((Subject, Metric), u64)> = self
            .open
            .iter()
            .filter(|(_, id)| {
                // A vanished edge is absent by definition; its watch
                // closes it.
                self.anomalies
                    .get(id)
                    .is_none_or(|a| a.metric != "edge_vanished" && a.last_ns < stale_before)
            })
            .map(|(k, id)| (k.clone(), *id))
            .collect();
        for ((subject, metric), id) in stale {
            self.open.remove(&(subject.clone(), metric));
            if let Some(a) = self.anomalies.get_mut(&id) {
                // Over since the last window that showed it.
                a.resolved_ns = Some(a.last_ns.saturating_add(self.window_ns));
            }
            self.close_detector(&subject, metric);
        }
        let stale_held: Vec<((Subject, Metric), i64)> = self
            .recurrence
            .held
            .iter()
            .filter(|(_, h)| h.finding.detected_ns < stale_before)
            .map(|(k, h)| (k.clone(), h.finding.detected_ns))
            .collect();
        for (key, last) in stale_held {
            self.recurrence
                .end_held(&key, last.saturating_add(self.window_ns));
            self.close_detector(&key.0, key.1);
        }
        // A new signature is an event: it closes after its quiet period.
        let anomalies = &mut self.anomalies;
        self.signature_open.retain(|(id, until)| {
            if now_ns < *until {
                return true;
            }
            if let Some(a) = anomalies.get_mut(id) {
                a.resolved_ns = Some(*until);
            }
            false
        });
        let quiet = self.incident_settings.quiet_ns;
        for i in self.incidents.values_mut() {
            if i.state != IncidentState::Open {
                continue;
            }
            let all_resolved = i.anomalies.iter().all(|id| {
                self.anomalies
                    .get(id)
                    .is_none_or(|a| a.resolved_ns.is_some())
            });
            if all_resolved && now_ns >= i.updated_ns.saturating_add(quiet) {
                i.state = IncidentState::Resolved;
                i.resolved_ns = Some(i.updated_ns);
                self.touched.insert(i.id);
            }
        }
    }

    /// Ends every open anomaly and incident at `at_ns`: the tenant's data
    /// stopped (a gap longer than `gap_ns`), and nobody can tell whether a
    /// fault went on through it. What shows after the gap is new.
    pub(super) fn end_all(&mut self, at_ns: i64) {
        for (subject, metric) in self.recurrence.drop_held() {
            self.close_detector(&subject, metric);
        }
        let open: Vec<((Subject, Metric), u64)> = self.open.drain().collect();
        for ((subject, metric), id) in open {
            if let Some(a) = self.anomalies.get_mut(&id) {
                a.resolved_ns = Some(
                    a.last_ns
                        .saturating_add(self.window_ns)
                        .min(at_ns.max(a.last_ns)),
                );
            }
            self.close_detector(&subject, metric);
        }
        for (id, until) in self.signature_open.drain(..) {
            if let Some(a) = self.anomalies.get_mut(&id) {
                a.resolved_ns = Some(until.min(at_ns.max(a.onset_ns)));
            }
        }
        for w in self.graph.values_mut() {
            w.vanished = None;
        }
        for i in self.incidents.values_mut() {
            if i.state == IncidentState::Open {
                i.state = IncidentState::Resolved;
                i.resolved_ns = Some(i.updated_ns.max(i.onset_ns));
                self.touched.insert(i.id);
            }
        }
    }

    /// Tells the detector behind `subject` that `metric` is closed.
    pub(super) fn close_detector(&mut self, subject: &Subject, metric: Metric) {
        match subject {
            Subject::Operation {
                service,
                operation,
                kind,
            } => {
                let key: OpKey = (
                    Arc::from(service.as_str()),
                    Arc::from(operation.as_str()),
                    *kind,
                );
                match metric.of_self_time() {
                    Some(latency) => {
                        if let Some(d) = self.self_ops.get_mut(&key) {
                            d.close(latency);
                        }
                    }
                    None if metric == Metric::SlowSelfTimeRatio => {
                        if let Some(d) = self.self_slow.detectors.get_mut(&key) {
                            d.close(Metric::SlowRatio);
                        }
                    }
                    None => {
                        if let Some(d) = self.ops.get_mut(&key) {
                            d.close(metric);
                        }
                    }
                }
            }
            Subject::Service { service } => {
                if let Some(d) = self.services.get_mut(service.as_str()) {
                    d.close(metric);
                }
            }
            Subject::Edge {
                client,
                server,
                connection,
            } => {
                for (k, d) in &mut self.edges {
                    if &*k.client == client
                        && &*k.server == server
                        && k.connection.as_str() == connection
                    {
                        d.close(metric);
                    }
                }
                for (k, d) in &mut self.edge_slow.detectors {
                    if &*k.client == client
                        && &*k.server == server
                        && k.connection.as_str() == connection
                    {
                        d.close(metric);
                    }
                }
                // A vanished edge's watch, likewise.
                for (k, w) in &mut self.graph {
                    if &*k.client == client && &*k.server == server {
                        w.vanished = None;
                    }
                }
            }
        }
    }

    pub(super) fn trim(&mut self) {
        while self.anomalies.len() > MAX_ANOMALIES {
            let oldest = self
                .anomalies
                .iter()
                .find(|(_, a)| a.resolved_ns.is_some())
                .map(|(id, _)| *id)
                .or_else(|| self.anomalies.keys().next().copied());
            if let Some(id) = oldest {
                self.anomalies.remove(&id);
            }
        }
        while self.incidents.len() > MAX_INCIDENTS {
            let oldest = self
                .incidents
                .iter()
                .find(|(_, i)| i.state == IncidentState::Resolved)
                .map(|(id, _)| *id)
                .or_else(|| self.incidents.keys().next().copied());
            if let Some(id) = oldest {
                self.incidents.remove(&id);
            }
        }
    }
}

/// Examples come from the onset to the end of the confirming window; the
/// window length is not known here, so up to a minute past its start.
pub(super) fn examples_until(detected_ns: i64, onset_ns: i64) -> i64 {
    detected_ns.max(onset_ns).saturating_add(60_000_000_000)
}

/// Severity from how far and how much.
pub(super) fn severity(metric: Metric, observed: f64, expected: f64, score: f64) -> Severity {
    match metric {
        Metric::SlowRatio | Metric::SlowSelfTimeRatio => {
            if observed >= 0.5 {
                Severity::Critical
            } else if observed >= 0.2 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
        Metric::TrafficDrop => {
            if observed <= expected * 0.1 {
                Severity::Critical
            } else {
                Severity::Major
            }
        }
        Metric::TrafficSurge => Severity::Major,
        Metric::ErrorRatio => {
            if observed >= 0.5 {
                Severity::Critical
            } else if observed >= 0.1 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
        _ => {
            let ratio = observed / expected.max(1.0);
            if ratio >= 5.0 || score >= 30.0 {
                Severity::Critical
            } else if ratio >= 2.0 {
                Severity::Major
            } else {
                Severity::Minor
            }
        }
    }
}
