//! The service graph's changes: an edge that appears carrying more calls
//! than a rare path could, or one whose calls stop for longer than its
//! usual rate allows.

use super::*;

/// What is known of one edge of the graph, for its changes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct EdgeWatch {
    /// Calls per window in which its client works (with or without
    /// calls to this server): the mean over `weight` windows, older ones
    /// forgotten.
    pub(super) rate: f64,
    /// Windows behind `rate` (exponentially forgotten). A mean, not an
    /// exponential average started at the first sighting: that one starts
    /// at the calls of the window the edge was *seen* in, which for a
    /// path used once in five minutes is a hundred times its rate, and
    /// forgets that start only over hundreds of windows; every pause of
    /// such a path then looked like a vanished edge.
    #[serde(default = "established_weight")]
    pub(super) weight: f64,
    /// Last window start with calls.
    pub(super) last_ns: i64,
    /// First window start with calls.
    pub(super) first_ns: i64,
    /// Onset of an open `edge_vanished` anomaly.
    pub(super) vanished: Option<i64>,
    /// Longest silence between calls seen so far, ns: an edge that is
    /// used in bursts pauses this long as a matter of course.
    #[serde(default)]
    pub(super) longest_silence_ns: i64,
}

/// The weight of a rate restored from a snapshot written before rates
/// carried one: treated as learned over the default memory (360 windows),
/// which is what the old exponential average approximated once settled.
fn established_weight() -> f64 {
    360.0
}

impl EdgeWatch {
    /// Adds one window in which the client worked, with `calls` to this
    /// server, to the forgotten mean.
    fn learn(&mut self, calls: f64, keep: f64) {
        self.weight = self.weight * keep + 1.0;
        self.rate += (calls - self.rate) / self.weight;
    }
}

pub(super) fn edge_subject(key: &EdgeKey) -> Subject {
    Subject::Edge {
        client: key.client.to_string(),
        server: key.server.to_string(),
        connection: key.connection.as_str().to_owned(),
    }
}

