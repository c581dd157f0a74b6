//! Settings every listener shares: addresses, TLS, API keys, and the
//! `Problem` a `validate()` reports.

use std::net::SocketAddr;
use std::path::PathBuf;

use causeway_model::TenantId;
use serde::{Deserialize, Deserializer};

/// A problem found by a `validate()`: the dotted path of the field and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path, e.g. `receivers.otlp.protocols.grpc.tls.cert_file`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// TLS settings of a listener (`tls:` under a protocol or the API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Oldest protocol version accepted: `"1.3"` (default) or `"1.2"`.
    #[serde(default)]
    pub min_version: TlsVersion,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2, for old clients an operator opts in for.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3: the default. Every maintained OTLP client speaks it (Go's
    /// crypto/tls, rustls, Java 11+, OpenSSL 1.1.1+ under Python, Node
    /// and .NET), and it leaves out the cipher suites and renegotiation
    /// that TLS 1.2 deployments must be configured against.
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsConfig {
    /// Checks that the files exist and parse.
    pub fn validate(&self, path: &str, problems: &mut Vec<Problem>) {
        if let Err(e) = crate::net::load_tls(self) {
            problems.push(Problem::new(path, e.to_string()));
        }
    }
}

/// `auth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API keys and the tenant each maps to. Empty: no authentication, all
    /// data goes to tenant `default`, and only loopback listeners are allowed
    /// unless `insecure: true`.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
}

/// One `auth.api_keys` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The tenant this key's data belongs to.
    pub tenant: TenantId,
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    #[serde(deserialize_with = "sha256_hex")]
    pub key_sha256: [u8; 32],
}

/// `host:port` where host is an IP address or `localhost`.
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_socket_addr(&s).map_err(serde::de::Error::custom)
}

/// Parses `host:port` where host is an IP address or `localhost`.
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if let Some(Ok(port)) = s.strip_prefix("localhost:").map(str::parse::<u16>) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "{s:?} is not an address: use IP:PORT (e.g. 127.0.0.1:4317, 0.0.0.0:4317, [::1]:4317) or localhost:PORT"
    ))
}

fn sha256_hex<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| {
        serde::de::Error::custom(
            "key_sha256 must be 64 hex characters (the SHA-256 of the key, e.g. from `printf %s KEY | sha256sum`)",
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_13_is_the_default_and_12_an_explicit_choice() {
        let parse = |json: &str| serde_json::from_str::<TlsConfig>(json).expect("parses");
        let default = parse(r#"{"cert_file": "c.pem", "key_file": "k.pem"}"#);
        assert_eq!(default.min_version, TlsVersion::Tls13);
        let old = parse(r#"{"cert_file": "c.pem", "key_file": "k.pem", "min_version": "1.2"}"#);
        assert_eq!(old.min_version, TlsVersion::Tls12);
        assert!(
            serde_json::from_str::<TlsConfig>(
                r#"{"cert_file": "c.pem", "key_file": "k.pem", "min_version": "1.1"}"#
            )
            .is_err()
        );
    }
}
