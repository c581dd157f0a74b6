//! The optional LLM narrator: rewrites an RCA report's narrative from its
//! evidence through an OpenAI-compatible chat completions endpoint or
//! Vertex AI Gemini. It only ever sees the report's findings in words
//! (`correlator::report::llm_evidence`), never spans or signal bodies. A
//! timeout, a refusal or an answer of the wrong shape leaves the template
//! narrative in place: the report never waits on, or depends on, the LLM.

use crate::config::{LlmConfig, LlmProvider};
use crate::report::{LLM_INSTRUCTIONS, llm_evidence};
use causeway_model::RcaReport;
use serde_json::{Value, json};

/// A narrative is cut to this many characters.
const MAX_CHARS: usize = 4000;

/// Why the LLM's narrative was not used.
#[derive(Debug, thiserror::Error)]
pub enum NarrativeError {
    /// The credential reference does not resolve (the config's fault).
    #[error("LLM credential: {0}")]
    Credential(String),
    /// No answer in time, or the connection failed.
    #[error("LLM endpoint unreachable or too slow: {0}")]
    Transport(String),
    /// The endpoint refused (401, 429, 5xx ...).
    #[error("LLM endpoint answered {status}")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// The answer is not the API's shape, or empty.
    #[error("LLM answer unusable: {0}")]
    Garbage(String),
}

/// Calls LLMs.
#[derive(Debug, Clone)]
pub struct Narrator {
    client: reqwest::Client,
    config: LlmConfig,
}

impl Narrator {
    /// A narrator for `config`.
    pub fn new(config: LlmConfig) -> Result<Self, NarrativeError> {
        // reqwest is built without a default crypto provider; ring is the
        // one the rest of causeway uses. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| NarrativeError::Transport(e.to_string()))?;
        Ok(Self { client, config })
    }

