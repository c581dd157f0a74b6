//! Credentials: referenced from the config (an environment variable or a
//! file, never the value inline), redacted in every `Debug`, and sealed at
//! rest with AES-256-GCM under a key that comes from the environment or a
//! key file. Rotation re-seals every stored credential under a new key in
//! one transaction.

use std::path::PathBuf;

use base64::Engine;
use causeway_model::TenantId;
use causeway_store::{SealedRow, SignalStore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// A credential value. Its `Debug` shows nothing of it, and it has no
/// `Display`: the only way out is [`Secret::expose`], at the point of use.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one header or signature that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a credential comes from, as written in the config: a map with
/// exactly one of `env`, `file` or `sealed`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "SecretRefRepr")]
pub enum SecretRef {
    /// An environment variable's name.
    Env(String),
    /// A file whose content (trimmed) is the value.
    File(PathBuf),
    /// A credential sealed in the signal store, by name (OAuth tokens
    /// obtained at runtime, or one stored with `causeway connectors seal`).
    Sealed(String),
}

/// `{ env: VAR }`, `{ file: PATH }` or `{ sealed: NAME }` as YAML and JSON
/// write them (a plain map, not an enum tag).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRefRepr {
    env: Option<String>,
    file: Option<PathBuf>,
    sealed: Option<String>,
}

impl TryFrom<SecretRefRepr> for SecretRef {
    type Error = String;

    fn try_from(r: SecretRefRepr) -> std::result::Result<Self, String> {
        match (r.env, r.file, r.sealed) {
            (Some(v), None, None) => Ok(SecretRef::Env(v)),
            (None, Some(f), None) => Ok(SecretRef::File(f)),
            (None, None, Some(n)) => Ok(SecretRef::Sealed(n)),
            _ => Err(
                "a credential is exactly one of { env: VAR }, { file: PATH }, { sealed: NAME }"
                    .into(),
            ),
        }
    }
}

