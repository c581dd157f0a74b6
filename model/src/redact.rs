//! Redaction of personal data and secrets from free text, before it is
//! written to the audit trail or logs, served in signals, sent in
//! notifications or put into an LLM prompt.
//!
//! What is replaced, and by what:
//!
//! | found | becomes |
//! |---|---|
//! | e-mail addresses | `<email>` |
//! | `Bearer <token>` | `Bearer <redacted>` (`Authorization: <redacted>` after a header name) |
//! | credentials in URLs (`scheme://user:pass@host`) | `scheme://<redacted>@host` |
//! | `key=value` where the key names a secret (`token`, `api_key`, `password`, `secret`, `authorization`, …) | `key=<redacted>` |
//! | well-known token formats (GitHub, GitLab, Slack, AWS access keys, JWTs, `sk-…` keys) | `<redacted>` |
//!
//! Redaction is pattern-based: it removes what has a recognisable shape and
//! is no substitute for not collecting secrets at all. Text without a
//! match is returned borrowed, so the common case does not allocate.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

fn rule(pattern: &str, replacement: &'static str) -> Rule {
    Rule {
        // The patterns are constants checked by the tests below.
        pattern: Regex::new(pattern).unwrap_or_else(|e| panic!("redaction pattern {pattern}: {e}")),
        replacement,
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // Credentials in URLs go first: `user:pass@host` would otherwise
        // read as an e-mail address and lose the scheme's context.
        rule(
            r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+(?::[^/\s@]*)?@",
            "${1}<redacted>@",
        ),
        // `key: value` where the key names a secret; an `Authorization`
        // value's scheme (`Bearer`, `Basic`) goes with the secret.
        rule(
            r#"(?i)\b((?:api[_\-]?key|access[_\-]?token|refresh[_\-]?token|client[_\-]?secret|token|secret|password|passwd|pwd|authorization|x-api-key|private[_\-]?key)"?\s*[:=]\s*"?)(?:(?:bearer|basic|token)\s+)?[^\s"&,;}]+"#,
            "${1}<redacted>",
        ),
        rule(
            r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{6,}",
            "Bearer <redacted>",
        ),
        rule(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}|xox[abeprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9_\-]{20,}|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
            "<redacted>",
        ),
        rule(
            r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
            "<email>",
        ),
    ]
});

/// `text` with e-mail addresses, tokens, keys and URL credentials
/// replaced.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for r in RULES.iter() {
        if let Cow::Owned(s) = r.pattern.replace_all(&out, r.replacement) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// [`redact`] into an owned string, for fields that are owned anyway.
pub fn redact_owned(text: String) -> String {
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_borrowed() {
        let t = "checkout p99 rose from 120 ms to 2.1 s after deploy 4f2a9c1";
        assert!(matches!(redact(t), Cow::Borrowed(_)));
    }

    #[test]
    fn emails_tokens_keys_and_url_credentials_are_replaced() {
        let cases = [
            (
                "reported by jane.doe+ops@example.co.uk today",
                "reported by <email> today",
            ),
            (
                "Authorization: Bearer abcDEF123456.xyz",
                "Authorization: <redacted>",
            ),
            (
                "sent with bearer abcDEF123456.xyz",
                "sent with Bearer <redacted>",
            ),
            (
                "clone https://bot:s3cr3t@git.example.com/acme/repo.git",
                "clone https://<redacted>@git.example.com/acme/repo.git",
            ),
            (
                "postgres://causeway:hunter2@db:5432/x",
                "postgres://<redacted>@db:5432/x",
            ),
            (
                "GET /hook?token=abc123&x=1",
                "GET /hook?token=<redacted>&x=1",
            ),
            (r#"{"password": "pa55"}"#, r#"{"password": "<redacted>"}"#),
            ("api_key=k-acme-123", "api_key=<redacted>"),
            (
                "used ghp_0123456789abcdefABCDEF0123 to sync",
                "used <redacted> to sync",
            ),
            ("xoxb-1234567890-abcdefghij", "<redacted>"),
            ("AKIAABCDEFGHIJKLMNOP", "<redacted>"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
                "jwt <redacted>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = redact("mail ops@example.com, Bearer abcdefgh, token=xyz").into_owned();
        assert_eq!(redact(&once), once);
    }
}
