//! Parts of causeway that hold a tenant's data outside the stores the API
//! deletes from directly (the notification dead letters, say) register a
//! [`TenantPurge`], so a tenant's deletion reaches every byte.

use crate::TenantId;

/// Something that can delete everything it holds of one tenant.
pub trait TenantPurge: Send + Sync + std::fmt::Debug {
    /// What it holds, for messages (`notification dead letters`).
    fn what(&self) -> &'static str;
    /// Deletes everything of `tenant`; returns how many records went.
    fn purge(&self, tenant: &TenantId) -> Result<u64, String>;
}
