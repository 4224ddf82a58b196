//! [`TenantLayer`], its builder, and which credentials and certificate
//! names it reads.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::HeaderName;
use portcullis_identity::{ClientIdentity, ProtectedHeaders};
use tower_layer::Layer;

use super::service::ResolveTenant;
use crate::resolver::{Principal, TenantResolver};

/// The header stamped with the tenant id, by default.
pub const DEFAULT_TENANT_HEADER: &str = "x-llm-router-tenant";
/// The header stamped with the caller (consumer) name, by default.
pub const DEFAULT_CALLER_HEADER: &str = "x-llm-router-caller";

/// Which credentials name the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthPolicy {
    /// The bearer key, required even when the client also presented a
    /// certificate (`bearer`, the default).
    #[default]
    Bearer,
    /// The client certificate alone (`cert`).
    Cert,
    /// Both, and they must resolve to the same tenant (`bearer+cert`).
    BearerAndCert,
    /// The bearer key if one was sent, else the certificate
    /// (`bearer-or-cert`).
    BearerOrCert,
}

/// A name that is not an [`AuthPolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAuthPolicy(String);

impl fmt::Display for UnknownAuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an authentication policy; write bearer, cert, bearer+cert or bearer-or-cert",
            self.0
        )
    }
}

impl std::error::Error for UnknownAuthPolicy {}

impl FromStr for AuthPolicy {
    type Err = UnknownAuthPolicy;

    fn from_str(text: &str) -> Result<Self, UnknownAuthPolicy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "bearer" => Ok(AuthPolicy::Bearer),
            "cert" => Ok(AuthPolicy::Cert),
            "bearer+cert" => Ok(AuthPolicy::BearerAndCert),
            "bearer-or-cert" => Ok(AuthPolicy::BearerOrCert),
            _ => Err(UnknownAuthPolicy(text.to_owned())),
        }
    }
}

/// Which name of a client certificate is its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CertificatePrincipal {
    /// The SPIFFE ID when there is one, else the common name (default).
    #[default]
    SpiffeIdOrCommonName,
    /// The subject's common name.
    CommonName,
    /// The SPIFFE ID.
    SpiffeId,
    /// The SHA-256 fingerprint, 64 lower-case hex digits.
    Fingerprint,
}

impl CertificatePrincipal {
    /// The principal of this kind that `identity` names, if any. A SPIFFE
    /// ID comes only from the URI SAN, a common name only from the
    /// subject: each is looked up as its own kind.
    pub(crate) fn of(self, identity: &ClientIdentity) -> Option<Principal> {
        let spiffe = || {
            identity
                .spiffe_id()
                .map(|s| Principal::SpiffeId(Arc::from(s.as_str())))
        };
        let common_name = || {
            identity
                .common_name()
                .map(|cn| Principal::CommonName(Arc::from(cn)))
        };
        match self {
            CertificatePrincipal::SpiffeIdOrCommonName => spiffe().or_else(common_name),
            CertificatePrincipal::CommonName => common_name(),
            CertificatePrincipal::SpiffeId => spiffe(),
            // Only a known SHA-256: a forwarded SHA-1 fingerprint is not one.
            CertificatePrincipal::Fingerprint => {
                identity.known_fingerprint_sha256().map(|digest| {
                    Principal::Fingerprint(portcullis_identity::hex::encode(&digest).into())
                })
            }
        }
    }
}

/// Resolves each request's tenant and stamps it; see the
/// [crate docs](crate).
#[derive(Clone)]
pub struct TenantLayer {
    pub(crate) config: Arc<Config>,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) resolver: Arc<dyn TenantResolver>,
    /// `false`: strip the protected headers and stamp nothing
    /// ([`TenantLayer::strip_only`]).
    pub(crate) resolve: bool,
    pub(crate) policy: AuthPolicy,
    pub(crate) certificate: CertificatePrincipal,
    pub(crate) tenant_header: HeaderName,
    pub(crate) caller_header: HeaderName,
    pub(crate) protected: ProtectedHeaders,
}

impl fmt::Debug for TenantLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantLayer")
            .field("resolve", &self.config.resolve)
            .field("policy", &self.config.policy)
            .field("certificate", &self.config.certificate)
            .field("tenant_header", &self.config.tenant_header)
            .field("caller_header", &self.config.caller_header)
            .field("protected", &self.config.protected)
            .finish_non_exhaustive()
    }
}

impl TenantLayer {
    /// Resolves through `resolver` with [`AuthPolicy::Bearer`], stamping
    /// `x-llm-router-tenant` and `x-llm-router-caller`, and protecting those
    /// and `x-internal-secret`.
    pub fn new(resolver: impl TenantResolver) -> Self {
        let tenant_header = HeaderName::from_static(DEFAULT_TENANT_HEADER);
        let caller_header = HeaderName::from_static(DEFAULT_CALLER_HEADER);
        let protected = ProtectedHeaders::new([
            DEFAULT_TENANT_HEADER,
            DEFAULT_CALLER_HEADER,
            crate::INTERNAL_SECRET_HEADER,
        ]);
        TenantLayer {
            config: Arc::new(Config {
                resolver: Arc::new(resolver),
                resolve: true,
                policy: AuthPolicy::default(),
                certificate: CertificatePrincipal::default(),
                tenant_header,
                caller_header,
                protected,
            }),
        }
    }

    pub(crate) fn edit(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// For services with no tenants configured: the protected headers are
    /// still removed from every request (and a `Connection` header naming
    /// one still refused), so a client can never hand the application a
    /// tenant of its own making; nothing is authenticated or stamped.
    pub fn strip_only() -> Self {
        TenantLayer::new(crate::MemoryStore::new()).edit(|c| c.resolve = false)
    }

    /// Which credentials name the caller.
    #[must_use]
    pub fn policy(self, policy: AuthPolicy) -> Self {
        self.edit(|c| c.policy = policy)
    }

    /// Which certificate name is looked up.
    #[must_use]
    pub fn certificate_principal(self, principal: CertificatePrincipal) -> Self {
        self.edit(|c| c.certificate = principal)
    }

    /// The header stamped with the tenant id (it is protected too).
    #[must_use]
    pub fn tenant_header(self, header: HeaderName) -> Self {
        self.edit(|c| {
            c.protected.add(header.as_str());
            c.tenant_header = header;
        })
    }

    /// The header stamped with the caller name (it is protected too).
    #[must_use]
    pub fn caller_header(self, header: HeaderName) -> Self {
        self.edit(|c| {
            c.protected.add(header.as_str());
            c.caller_header = header;
        })
    }

    /// Another header no client may send (removed under every spelling).
    #[must_use]
    pub fn protect(self, header: &str) -> Self {
        self.edit(|c| c.protected.add(header))
    }

    /// How many principals the resolver's cache holds (a control plane's);
    /// `None` when it caches nothing.
    pub fn cached_entries(&self) -> Option<usize> {
        self.config.resolver.cached_entries()
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = ResolveTenant<S>;

    fn layer(&self, inner: S) -> ResolveTenant<S> {
        ResolveTenant {
            inner,
            config: self.config.clone(),
        }
    }
}