impl SecretRef {
    /// What the reference names (for errors; never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(v) => format!("env:{v}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
            SecretRef::Sealed(n) => format!("sealed:{n}"),
        }
    }

    /// Reads the value from the environment or a file. Sealed references
    /// need the store and key: [`Vault::open`].
    pub fn resolve(&self) -> Result<Secret> {
        let err = |message: String| Error::Credential {
            name: self.describe(),
            message,
        };
        let value = match self {
            SecretRef::Env(var) => {
                std::env::var(var).map_err(|_| err("the environment variable is not set".into()))?
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read the file: {e}")))?,
            SecretRef::Sealed(_) => {
                return Err(err("a sealed credential needs the vault key".into()));
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(err("empty".into()));
        }
        Ok(Secret::new(value))
    }
}

/// An AES-256-GCM key with an id (the id is stored beside each sealed
/// value, so rotation knows what is under which key).
pub struct SealKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// A key from 32 bytes given as 64 hex digits or standard base64
    /// (what `openssl rand -hex 32` or `-base64 32` prints). Its id is the
    /// start of the SHA-256 of the key, so the same key always has the same id.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|e| Error::Seal(format!("key: {e}")))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| Error::Seal("key: not 64 hex digits or base64".into()))?
        };
        if bytes.len() != 32 {
            return Err(Error::Seal(format!(
                "key: {} bytes, AES-256 needs 32",
                bytes.len()
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let id = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| Error::Seal("key rejected".into()))?,
        );
        Ok(Self { id, key })
    }

    /// The key named by a reference (environment variable or key file).
    pub fn from_ref(r: &SecretRef) -> Result<Self> {
        Self::parse(r.resolve()?.expose())
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plain`, bound to `tenant` and `name` (a sealed value
    /// copied to another tenant's or credential's row does not open).
    pub fn seal(&self, tenant: &TenantId, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Seal("no randomness for a nonce".into()))?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, name)),
                &mut buf,
            )
            .map_err(|_| Error::Seal("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Self::seal`] produced for the same tenant and name.
    pub fn open(&self, tenant: &TenantId, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Error::Seal(format!("{name}: sealed value too short")));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::Seal(format!("{name}: bad nonce")))?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(tenant, name)), &mut buf)
            .map_err(|_| {
                Error::Seal(format!(
                    "{name}: does not open (another key, another tenant, or tampered)"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

fn aad(tenant: &TenantId, name: &str) -> Vec<u8> {
    format!("causeway:{}:{name}", tenant.as_str()).into_bytes()
}

/// Sealed credentials in the signal store under one key.
#[derive(Debug)]
pub struct Vault<'a> {
    store: &'a mut dyn SignalStore,
    key: &'a SealKey,
}

impl<'a> Vault<'a> {
    /// The vault over `store` with `key`.
    pub fn open(store: &'a mut dyn SignalStore, key: &'a SealKey) -> Self {
        Self { store, key }
    }

    /// Seals and stores a credential.
    pub fn put(&mut self, tenant: &TenantId, name: &str, value: &Secret) -> Result<()> {
        let sealed = self.key.seal(tenant, name, value.expose().as_bytes())?;
        self.store.put_sealed(&SealedRow {
            tenant: tenant.clone(),
            name: name.to_owned(),
            key_id: self.key.id().to_owned(),
            sealed,
        })?;
        Ok(())
    }

    /// A stored credential, opened.
    pub fn get(&self, tenant: &TenantId, name: &str) -> Result<Secret> {
        self.find(tenant, name)?.ok_or_else(|| Error::Credential {
            name: format!("sealed:{name}"),
            message: format!("not stored for tenant {tenant}"),
        })
    }

    /// A stored credential, opened, or `None` if there is none.
    pub fn find(&self, tenant: &TenantId, name: &str) -> Result<Option<Secret>> {
        let Some(row) = self.store.sealed(tenant, name)? else {
            return Ok(None);
        };
        if row.key_id != self.key.id() {
            return Err(Error::Seal(format!(
                "{name}: sealed under key {}, the configured key is {} (rotate first)",
                row.key_id,
                self.key.id()
            )));
        }
        let plain = self.key.open(tenant, name, &row.sealed)?;
        String::from_utf8(plain)
            .map(|v| Some(Secret::new(v)))
            .map_err(|_| Error::Seal(format!("{name}: not UTF-8")))
    }

    /// Re-seals every stored credential under `new` (each must open under
    /// this vault's key or under `new` already, for a rotation that was
    /// interrupted). All are replaced in one transaction; returns how many.
    pub fn rotate(self, new: &SealKey) -> Result<usize> {
        let rows = self.store.all_sealed()?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.key_id == new.id() {
                continue;
            }
            if row.key_id != self.key.id() {
                return Err(Error::Seal(format!(
                    "{}/{}: sealed under key {}, neither the old nor the new key",
                    row.tenant, row.name, row.key_id
                )));
            }
            let plain = self.key.open(&row.tenant, &row.name, &row.sealed)?;
            out.push(SealedRow {
                sealed: new.seal(&row.tenant, &row.name, &plain)?,
                key_id: new.id().to_owned(),
                ..row
            });
        }
        self.store.replace_all_sealed(&out)?;
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn k2() -> SealKey {
        // The same kind of key, as base64.
        SealKey::parse("H+mgvG3QBWEStrSkhCA5OnXn/9Hi/P6g5S0ZtIx3EkQ=").expect("key")
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("ghp_supersecret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let err = SecretRef::Env("CAUSEWAY_TEST_UNSET_VAR".into())
            .resolve()
            .expect_err("unset");
        assert_eq!(
            err.to_string(),
            "credential env:CAUSEWAY_TEST_UNSET_VAR: the environment variable is not set"
        );
    }

    #[test]
    fn references_are_maps_with_one_key() {
        let r: SecretRef = serde_json::from_str(r#"{"env": "GITHUB_TOKEN"}"#).expect("env");
        assert_eq!(r, SecretRef::Env("GITHUB_TOKEN".into()));
        let r: SecretRef = serde_json::from_str(r#"{"sealed": "jira"}"#).expect("sealed");
        assert_eq!(r.describe(), "sealed:jira");
        assert!(serde_json::from_str::<SecretRef>(r#"{"env": "A", "file": "/x"}"#).is_err());
        assert!(serde_json::from_str::<SecretRef>(r#"{}"#).is_err());
        assert!(
            serde_json::from_str::<SecretRef>(r#""ghp_inline_token""#).is_err(),
            "no inline values"
        );
    }

    #[test]
    fn file_references_are_trimmed_and_empty_ones_refused() {
        let dir = std::env::temp_dir().join(format!("causeway-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("token");
        std::fs::write(&p, "  tok-123\n").expect("write");
        assert_eq!(
            SecretRef::File(p.clone()).resolve().expect("read").expose(),
            "tok-123"
        );
        std::fs::write(&p, "\n").expect("write");
        assert!(SecretRef::File(p).resolve().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sealing_is_bound_to_key_tenant_and_name() {
        let k1 = SealKey::parse(K1).expect("key");
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        let sealed = k1.seal(&acme, "github.token", b"ghp_x").expect("seal");
        assert!(!sealed.windows(5).any(|w| w == b"ghp_x"), "ciphertext");
        assert_eq!(
            k1.open(&acme, "github.token", &sealed).expect("open"),
            b"ghp_x"
        );
        assert!(k1.open(&globex, "github.token", &sealed).is_err());
        assert!(k1.open(&acme, "jira.token", &sealed).is_err());
        assert!(k2().open(&acme, "github.token", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k1.open(&acme, "github.token", &tampered).is_err());
        assert!(SealKey::parse("abcd").is_err());
        assert_ne!(k1.id(), k2().id());
    }

    #[test]
    fn rotation_reseals_everything_under_the_new_key() {
        let mut store = causeway_store::DuckDbSignals::in_memory().expect("store");
        let (k1, k2) = (SealKey::parse(K1).expect("key"), k2());
        let acme = TenantId::new("acme").expect("tenant");
        {
            let mut v = Vault::open(&mut store, &k1);
            v.put(&acme, "github.token", &Secret::new("ghp_1"))
                .expect("put");
            v.put(&acme, "jira.token", &Secret::new("jira_2"))
                .expect("put");
            assert_eq!(v.get(&acme, "jira.token").expect("get").expose(), "jira_2");
            assert_eq!(v.rotate(&k2).expect("rotate"), 2);
        }
        // The old key no longer opens anything; the new one opens all.
        assert!(
            Vault::open(&mut store, &k1)
                .get(&acme, "github.token")
                .is_err()
        );
        let v = Vault::open(&mut store, &k2);
        assert_eq!(v.get(&acme, "github.token").expect("get").expose(), "ghp_1");
        // Rotating again to the same key is a no-op.
        assert_eq!(v.rotate(&k2).expect("again"), 0);
    }
}
