//! The rule for URLs causeway calls out to (connector APIs, the LLM,
//! notification webhooks): `https`, except on this machine's loopback,
//! where a local proxy, a test server or a port-forward speaks `http`.
//! Credentials and incident details must not cross a network in clear.

use std::net::IpAddr;

/// Checks `url` against the rule; the error says what is wrong.
pub fn check(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "{url:?} is plain http to another machine: use https (http is allowed only to loopback)"
        )),
        other => Err(format!("{url:?}: scheme {other:?} is not https")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(check("https://api.github.com").is_ok());
        assert!(check("http://127.0.0.1:8080/api").is_ok());
        assert!(check("http://[::1]:9000").is_ok());
        assert!(check("http://localhost:11434/v1").is_ok());
        let e = check("http://jira.example.com").expect_err("plain http");
        assert!(e.contains("use https"), "{e}");
        assert!(check("http://10.0.0.5/hook").is_err());
        assert!(check("ftp://example.com").is_err());
        assert!(check("not a url").is_err());
        // A loopback-looking name that is not loopback.
        assert!(check("http://localhost.evil.example").is_err());
    }
}
