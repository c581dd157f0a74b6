//! Tenant identifiers.

use std::fmt;
use std::sync::Arc;

/// The name of a tenant: 1 to 64 characters of `[A-Za-z0-9_.-]`.
///
/// The character set is deliberately narrow because tenant ids end up in file
/// paths, SQL identifiers and Prometheus label values; nothing in it needs
/// escaping anywhere. Cloning is cheap (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantIdError {
    /// The name is empty.
    #[error("tenant id is empty")]
    Empty,
    /// The name is longer than 64 bytes.
    #[error("tenant id is {0} characters long, the limit is 64")]
    TooLong(usize),
    /// The name holds a character outside `[A-Za-z0-9_.-]`.
    #[error("tenant id {0:?} holds {1:?}: only letters, digits, '_', '.' and '-' are allowed")]
    BadChar(String, char),
}

impl TenantId {
    /// The tenant all data goes to when no API keys are configured.
    pub const DEFAULT: &'static str = "default";

    /// Parses and validates a tenant name.
    pub fn new(name: &str) -> Result<Self, TenantIdError> {
        if name.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if name.len() > 64 {
            return Err(TenantIdError::TooLong(name.len()));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(TenantIdError::BadChar(name.to_owned(), c));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The `default` tenant.
    pub fn default_tenant() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }

    /// The tenant name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", &self.0)
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(TenantId::new("acme-prod_1.eu").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(
            TenantId::new(&"a".repeat(65)),
            Err(TenantIdError::TooLong(65))
        );
        assert_eq!(
            TenantId::new("../etc"),
            Err(TenantIdError::BadChar("../etc".into(), '/'))
        );
        assert!(matches!(
            TenantId::new("a b"),
            Err(TenantIdError::BadChar(_, ' '))
        ));
    }
}
