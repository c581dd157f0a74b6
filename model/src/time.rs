//! Time as every stage writes it: unix nanoseconds (`i64`, what OTLP
//! carries and Arrow stores) and RFC 3339 UTC text (what the API, reports
//! and vendor queries read). One place, so that a report, an API answer
//! and a log line never disagree on the form of a timestamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock, unix ns (0 before 1970, saturating in 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The wall clock `d` ago, unix ns (a retention horizon); saturating.
pub fn ago_ns(d: Duration) -> i64 {
    now_ns().saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A system time from unix ns; times before 1970 are 1970 (nothing
/// causeway stores predates it, and formatting must not fail).
fn system_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Unix ns as RFC 3339 UTC to the second: `2024-05-01T10:00:00Z` (reports,
/// vendor API queries).
pub fn rfc3339(ns: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(ns)).to_string()
}

/// Unix ns as RFC 3339 UTC to the millisecond: `2024-05-01T10:00:00.250Z`
/// (API answers about spans, whose durations are often below a second).
pub fn rfc3339_millis(ns: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ns)).to_string()
}

/// RFC 3339 text as unix ns, `None` when it is not RFC 3339 or before
/// 1970.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_557_600_250_000_000; // 2024-05-01T10:00:00.25Z

    #[test]
    fn formats_utc_to_the_second_and_the_millisecond() {
        assert_eq!(rfc3339(T), "2024-05-01T10:00:00Z");
        assert_eq!(rfc3339_millis(T), "2024-05-01T10:00:00.250Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00.25Z"), Some(T));
        assert_eq!(parse_rfc3339("2024-05-01 10:00"), None);
    }

    #[test]
    fn the_clock_is_after_2024() {
        assert!(now_ns() > T);
    }
}
