use super::*;
use http::HeaderValue;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

/// The vendors' published vectors and the reference's computed ones
/// (docs/connectors.md, Appendix A).
#[test]
fn published_test_vectors_verify() {
    let gh = Secret::new("It's a Secret to Everybody");
    let h = headers(&[(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(verify(Source::GitHub, &gh, &h, b"Hello, World!", 0), Ok(()));
    assert!(verify(Source::GitHub, &gh, &h, b"Hello, World?", 0).is_err());

    let slack = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let h = headers(&[
        ("x-slack-request-timestamp", "1531420618"),
        (
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ]);
    assert_eq!(
        verify(Source::Slack, &slack, &h, body, 1_531_420_618 + 10),
        Ok(())
    );
    assert_eq!(
        verify(Source::Slack, &slack, &h, body, 1_531_420_618 + 301),
        Err(WebhookError::Replay),
        "an old signature replayed"
    );

    let linear = Secret::new("linear-test-secret");
    assert_eq!(
        hmac_hex(&linear, &[br#"{"action":"update","type":"Issue"}"#]),
        "cfe596a5025253cc7a33b688f6903d542346cd15a2ba428d1bc568a9a316e958"
    );
    let jira = Secret::new("jira-test-secret");
    let h = headers(&[(
        "x-hub-signature",
        "sha256=20192d641294a4aaa3ddce49e253323967e5463de05139a4c257e6812e4a3c1f",
    )]);
    assert_eq!(
        verify(
            Source::Jira,
            &jira,
            &h,
            br#"{"webhookEvent":"jira:issue_updated"}"#,
            0
        ),
        Ok(())
    );
}

#[test]
fn missing_or_wrong_signatures_are_refused() {
    let secret = Secret::new("s3cret");
    for source in [
        Source::GitHub,
        Source::GitLab,
        Source::Jira,
        Source::Linear,
        Source::Slack,
        Source::Deploy,
    ] {
        assert!(
            matches!(
                verify(source, &secret, &HeaderMap::new(), b"{}", 0),
                Err(WebhookError::Signature(_))
            ),
            "{source:?}"
        );
    }
    let h = headers(&[("x-gitlab-token", "s3cret")]);
    assert_eq!(verify(Source::GitLab, &secret, &h, b"{}", 0), Ok(()));
    let h = headers(&[("x-gitlab-token", "s3cre")]);
    assert!(verify(Source::GitLab, &secret, &h, b"{}", 0).is_err());
    // Linear: the signed body's timestamp decides replays.
    let body = br#"{"type":"Issue","action":"create","webhookTimestamp":1714557600000,"data":{}}"#;
    let sig = hmac_hex(&secret, &[body]);
    let h = headers(&[("linear-signature", sig.as_str())]);
    assert_eq!(
        verify(Source::Linear, &secret, &h, body, 1_714_557_630),
        Ok(())
    );
    assert_eq!(
        verify(Source::Linear, &secret, &h, body, 1_714_558_600),
        Err(WebhookError::Replay)
    );
}

#[test]
fn deploy_events_verify_and_become_deploy_signals() {
    let secret = Secret::new("deploy-secret");
    let body = br#"{"service":"checkout","version":"v2.3.1","commit":"6dcb09b","time":"2024-05-01T10:00:00Z","environment":"production"}"#;
    let sig = format!("sha256={}", hmac_hex(&secret, &[b"1714557600", b".", body]));
    let h = headers(&[
        ("x-causeway-timestamp", "1714557600"),
        ("x-causeway-signature", sig.as_str()),
    ]);
    assert_eq!(
        verify(Source::Deploy, &secret, &h, body, 1_714_557_650),
        Ok(())
    );
    let tenant = TenantId::new("acme").expect("tenant");
    let Ok(Parsed::Items(items)) = parse(Source::Deploy, "deploys", &tenant, None, body, 0) else {
        panic!("parsed");
    };
    let s = &items[0].signal;
    assert_eq!(s.kind, SignalKind::Deploy);
    assert_eq!(s.version.as_deref(), Some("v2.3.1"));
    assert_eq!(s.created_ns, 1_714_557_600_000_000_000);
    assert_eq!(items[0].hints.services, ["checkout"]);
    assert!(matches!(
        parse(
            Source::Deploy,
            "deploys",
            &tenant,
            None,
            br#"{"service":"x"}"#,
            0
        ),
        Err(WebhookError::Payload(_))
    ));
    assert!(matches!(
        parse(
            Source::Deploy,
            "deploys",
            &tenant,
            None,
            br#"{"service":"x","version":"1","extra":1}"#,
            0
        ),
        Err(WebhookError::Payload(_))
    ));
}

#[test]
fn vendor_payloads_become_signals() {
    let tenant = TenantId::new("acme").expect("tenant");
    let push = serde_json::json!({
        "ref": "refs/heads/main",
        "repository": {"id": 1, "full_name": "acme/checkout-service"},
        "commits": [{"id": "6dcb09b5", "message": "Raise timeout\n\nbecause", "timestamp": "2024-05-01T10:00:00+02:00",
                     "url": "https://github.com/acme/checkout-service/commit/6dcb09b5",
                     "author": {"name": "Mona", "username": "octocat"},
                     "added": ["a.rs"], "removed": [], "modified": ["src/pay.rs"]}]
    });
    let Ok(Parsed::Items(items)) = parse(
        Source::GitHub,
        "github",
        &tenant,
        Some("push"),
        push.to_string().as_bytes(),
        0,
    ) else {
        panic!("push");
    };
    assert_eq!(items[0].signal.changed_paths, ["a.rs", "src/pay.rs"]);
    assert_eq!(items[0].signal.created_ns, 1_714_550_400_000_000_000);
    assert_eq!(
        items[0].hints.repository.as_deref(),
        Some("acme/checkout-service")
    );

    let slack = serde_json::json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "token": "x"});
    assert_eq!(
        parse(
            Source::Slack,
            "slack",
            &tenant,
            None,
            slack.to_string().as_bytes(),
            0
        ),
        Ok(Parsed::Challenge(
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
        ))
    );
    let jira = serde_json::json!({"webhookEvent": "jira:issue_created", "timestamp": 1714557600000i64,
        "issue": {"key": "OPS-7", "fields": {"summary": "Checkout down", "created": "2024-05-01T09:45:12.000+0000",
                  "components": [{"name": "Checkout"}], "labels": ["sev1"], "project": {"key": "OPS"}}}});
    let Ok(Parsed::Items(items)) = parse(
        Source::Jira,
        "jira",
        &tenant,
        None,
        jira.to_string().as_bytes(),
        0,
    ) else {
        panic!("jira");
    };
    assert_eq!(items[0].signal.external_id, "OPS-7");
    assert_eq!(items[0].hints.components, ["Checkout"]);
    assert!(matches!(
        parse(
            Source::GitHub,
            "github",
            &tenant,
            Some("push"),
            b"{not json",
            0
        ),
        Err(WebhookError::Payload(_))
    ));
}
