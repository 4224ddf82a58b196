//! The tenant a request was resolved to: the extension `TenantLayer`
//! inserts and the rate limiter reads.

use std::fmt;
use std::sync::Arc;

/// A tenant's plan quota: requests per minute, and the burst allowed
/// above the steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Sustained requests per minute.
    pub rate_per_min: u32,
    /// Requests allowed at once before the rate applies (at least 1).
    pub burst: u32,
}

/// Whether a tenant may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// It may.
    Active,
    /// It is known and switched off.
    Inactive,
}

/// The tenant a request was resolved to.
///
/// Set by `TenantLayer` after the caller was authenticated; cloning is two
/// reference-count increments.
///
/// ```
/// use portcullis_identity::{Quota, Tenant, TenantStatus};
///
/// let tenant = Tenant::new("acme", TenantStatus::Active)
///     .with_caller("billing")
///     .with_quota(Quota { rate_per_min: 600, burst: 20 });
/// assert_eq!(tenant.id(), "acme");
/// assert_eq!(tenant.caller(), Some("billing"));
/// assert!(tenant.is_active());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    id: Arc<str>,
    caller: Option<Arc<str>>,
    status: TenantStatus,
    quota: Option<Quota>,
}

impl Tenant {
    /// A tenant with no caller name and no quota of its own.
    pub fn new(id: impl Into<Arc<str>>, status: TenantStatus) -> Self {
        Tenant {
            id: id.into(),
            caller: None,
            status,
            quota: None,
        }
    }

    /// The consumer (caller) name the key or certificate belongs to.
    #[must_use]
    pub fn with_caller(mut self, caller: impl Into<Arc<str>>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// The plan quota.
    #[must_use]
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The tenant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumer (caller) name, if the resolver knows one.
    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// Active or inactive.
    pub fn status(&self) -> TenantStatus {
        self.status
    }

    /// Whether the tenant may call.
    pub fn is_active(&self) -> bool {
        self.status == TenantStatus::Active
    }

    /// The plan quota, if the tenant has one.
    pub fn quota(&self) -> Option<Quota> {
        self.quota
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &&*self.id)
            .field("caller", &self.caller.as_deref())
            .field("status", &self.status)
            .field("quota", &self.quota)
            .finish()
    }
}