impl TenantDetection {
    /// Graph changes at one window start: an edge never seen before (after
    /// the tenant's learning period), and an edge that used to carry steady
    /// calls and carried none for a sliding window while its client kept
    /// working.
    pub(super) fn watch_edges(
        &mut self,
        start: i64,
        active: &HashSet<Arc<str>>,
        seen: &HashMap<EdgeKey, u64>,
        links: &HashSet<(Arc<str>, Arc<str>)>,
    ) {
        let learned = self
            .first_start_ns
            .is_some_and(|f| start.saturating_sub(f) >= self.settings.signature_learn_ns);
        let sliding = self.sliding;
        let keep = 1.0 - 1.0 / sliding.memory_windows;
        let window_ns = self.window_ns;
        let mut events: Vec<(Subject, Event, &'static str)> = Vec::new();
        // Silence is counted from when data resumed after a gap: nobody
        // saw the edge idle while no data came at all.
        let resumed = self.resumed_ns.map(|r| r.saturating_sub(window_ns));
        let mut ordered: Vec<(&EdgeKey, &u64)> = seen.iter().collect();
        ordered.sort_unstable();
        for (key, calls) in ordered {
            match self.graph.get_mut(key) {
                Some(w) => {
                    w.learn(*calls as f64, keep);
                    let silence = start
                        .saturating_sub(w.last_ns.max(resumed.unwrap_or(i64::MIN)))
                        .saturating_sub(window_ns);
                    w.longest_silence_ns = w.longest_silence_ns.max(silence);
                    w.last_ns = start;
                    if w.vanished.take().is_some() {
                        events.push((
                            edge_subject(key),
                            Event::Resolved {
                                metric: Metric::TrafficDrop,
                                since_ns: start,
                            },
                            "edge_vanished",
                        ));
                    }
                }
                None => {
                    // The windows before its first sighting count as
                    // windows without a call (up to the memory): a path
                    // first seen an hour in is rare, not one call per
                    // window. Conservative when the client was idle then:
                    // a low rate only makes a vanishing harder to call.
                    let before = (start.saturating_sub(self.first_start_ns.unwrap_or(start))
                        / window_ns.max(1)) as f64;
                    let weight = before.min(sliding.memory_windows) + 1.0;
                    self.graph.insert(
                        key.clone(),
                        EdgeWatch {
                            rate: *calls as f64 / weight,
                            weight,
                            last_ns: start,
                            first_ns: start,
                            vanished: None,
                            longest_silence_ns: 0,
                        },
                    );
                    // A call path first seen after the learning period is
                    // news only when its first window carries more calls
                    // than a path too rare to have shown up before could:
                    // unseen over the whole history, its rate is at most 3
                    // per history (the rule of three, 95%), and the calls
                    // are tested against that at p 0.001 (a rare path's
                    // first sighting pages one time in a thousand).
                    let history = start
                        .saturating_sub(self.first_start_ns.unwrap_or(start))
                        .max(window_ns);
                    let rare_most = 3.0 * window_ns as f64 / history as f64;
                    if learned && poisson_score(*calls as f64, rare_most) >= NEW_EDGE_LOG10 {
                        self.new_edges.push((key.clone(), start, *calls));
                    }
                }
            }
        }
        // A vanished edge that stays away is the new shape of the graph:
        // its anomaly closes and the edge is forgotten.
        let forget_ns = self.settings.signature_regress_ns;
        let learn_ns = self.settings.signature_learn_ns;
        let mut gone = Vec::new();
        for (key, w) in &mut self.graph {
            let silent = start.saturating_sub(w.last_ns.max(resumed.unwrap_or(i64::MIN)));
            if w.vanished.is_some() && silent >= forget_ns {
                gone.push(key.clone());
                events.push((
                    edge_subject(key),
                    Event::Resolved {
                        metric: Metric::TrafficDrop,
                        since_ns: start,
                    },
                    "edge_vanished",
                ));
                continue;
            }
            if seen.contains_key(key) || w.vanished.is_some() || !active.contains(&key.client) {
                continue;
            }
            // A window in which the client worked without calling the
            // server teaches the rate too: an edge used in bursts (one
            // flow among many of its client) carries fewer calls per
            // window than while a burst lasts, and a pause between
            // bursts is no vanishing.
            w.learn(0.0, keep);
            // Calls the edge would carry over the silence at its usual rate
            // (per window of its history).
            let windows = silent as f64 / window_ns as f64;
            let expected = w.rate * windows;
            // Beyond twice the longest pause the edge took, once it has
            // been known for the learning period (its pauses with it), so
            // that a flow used in bursts is not "gone" between them.
            if silent >= sliding.slide_ns
                && silent > w.longest_silence_ns.saturating_mul(2)
                && start.saturating_sub(w.first_ns) >= learn_ns
                && expected >= sliding.min_traffic
            {
                let onset = w.last_ns.saturating_add(window_ns);
                w.vanished = Some(onset);
                events.push((
                    edge_subject(key),
                    Event::Opened(Finding {
                        metric: Metric::TrafficDrop,
                        onset_ns: onset,
                        detected_ns: start,
                        observed: 0.0,
                        expected,
                        score: poisson_score(0.0, expected),
                    }),
                    "edge_vanished",
                ));
            }
        }
        for key in gone {
            self.graph.remove(&key);
        }
        // Applied in subject order, not the map's.
        events.sort_by(|a, b| a.0.cmp(&b.0));
        for (subject, event, name) in events {
            self.apply_named(subject, vec![event], links, Some(name));
        }
        for (key, at, calls) in std::mem::take(&mut self.new_edges) {
            self.event_anomaly(
                edge_subject(&key),
                "new_edge",
                at,
                calls,
                Vec::new(),
                format!("first calls from {} to {}", key.client, key.server),
                links,
            );
        }
    }
}

/// The service graph's (client, server) pairs, for grouping anomalies.
pub fn links_of(edges: &SeriesSet<EdgeKey>) -> HashSet<(Arc<str>, Arc<str>)> {
    edges
        .keys()
        .map(|k| (Arc::clone(&k.client), Arc::clone(&k.server)))
        .collect()
}
