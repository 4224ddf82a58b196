//! Principals, resolutions and the resolver trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portcullis_identity::response::ReadyOrLater;
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};

/// A boxed, sendable future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A resolver's answer: at hand now, or on its way.
pub type Resolving<'a> = ReadyOrLater<'a, Result<Resolution, ResolveError>>;

/// Who a request claims to be, as a resolver looks it up: never the
/// bearer token itself, only its digest.
///
/// A certificate's common name, its SPIFFE ID and its fingerprint are
/// principals of different kinds: a certificate whose CN reads
/// `spiffe://example.org/a` never matches the SPIFFE ID
/// `spiffe://example.org/a`, in a store, a tenants file or a control-plane
/// query. Only a URI SAN that is a valid SPIFFE ID makes a `SpiffeId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Principal {
    /// The SHA-256 of the bearer token.
    Bearer(BearerDigest),
    /// A client certificate's SPIFFE ID (its one URI SAN).
    SpiffeId(Arc<str>),
    /// A client certificate's subject common name.
    CommonName(Arc<str>),
    /// A client certificate's SHA-256 fingerprint, 64 lower-case hex digits.
    Fingerprint(Arc<str>),
}

impl Principal {
    /// Whether this principal comes from a client certificate.
    pub fn is_certificate(&self) -> bool {
        !matches!(self, Principal::Bearer(_))
    }

    /// The kind's name: `sha256` (a bearer key's digest), `spiffe_id`, `cn`
    /// or `fingerprint_sha256`: the control-plane query parameter and the
    /// tenants-file field that carry it.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Bearer(_) => "sha256",
            Principal::SpiffeId(_) => "spiffe_id",
            Principal::CommonName(_) => "cn",
            Principal::Fingerprint(_) => "fingerprint_sha256",
        }
    }

    /// A certificate principal as a tenants file or an operator writes it,
    /// without naming its kind: a valid SPIFFE ID (`spiffe://…`) is a
    /// SPIFFE ID, 64 hex digits (or `sha256:` and 64 hex digits) a
    /// fingerprint, anything else a common name. An error for a
    /// `spiffe://` name that is not a valid SPIFFE ID (it would match
    /// nothing) and for an empty name.
    pub fn certificate_from_text(text: &str) -> Result<Self, String> {
        let name = text.trim();
        if name.is_empty() {
            return Err("the principal is empty".to_owned());
        }
        // `get`, not slicing: byte 9 may fall inside a character.
        if name
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("spiffe://"))
        {
            return Self::spiffe_id_from_text(name);
        }
        Ok(Self::fingerprint_from_text(name).unwrap_or_else(|| Principal::CommonName(name.into())))
    }

    /// A SPIFFE ID principal, or why `id` is not a valid SPIFFE ID.
    pub(crate) fn spiffe_id_from_text(id: &str) -> Result<Self, String> {
        portcullis_identity::SpiffeId::parse(id)
            .map(|id| Principal::SpiffeId(id.as_str().into()))
            .map_err(|e| format!("{id:?} is not a valid SPIFFE ID: {e}"))
    }

    /// A fingerprint principal from 64 hex digits, `sha256:` before them
    /// or not, in either case; `None` for anything else.
    pub(crate) fn fingerprint_from_text(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Principal::Fingerprint(hex.to_ascii_lowercase().into()))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Bearer(digest) => write!(f, "bearer sha256:{digest}"),
            Principal::SpiffeId(name) => write!(f, "certificate SPIFFE ID {name:?}"),
            Principal::CommonName(name) => write!(f, "certificate CN {name:?}"),
            Principal::Fingerprint(hex) => write!(f, "certificate sha256:{hex}"),
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
    /// What is known of `principal`: [`ReadyOrLater::ready`] when the
    /// answer is at hand (a local store, a fresh cache entry: the layer then
    /// decides without boxing or polling a future), else
    /// [`ReadyOrLater::later`].
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a>;

    /// A local store's own record of a tenant's status, for the operator's
    /// kill switch: an inactive tenant here blocks it whatever another
    /// resolver says. `None` (the default) when this resolver keeps none.
    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        let _ = tenant_id;
        None
    }

    /// How many principals a cache in front of a remote resolver holds,
    /// for the `portcullis_tenant_cache_entries` gauge; `None` (the
    /// default) when this resolver caches nothing.
    fn cached_entries(&self) -> Option<usize> {
        None
    }
}

impl<R: TenantResolver + ?Sized> TenantResolver for Arc<R> {
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a> {
        (**self).resolve(principal)
    }

    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        (**self).tenant_status(tenant_id)
    }

    fn cached_entries(&self) -> Option<usize> {
        (**self).cached_entries()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Principal;

    #[test]
    fn certificate_principals_by_their_form() {
        let kind = |text: &str| Principal::certificate_from_text(text).map(|p| p.kind());
        assert_eq!(kind("spiffe://example.org/a"), Ok("spiffe_id"));
        assert_eq!(kind(&"AB".repeat(32)), Ok("fingerprint_sha256"));
        assert_eq!(
            kind(&format!("sha256:{}", "ab".repeat(32))),
            Ok("fingerprint_sha256")
        );
        assert_eq!(kind("client.example.com"), Ok("cn"));
        // A multi-byte character across byte 9 is a name, not a panic.
        assert_eq!(kind("spiffe:/é"), Ok("cn"));
        assert_eq!(kind("spiffe:/ééé"), Ok("cn"));
        assert!(kind("spiffe://Example.org/a").is_err());
        assert!(kind("  ").is_err());
    }

    proptest! {
        /// Any text is a principal of one kind or a clear error, never a
        /// panic; a SPIFFE ID is only ever a valid one.
        #[test]
        fn any_text_is_read_without_panicking(text in "\\PC{0,40}") {
            if let Ok(Principal::SpiffeId(id)) = Principal::certificate_from_text(&text) {
                prop_assert!(portcullis_identity::SpiffeId::parse(&id).is_ok());
            }
        }
    }
}
