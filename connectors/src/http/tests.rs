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