    /// The LLM's narrative for `report`.
    pub async fn narrate(&self, report: &RcaReport) -> Result<String, NarrativeError> {
        // Span attributes and exception messages can quote e-mail
        // addresses or tokens; none of it leaves for a third party.
        let evidence = causeway_model::redact::redact_owned(llm_evidence(report));
        let cfg = &self.config;
        let base = cfg.endpoint.trim_end_matches('/');
        let (url, body) = match cfg.provider {
            LlmProvider::Openai => (
                format!("{base}/chat/completions"),
                json!({
                    "model": cfg.model,
                    "temperature": 0,
                    "messages": [
                        {"role": "system", "content": LLM_INSTRUCTIONS},
                        {"role": "user", "content": evidence},
                    ],
                }),
            ),
            LlmProvider::Vertex => (
                format!("{base}/{}:generateContent", cfg.model),
                json!({
                    "systemInstruction": {"parts": [{"text": LLM_INSTRUCTIONS}]},
                    "contents": [{"role": "user", "parts": [{"text": evidence}]}],
                    "generationConfig": {"temperature": 0},
                }),
            ),
        };
        let mut req = self.client.post(&url).json(&body);
        if let Some(key) = &cfg.api_key {
            let token = key.resolve().map_err(NarrativeError::Credential)?;
            req = req.bearer_auth(token);
        }
        let call = async {
            let resp = req
                .send()
                .await
                .map_err(|e| NarrativeError::Transport(e.without_url().to_string()))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(NarrativeError::Status {
                    status: status.as_u16(),
                });
            }
            resp.json::<Value>()
                .await
                .map_err(|e| NarrativeError::Garbage(e.without_url().to_string()))
        };
        // The client's timeout covers each request; this covers the whole
        // exchange, body included.
        let answer = tokio::time::timeout(cfg.timeout, call)
            .await
            .map_err(|_| NarrativeError::Transport(format!("no answer in {:?}", cfg.timeout)))??;
        let text = match cfg.provider {
            LlmProvider::Openai => answer
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str),
            LlmProvider::Vertex => answer
                .pointer("/candidates/0/content/parts/0/text")
                .and_then(Value::as_str),
        }
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| NarrativeError::Garbage("no text where the API puts it".to_owned()))?;
        Ok(text.chars().take(MAX_CHARS).collect())
    }

    /// Replaces `report`'s narrative with the LLM's, or leaves the template
    /// narrative and logs why (never the credential).
    pub async fn apply(&self, report: &mut RcaReport) {
        match self.narrate(report).await {
            Ok(text) => {
                report.narrative = text;
                report.narrative_by = self.config.model.clone();
            }
            Err(e) => tracing::warn!(
                incident = report.incident,
                error = %e,
                "LLM narrative unavailable; keeping the template narrative"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::config::KeyRef;
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::post;

    use super::*;

    fn report() -> RcaReport {
        RcaReport {
            id: 3,
            tenant: "acme".into(),
            incident: 3,
            window_start_ns: 0,
            window_end_ns: 1,
            reference_spans: 10,
            reference_seconds: 60,
            summary: "Most likely shipping, caused by a deploy.".into(),
            narrative: "template narrative".into(),
            narrative_by: "template".into(),
            hypotheses: Vec::new(),
            impacted_services: vec!["shipping".into()],
            reports: Vec::new(),
            timeline: Vec::new(),
            next_steps: Vec::new(),
            feedback: Vec::new(),
            computed_ns: 0,
            incident_updated_ns: 0,
        }
    }

    type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

    /// A local server: `path` answers `reply` after `delay`; requests are
    /// recorded (path, authorization, body).
    async fn server(path: &'static str, reply: Value, delay: Duration) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let app = Router::new().route(
            path,
            post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let log = Arc::clone(&log);
                let reply = reply.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if let Ok(mut l) = log.lock() {
                        l.push((path.to_owned(), auth, body.0));
                    }
                    tokio::time::sleep(delay).await;
                    axum::Json(reply)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), seen)
    }

    fn config(provider: LlmProvider, endpoint: String, model: &str) -> LlmConfig {
        LlmConfig {
            provider,
            endpoint,
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn openai_compatible_answers_replace_the_narrative_with_evidence_only_sent() {
        let (base, seen) = server(
            "/v1/chat/completions",
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "  Shipping broke after its deploy.  "}, "finish_reason": "stop"}]}),
            Duration::ZERO,
        )
        .await;
        let dir = std::env::temp_dir().join(format!("causeway-llm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("key");
        std::fs::write(&key, "sk-test-123\n").expect("key");
        let mut cfg = config(LlmProvider::Openai, format!("{base}/v1/"), "gpt-test");
        cfg.api_key = Some(KeyRef::File(key));
        let mut r = report();
        Narrator::new(cfg).expect("narrator").apply(&mut r).await;
        assert_eq!(r.narrative, "Shipping broke after its deploy.");
        assert_eq!(r.narrative_by, "gpt-test");
        let seen = seen.lock().expect("lock");
        let (_, auth, body) = &seen[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(body["model"], "gpt-test");
        let user = body["messages"][1]["content"].as_str().expect("content");
        assert!(user.contains("Summary: Most likely shipping"), "{user}");
        assert!(
            !user.contains("template narrative"),
            "the narrative is not evidence"
        );
    }

    #[tokio::test]
    async fn vertex_gemini_answers_replace_the_narrative() {
        let (base, seen) = server(
            "/v1/projects/p/locations/us-central1/publishers/google/models/{model}",
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Gemini says shipping."}]}, "finishReason": "STOP"}]}),
            Duration::ZERO,
        )
        .await;
        let cfg = config(
            LlmProvider::Vertex,
            format!("{base}/v1/projects/p/locations/us-central1/publishers/google/models"),
            "gemini-2.0-flash",
        );
        let mut r = report();
        Narrator::new(cfg).expect("narrator").apply(&mut r).await;
        assert_eq!(r.narrative, "Gemini says shipping.");
        assert_eq!(r.narrative_by, "gemini-2.0-flash");
        let seen = seen.lock().expect("lock");
        let body = &seen[0].2;
        assert!(
            body["contents"][0]["parts"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("Summary:"))
        );
    }

    #[tokio::test]
    async fn slow_garbage_or_unconfigured_answers_keep_the_template() {
        // Too slow.
        let (base, _) = server(
            "/chat/completions",
            json!({"choices": [{"message": {"content": "late"}}]}),
            Duration::from_secs(3),
        )
        .await;
        let mut cfg = config(LlmProvider::Openai, base, "m");
        cfg.timeout = Duration::from_millis(300);
        let n = Narrator::new(cfg).expect("narrator");
        assert!(matches!(
            n.narrate(&report()).await,
            Err(NarrativeError::Transport(_))
        ));
        let mut r = report();
        n.apply(&mut r).await;
        assert_eq!(
            (r.narrative.as_str(), r.narrative_by.as_str()),
            ("template narrative", "template")
        );
        // The wrong shape.
        let (base, _) = server("/chat/completions", json!({"oops": true}), Duration::ZERO).await;
        let n = Narrator::new(config(LlmProvider::Openai, base, "m")).expect("narrator");
        assert!(matches!(
            n.narrate(&report()).await,
            Err(NarrativeError::Garbage(_))
        ));
        // A credential that does not resolve: named, not sent.
        let mut cfg = config(LlmProvider::Openai, "http://127.0.0.1:9".into(), "m");
        cfg.api_key = Some(KeyRef::Env("CAUSEWAY_TEST_NO_SUCH_KEY".into()));
        let err = Narrator::new(cfg)
            .expect("narrator")
            .narrate(&report())
            .await
            .expect_err("no key");
        assert!(
            err.to_string().contains("CAUSEWAY_TEST_NO_SUCH_KEY"),
            "{err}"
        );
        // Nothing listening.
        let n = Narrator::new(config(
            LlmProvider::Openai,
            "http://127.0.0.1:9".into(),
            "m",
        ))
        .expect("narrator");
        assert!(matches!(
            n.narrate(&report()).await,
            Err(NarrativeError::Transport(_))
        ));
    }
}
