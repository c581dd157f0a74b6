use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

#[test]
fn next_links_are_taken_verbatim() {
    let h = "<https://api.github.com/repositories/1/commits?page=2&per_page=100>; rel=\"next\", <https://api.github.com/repositories/1/commits?page=9>; rel=\"last\"";
    assert_eq!(
        next_link(h).as_deref(),
        Some("https://api.github.com/repositories/1/commits?page=2&per_page=100")
    );
    assert_eq!(next_link("<https://x/?page=1>; rel=\"prev\""), None);
    let snow = "<https://i.service-now.com/api/now/table/incident?sysparm_fields=sys_id,number&sysparm_offset=0>;rel=\"first\",<https://i.service-now.com/api/now/table/incident?sysparm_fields=sys_id,number&sysparm_offset=200>;rel=\"next\"";
    assert_eq!(
        next_link(snow).as_deref(),
        Some(
            "https://i.service-now.com/api/now/table/incident?sysparm_fields=sys_id,number&sysparm_offset=200"
        )
    );
}

#[test]
fn graphql_mutations_are_not_queries() {
    assert!(is_graphql_query(
        "query Issues($after: String) { issues { nodes { id } } }"
    ));
    assert!(is_graphql_query("  # comment\n{ viewer { id } }"));
    assert!(is_graphql_query("query{ viewer { id } }"));
    assert!(!is_graphql_query(
        "mutation { issueDelete(id: \"x\") { success } }"
    ));
    assert!(!is_graphql_query("# query\nmutation { x }"));
    assert!(!is_graphql_query("subscription { x }"));
    assert!(!is_graphql_query("queryX { }"));
}

#[test]
fn waits_come_from_retry_after_then_reset_headers() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_800);
    assert_eq!(
        wait_from_headers(&headers(&[("retry-after", "7")]), now),
        Some(Duration::from_secs(7))
    );
    // An HTTP date 30 s ahead (plus one second of margin).
    assert_eq!(
        wait_from_headers(
            &headers(&[("retry-after", "Wed, 01 May 2024 10:03:50 GMT")]),
            now
        ),
        Some(Duration::from_secs(31))
    );
    // GitHub: epoch seconds.
    assert_eq!(
        wait_from_headers(&headers(&[("x-ratelimit-reset", "1714557860")]), now),
        Some(Duration::from_secs(61))
    );
    // Jira: ISO minute precision.
    assert_eq!(
        wait_from_headers(&headers(&[("x-ratelimit-reset", "2024-05-01T10:05Z")]), now),
        Some(Duration::from_secs(101))
    );
    assert_eq!(wait_from_headers(&headers(&[]), now), None);
}

#[test]
fn a_low_budget_spreads_the_rest_until_the_reset() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let h = headers(&[
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "99"),
        ("x-ratelimit-reset", "1000000989"),
    ]);
    assert_eq!(pause_for_budget(&h, now), Some(Duration::from_secs(10)));
    let plenty = headers(&[
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4000"),
        ("x-ratelimit-reset", "1000000989"),
    ]);
    assert_eq!(pause_for_budget(&plenty, now), None);
}

#[tokio::test]
async fn writes_are_refused_before_anything_is_sent() {
    let c = ReadOnlyClient::new("github", None, &[], RetryPolicy::default()).expect("client");
    // Nothing listens on port 9: a request that were sent would fail
    // with a transport error, not a read-only one.
    for url in [
        "http://127.0.0.1:9/repos/acme/shop/issues",
        "http://127.0.0.1:9/rest/api/3/issue",
    ] {
        let err = c
            .query(url, &serde_json::json!({"fields": {}}))
            .await
            .expect_err("refused");
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    }
    let err = c
        .query(
            "http://127.0.0.1:9/graphql",
            &serde_json::json!({"query": "mutation { issueArchive(id: \"1\") { success } }"}),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
}

#[test]
fn hostile_rate_limit_headers_are_waits_not_panics() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    // A budget over u32::MAX (it truncated to 0 and divided by zero).
    let huge = headers(&[
        ("x-ratelimit-limit", "18446744073709551615"),
        ("x-ratelimit-remaining", "4294967296"),
        ("x-ratelimit-reset", "1000000989"),
    ]);
    assert!(pause_for_budget(&huge, now).is_some());
    // A remaining count whose tenfold overflows.
    let over = headers(&[
        ("x-ratelimit-limit", "18446744073709551615"),
        ("x-ratelimit-remaining", "18446744073709551000"),
        ("x-ratelimit-reset", "1000000989"),
    ]);
    assert_eq!(pause_for_budget(&over, now), None);
    // Resets at the ends of i64 (the subtraction overflowed).
    for reset in ["-9223372036854775808", "9223372036854775807"] {
        let w = wait_from_headers(&headers(&[("x-ratelimit-reset", reset)]), now);
        assert!(w.is_some(), "{reset}");
        let h = headers(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", reset),
        ]);
        assert!(pause_for_budget(&h, now).is_some(), "{reset}");
    }
}

#[tokio::test]
async fn links_and_redirects_off_the_configured_origin_are_not_followed() {
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // "Elsewhere": counts what reaches it, and the credential it carries.
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    let elsewhere = axum::Router::new().route(
        "/steal",
        get(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { "{}" }
        }),
    );
    let other = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other_addr = other.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(other, elsewhere).await;
    });
    // The configured system redirects there.
    let target = format!("http://{other_addr}/steal");
    let home = axum::Router::new().route(
        "/moved",
        get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, home).await;
    });
    let c = ReadOnlyClient::new(
        "github",
        Some(Auth::Bearer(crate::Secret::new("sk-test"))),
        &[],
        RetryPolicy::default(),
    )
    .expect("client")
    .pinned_to(&format!("http://{addr}/api"))
    .expect("pinned");
    // A next-page link to another origin: refused before it is sent.
    let err = c
        .get(&format!("http://{other_addr}/steal?page=2"))
        .await
        .expect_err("foreign");
    assert!(matches!(err, Error::ForeignUrl { .. }), "{err}");
    assert!(!err.to_string().contains("page=2"), "no query in errors");
    // A redirect to another origin: not followed.
    let _ = c.get(&format!("http://{addr}/moved")).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached elsewhere");
    // A bad base URL is the operator's to fix.
    assert!(
        ReadOnlyClient::new("github", None, &[], RetryPolicy::default())
            .expect("client")
            .pinned_to("not a url")
            .is_err()
    );
}
