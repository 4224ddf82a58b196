//! The tenant a request was resolved to: the extension `TenantLayer`
//! inserts and the rate limiter reads.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use http::HeaderValue;

use crate::Quota;

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
/// Set by `TenantLayer` after the caller was authenticated; cloning is one
/// reference-count increment, and the header values stamped from it are
/// built once per tenant record, not per request.
///
/// ```
/// use portcullis_identity::{Quota, Tenant, TenantStatus};
/// # fn main() -> Result<(), portcullis_identity::QuotaError> {
///
/// let tenant = Tenant::new("acme", TenantStatus::Active)
///     .with_caller("billing")
///     .with_quota(Quota::per_minute(600, 20)?);
/// assert_eq!(tenant.id(), "acme");
/// assert_eq!(tenant.caller(), Some("billing"));
/// assert!(tenant.is_active());
/// assert_eq!(tenant.id_header_value().unwrap(), "acme");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tenant(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    id: Box<str>,
    caller: Option<Box<str>>,
    status: TenantStatus,
    quota: Option<Quota>,
    id_value: OnceLock<Option<HeaderValue>>,
    caller_value: OnceLock<Option<HeaderValue>>,
}

impl Tenant {
    /// A tenant with no caller name and no quota of its own.
    pub fn new(id: impl Into<Box<str>>, status: TenantStatus) -> Self {
        Tenant(Arc::new(Inner {
            id: id.into(),
            caller: None,
            status,
            quota: None,
            id_value: OnceLock::new(),
            caller_value: OnceLock::new(),
        }))
    }

    fn edit(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        change(inner);
        inner.id_value = OnceLock::new();
        inner.caller_value = OnceLock::new();
        self
    }

    /// The consumer (caller) name the key or certificate belongs to.
    #[must_use]
    pub fn with_caller(self, caller: impl Into<Box<str>>) -> Self {
        let caller = caller.into();
        self.edit(|inner| inner.caller = Some(caller))
    }

    /// The plan quota.
    #[must_use]
    pub fn with_quota(self, quota: Quota) -> Self {
        self.edit(|inner| inner.quota = Some(quota))
    }

    /// The tenant id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The consumer (caller) name, if the resolver knows one.
    pub fn caller(&self) -> Option<&str> {
        self.0.caller.as_deref()
    }

    /// Active or inactive.
    pub fn status(&self) -> TenantStatus {
        self.0.status
    }

    /// Whether the tenant may call.
    pub fn is_active(&self) -> bool {
        self.0.status == TenantStatus::Active
    }

    /// The plan quota, if the tenant has one.
    pub fn quota(&self) -> Option<Quota> {
        self.0.quota
    }

    /// The id as a header value (built once); `None` when it cannot be one.
    pub fn id_header_value(&self) -> Option<HeaderValue> {
        self.0
            .id_value
            .get_or_init(|| HeaderValue::from_str(&self.0.id).ok())
            .clone()
    }

    /// The caller as a header value (built once); `None` without a caller
    /// or when it cannot be one.
    pub fn caller_header_value(&self) -> Option<HeaderValue> {
        self.0
            .caller_value
            .get_or_init(|| {
                self.0
                    .caller
                    .as_deref()
                    .and_then(|c| HeaderValue::from_str(c).ok())
            })
            .clone()
    }
}

impl PartialEq for Tenant {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        a.id == b.id && a.caller == b.caller && a.status == b.status && a.quota == b.quota
    }
}

impl Eq for Tenant {}

impl Hash for Tenant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.0.id, &self.0.caller, self.0.status, self.0.quota).hash(state);
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id())
            .field("caller", &self.caller())
            .field("status", &self.status())
            .field("quota", &self.quota())
            .finish()
    }
}
