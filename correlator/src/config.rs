//! The correlator's settings (`processors.correlator` in the config).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How the correlator analyses incidents.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelatorConfig {
    /// Spans from onset at least this long form the window analysed (to
    /// the latest onset of the incident's anomalies when that is later).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The window is at most this long.
    #[serde(with = "humantime_serde")]
    pub max_window: Duration,
    /// Healthy data compared with: this much (seconds with spans).
    #[serde(with = "humantime_serde")]
    pub reference: Duration,
    /// Look this far back for healthy data.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// Leave out this much before onset (the fault may start before the
    /// detected onset).
    #[serde(with = "humantime_serde")]
    pub guard: Duration,
    /// Reference spans read at most.
    pub reference_max_spans: usize,
    /// Hypotheses per report.
    pub hypotheses: usize,
    /// Changes up to this long before onset are candidates.
    #[serde(with = "humantime_serde")]
    pub change_lookback: Duration,
    /// A change's weight halves every this long before onset.
    #[serde(with = "humantime_serde")]
    pub change_half_life: Duration,
    /// A change needs this score (service match × time × kind × content)
    /// to be named as the cause.
    pub min_change_score: f64,
    /// Tickets and messages from this long before onset are linked.
    #[serde(with = "humantime_serde")]
    pub report_lookback: Duration,
    /// Linked tickets and messages at most.
    pub reports: usize,
    /// Re-analyse an open incident at most this often.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// An LLM that rewrites the narrative from the evidence (optional;
    /// the template narrative stays when it is off, slow or failing).
    pub llm: Option<LlmConfig>,
}

/// Which API the LLM endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmProvider {
    /// OpenAI-compatible chat completions (`POST {endpoint}/chat/completions`):
    /// OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM ...
    Openai,
    /// Vertex AI Gemini (`POST {endpoint}/{model}:generateContent`, with
    /// `endpoint` =
    /// `https://REGION-aiplatform.googleapis.com/v1/projects/P/locations/REGION/publishers/google/models`).
    Vertex,
}

/// Where a credential comes from (never inline in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyRef {
    /// An environment variable.
    Env(String),
    /// A file (its content, trimmed).
    File(PathBuf),
}

