//! Timestamps as the systems write them, to unix nanoseconds.

use chrono::{DateTime, NaiveDateTime};

/// Parses an ISO 8601 / RFC 3339 timestamp as the systems write them:
/// `2011-04-14T16:00:49Z`, `2021-09-20T11:50:22.001+00:00`, Jira's
/// `2024-05-01T09:45:12.000+0000`, minute precision `2024-05-01T10:05Z`,
/// and ServiceNow's zone-less `2024-05-01 10:00:00` (UTC).
pub fn parse_ns(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return t.timestamp_nanos_opt();
        }
    }
    let zulu = s.strip_suffix('Z').unwrap_or(s);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(zulu, fmt) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    None
}

/// A Slack message `ts` (`"1714557845.123456"`: seconds and microseconds).
pub fn slack_ts_ns(ts: &str) -> Option<i64> {
    let (s, us) = ts.split_once('.').unwrap_or((ts, "0"));
    let s: i64 = s.parse().ok()?;
    let us: i64 = format!("{us:0<6}").get(..6)?.parse().ok()?;
    s.checked_mul(1_000_000_000)?.checked_add(us * 1000)
}

/// Unix ns as RFC 3339 UTC with seconds (`2024-05-01T10:00:00Z`), the form
/// query parameters take.
pub use causeway_model::time::{now_ns, rfc3339};

/// Unix ns as Jira's JQL date (`2024/05/01 10:00`, minute precision).
pub fn jql_minute(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns)
        .format("%Y/%m/%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_557_600_000_000_000; // 2024-05-01T10:00:00Z

    #[test]
    fn every_vendor_format_parses() {
        assert_eq!(parse_ns("2024-05-01T10:00:00Z"), Some(T));
        assert_eq!(
            parse_ns("2024-05-01T10:00:00.001+00:00"),
            Some(T + 1_000_000)
        );
        assert_eq!(parse_ns("2024-05-01T12:00:00.000+0200"), Some(T));
        assert_eq!(parse_ns("2024-05-01T10:00Z"), Some(T));
        assert_eq!(parse_ns("2024-05-01 10:00:00"), Some(T));
        assert_eq!(parse_ns("yesterday"), None);
        assert_eq!(parse_ns(""), None);
    }

    #[test]
    fn slack_timestamps_and_query_forms() {
        assert_eq!(slack_ts_ns("1714557600.000123"), Some(T + 123_000));
        assert_eq!(slack_ts_ns("1714557600"), Some(T));
        assert_eq!(slack_ts_ns("x.1"), None);
        assert_eq!(rfc3339(T), "2024-05-01T10:00:00Z");
        assert_eq!(jql_minute(T), "2024/05/01 10:00");
    }
}
