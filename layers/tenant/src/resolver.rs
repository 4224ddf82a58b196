//! Principals, resolutions and the resolver trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portcullis_identity::{BearerDigest, Tenant, TenantStatus};

/// A boxed, sendable future, as [`TenantResolver`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who a request claims to be, as a resolver looks it up: never the
/// bearer token itself, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The SHA-256 of the bearer token.
    Bearer(BearerDigest),
    /// A name from the client certificate (CN, SPIFFE ID or fingerprint, as
    /// [`CertificatePrincipal`](crate::CertificatePrincipal) chooses).
    Certificate(Arc<str>),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Bearer(digest) => write!(f, "bearer sha256:{digest}"),
            Principal::Certificate(name) => write!(f, "certificate {name:?}"),
        }
    }
}

/// What a resolver knows of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The principal belongs to this tenant, which may call.
    Active(Tenant),
    /// The principal belongs to this tenant, which is switched off.
    Inactive(Tenant),
    /// Not known here.
    Unknown,
}

impl Resolution {
    /// `Active` or `Inactive`, by the tenant's status.
    pub fn of(tenant: Tenant) -> Self {
        match tenant.status() {
            TenantStatus::Active => Resolution::Active(tenant),
            TenantStatus::Inactive => Resolution::Inactive(tenant),
        }
    }

    /// The tenant, when known.
    pub fn tenant(&self) -> Option<&Tenant> {
        match self {
            Resolution::Active(t) | Resolution::Inactive(t) => Some(t),
            Resolution::Unknown => None,
        }
    }
}

/// Why a principal could not be resolved at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    reason: String,
    retry_after: Duration,
}

impl ResolveError {
    /// The resolver cannot answer now (e.g. the control plane is
    /// unreachable and no recent answer may stand in); clients may retry
    /// after `retry_after`.
    pub fn unavailable(reason: impl Into<String>, retry_after: Duration) -> Self {
        ResolveError {
            reason: reason.into(),
            retry_after,
        }
    }

    /// When a retry may succeed.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// What went wrong, for logs (never a secret).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ResolveError {}

/// Resolves principals to tenants.
///
/// Implemented by the local stores, the control-plane resolver and
/// [`Chain`](crate::Chain), which combines them. Implement it for any
/// other source of truth.
pub trait TenantResolver: Send + Sync + 'static {
    /// What is known of `principal`.
    fn resolve<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Resolution, ResolveError>>;

    /// The answer, if it is at hand without waiting (a local store, a fresh
    /// cache entry): the layer then resolves without boxing a future.
    /// `None` (the default) sends the request through
    /// [`resolve`](Self::resolve); it must agree with what `resolve`
    /// would answer.
    fn resolve_now(&self, principal: &Principal) -> Option<Result<Resolution, ResolveError>> {
        let _ = principal;
        None
    }

    /// A local store's own record of a tenant's status, for the operator's
    /// kill switch: an inactive tenant here blocks it whatever another
    /// resolver says. `None` (the default) when this resolver keeps none.
    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        let _ = tenant_id;
        None
    }
}

impl<R: TenantResolver + ?Sized> TenantResolver for Arc<R> {
    fn resolve<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        (**self).resolve(principal)
    }

    fn resolve_now(&self, principal: &Principal) -> Option<Result<Resolution, ResolveError>> {
        (**self).resolve_now(principal)
    }

    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        (**self).tenant_status(tenant_id)
    }
}