impl KeyRef {
    /// The value; the error names the reference, never the value.
    pub fn resolve(&self) -> std::result::Result<String, String> {
        let v = match self {
            KeyRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            KeyRef::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let v = v.trim().to_owned();
        if v.is_empty() {
            return Err("the credential is empty".to_owned());
        }
        Ok(v)
    }
}

/// `processors.correlator.llm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The API it speaks.
    pub provider: LlmProvider,
    /// Base URL (see [`LlmProvider`]).
    pub endpoint: String,
    /// Model name.
    pub model: String,
    /// Bearer token (OpenAI API key, Google access token).
    #[serde(default)]
    pub api_key: Option<KeyRef>,
    /// The whole call at most this long, then the template stays.
    #[serde(default = "default_llm_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_llm_timeout() -> Duration {
    Duration::from_secs(20)
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(180),
            max_window: Duration::from_secs(15 * 60),
            reference: Duration::from_secs(30 * 60),
            lookback: Duration::from_secs(24 * 3600),
            guard: Duration::from_secs(30),
            reference_max_spans: 500_000,
            hypotheses: 5,
            change_lookback: Duration::from_secs(24 * 3600),
            change_half_life: Duration::from_secs(3600),
            min_change_score: 0.2,
            report_lookback: Duration::from_secs(3600),
            reports: 5,
            interval: Duration::from_secs(60),
            llm: None,
        }
    }
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl CorrelatorConfig {
    /// End of the analysed window of `incident`: the latest onset of its
    /// anomalies, at least `window` and at most `max_window` after onset.
    ///
    /// Onsets, not the incident's latest change: a cause shows where
    /// something changed. A fault that joins later has an onset of its
    /// own and stretches the window; an anomaly noticed late (an edge is
    /// found gone only after a silence of minutes), still going on, or
    /// ended, changed nothing then, and stretching the window to those
    /// times only lets in unrelated changes (the next fault) that happen
    /// meanwhile. Incidents stored before onsets were kept use their
    /// latest change.
    pub fn window_end(&self, incident: &causeway_model::Incident) -> i64 {
        let onset = incident.onset_ns;
        let shortest = onset.saturating_add(ns(self.window));
        let longest = onset.saturating_add(ns(self.max_window.max(self.window)));
        incident
            .last_onset_ns
            .unwrap_or(incident.updated_ns)
            .clamp(shortest, longest)
    }
    pub(crate) fn guard_ns(&self) -> i64 {
        ns(self.guard)
    }
    pub(crate) fn lookback_ns(&self) -> i64 {
        ns(self.lookback)
    }
    pub(crate) fn reference_seconds(&self) -> u64 {
        self.reference.as_secs()
    }
    pub(crate) fn change_lookback_ns(&self) -> i64 {
        ns(self.change_lookback)
    }
    pub(crate) fn change_half_life_ns(&self) -> i64 {
        ns(self.change_half_life)
    }
    pub(crate) fn report_lookback_ns(&self) -> i64 {
        ns(self.report_lookback)
    }

    /// Problems a user must fix, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.window.is_zero() {
            out.push("correlator.window must be positive".to_owned());
        }
        if self.max_window < self.window {
            out.push("correlator.max_window must be at least correlator.window".to_owned());
        }
        if self.reference.is_zero() || self.lookback < self.reference {
            out.push(
                "correlator.reference must be positive and at most correlator.lookback".to_owned(),
            );
        }
        if self.hypotheses == 0 {
            out.push("correlator.hypotheses must be at least 1".to_owned());
        }
        if self.change_half_life.is_zero() {
            out.push("correlator.change_half_life must be positive".to_owned());
        }
        if self.min_change_score.is_nan() || self.min_change_score < 0.0 {
            out.push("correlator.min_change_score must be a number >= 0".to_owned());
        }
        if let Some(llm) = &self.llm {
            if let Err(e) = causeway_model::outbound::check(&llm.endpoint) {
                out.push(format!("correlator.llm.endpoint: {e}"));
            }
            if llm.model.trim().is_empty() {
                out.push("correlator.llm.model must be set".to_owned());
            }
            if llm.timeout.is_zero() {
                out.push("correlator.llm.timeout must be positive".to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use causeway_model::{Incident, IncidentState, Severity};

    use super::*;

    #[test]
    fn the_window_follows_the_incident_within_bounds() {
        let min = 60_000_000_000i64;
        let incident = |last_onset: Option<i64>, updated: i64| Incident {
            id: 1,
            state: IncidentState::Open,
            onset_ns: 1000 * min,
            updated_ns: 1000 * min + updated,
            last_onset_ns: last_onset.map(|l| 1000 * min + l),
            resolved_ns: None,
            severity: Severity::Major,
            services: BTreeSet::new(),
            anomalies: Vec::new(),
        };
        let c = CorrelatorConfig::default();
        // A young incident: the minimum window.
        assert_eq!(c.window_end(&incident(Some(0), min)), 1003 * min);
        // A fault that joined later: up to its onset.
        assert_eq!(
            c.window_end(&incident(Some(10 * min), 10 * min)),
            1010 * min
        );
        // Noticed, going on or ended late, changed at onset: the minimum
        // window, not up to the latest change.
        assert_eq!(c.window_end(&incident(Some(0), 10 * min)), 1003 * min);
        assert_eq!(c.window_end(&incident(Some(5 * min), 10 * min)), 1005 * min);
        // Stored before onsets were kept: the latest change.
        assert_eq!(c.window_end(&incident(None, 10 * min)), 1010 * min);
        // A long incident: capped.
        assert_eq!(
            c.window_end(&incident(Some(90 * min), 90 * min)),
            1015 * min
        );
        let bad = CorrelatorConfig {
            max_window: Duration::from_secs(60),
            ..CorrelatorConfig::default()
        };
        assert!(!bad.problems().is_empty());
    }
}
