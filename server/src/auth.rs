//! API keys to tenants.
//!
//! Keys are configured as SHA-256 digests, never in clear. A request's key is
//! hashed and compared with every configured digest in constant time, so
//! neither the comparison nor the number of keys tried leaks how close a guess
//! was. Without configured keys every request belongs to the `default` tenant.

use causeway_model::TenantId;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKeyConfig;
use crate::error::AuthError;

/// Resolves the tenant of a request from its credentials.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: Vec<(TenantId, [u8; 32])>,
}

impl Authenticator {
    /// Builds from validated key entries. An empty list means "no auth: all
    /// data goes to the default tenant".
    pub fn new(keys: &[ApiKeyConfig]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (k.tenant.clone(), k.key_sha256))
                .collect(),
        }
    }

    /// True when API keys are configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The tenants that keys map to (just `default` without keys).
    pub fn tenants(&self) -> Vec<TenantId> {
        if self.keys.is_empty() {
            return vec![TenantId::default_tenant()];
        }
        let mut t: Vec<_> = self.keys.iter().map(|(t, _)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Resolves the tenant from `Authorization: Bearer KEY` or `X-API-Key:
    /// KEY` (HTTP headers and gRPC metadata are the same thing on the wire).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<TenantId, AuthError> {
        if self.keys.is_empty() {
            return Ok(TenantId::default_tenant());
        }
        let key = presented_key(headers)?;
        self.tenant_for_key(key.as_bytes())
    }

    /// The fingerprint of the key `headers` present (the first 12 hex
    /// digits of its SHA-256), for the audit trail; `None` without one.
    pub fn fingerprint(headers: &HeaderMap) -> Option<String> {
        presented_key(headers)
            .ok()
            .filter(|k| !k.is_empty())
            .map(|k| key_fingerprint(k.as_bytes()))
    }

    /// Resolves the tenant of a raw key.
    pub fn tenant_for_key(&self, key: &[u8]) -> Result<TenantId, AuthError> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        let mut found: Option<&TenantId> = None;
        // Every digest is compared, whether or not an earlier one matched.
        for (tenant, want) in &self.keys {
            if bool::from(want.ct_eq(&digest)) {
                found = Some(tenant);
            }
        }
        found.cloned().ok_or(AuthError("unknown API key"))
    }
}

/// Extracts the key a client presented.
fn presented_key(headers: &HeaderMap) -> Result<&str, AuthError> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| AuthError("malformed Authorization header"))?;
        let (scheme, token) = v
            .split_once(' ')
            .ok_or(AuthError("Authorization header is not 'Bearer <key>'"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError("Authorization header is not 'Bearer <key>'"));
        }
        return Ok(token.trim());
    }
    if let Some(v) = headers.get("x-api-key") {
        return v
            .to_str()
            .map(str::trim)
            .map_err(|_| AuthError("malformed X-API-Key header"));
    }
    Err(AuthError(
        "missing credentials: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    ))
}

/// The first 12 hex digits of a key's SHA-256: names a configured key in
/// the audit trail (its config entry holds the full digest) without
/// revealing it.
pub fn key_fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    hex::encode(&digest[..6])
}

/// The hex SHA-256 digest of a key, as the `auth.api_keys[].key_sha256`
/// config field expects it.
pub fn key_digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let entry = |tenant: &str, key: &str| ApiKeyConfig {
            tenant: TenantId::new(tenant).expect("valid"),
            key_sha256: Sha256::digest(key.as_bytes()).into(),
        };
        Authenticator::new(&[entry("acme", "k-acme"), entry("globex", "k-globex")])
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().expect("header"));
        h
    }

    #[test]
    fn resolves_bearer_and_x_api_key() {
        let a = auth();
        let t = a
            .authenticate(&headers("authorization", "Bearer k-acme"))
            .expect("ok");
        assert_eq!(t.as_str(), "acme");
        let t = a
            .authenticate(&headers("authorization", "bearer k-globex"))
            .expect("ok");
        assert_eq!(t.as_str(), "globex");
        let t = a
            .authenticate(&headers("x-api-key", "k-globex"))
            .expect("ok");
        assert_eq!(t.as_str(), "globex");
    }

    #[test]
    fn refuses_missing_wrong_and_malformed() {
        let a = auth();
        assert!(a.authenticate(&HeaderMap::new()).is_err());
        assert!(
            a.authenticate(&headers("authorization", "Bearer nope"))
                .is_err()
        );
        assert!(
            a.authenticate(&headers("authorization", "Basic k-acme"))
                .is_err()
        );
        assert!(a.authenticate(&headers("authorization", "k-acme")).is_err());
        assert!(a.authenticate(&headers("x-api-key", "")).is_err());
    }

    #[test]
    fn without_keys_everything_is_default() {
        let a = Authenticator::new(&[]);
        let t = a.authenticate(&HeaderMap::new()).expect("ok");
        assert_eq!(t.as_str(), "default");
        assert!(!a.enabled());
    }

    #[test]
    fn fingerprint_is_a_digest_prefix_never_the_key() {
        let f = Authenticator::fingerprint(&headers("authorization", "Bearer k-acme"))
            .expect("a key was presented");
        assert_eq!(f.len(), 12);
        assert!(key_digest_hex("k-acme").starts_with(&f));
        assert!(!f.contains("k-acme"));
        assert_eq!(Authenticator::fingerprint(&HeaderMap::new()), None);
    }

    #[test]
    fn digest_hex_matches_config_format() {
        assert_eq!(
            key_digest_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
