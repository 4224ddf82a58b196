use std::fmt;
use std::sync::Arc;

use portcullis_identity::ClientIdentity;
use tower_layer::Layer;

use super::ClientCert;

type Predicate = Arc<dyn Fn(&ClientIdentity) -> bool + Send + Sync>;

/// Which identities may pass.
#[derive(Clone, Default)]
pub(crate) enum Allow {
    #[default]
    Any,
    TrustDomains(Arc<[String]>),
    Predicate(Predicate),
}

impl Allow {
    pub(crate) fn allows(&self, identity: &ClientIdentity) -> bool {
        match self {
            Allow::Any => true,
            Allow::TrustDomains(domains) => identity
                .spiffe_id()
                .is_some_and(|id| domains.iter().any(|domain| id.is_member_of(domain))),
            Allow::Predicate(predicate) => predicate(identity),
        }
    }
}

impl fmt::Debug for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Any => f.write_str("Any"),
            Allow::TrustDomains(domains) => f.debug_tuple("TrustDomains").field(domains).finish(),
            Allow::Predicate(_) => f.write_str("Predicate(<fn>)"),
        }
    }
}

/// Inserts the connection's [`ClientIdentity`] into each request. See the
/// [module docs](crate::layer) for an example.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientCertLayer {
    pub(crate) required: bool,
    pub(crate) allow: Allow,
}

impl ClientCertLayer {
    /// Passes every request; those from clients with a certificate carry
    /// its identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `401` to requests without a (readable) client certificate.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Answers `403` to identities whose SPIFFE ID is not in one of these
    /// trust domains, or that have none. Requests without a certificate are
    /// governed by [`required`](Self::required). Replaces any earlier
    /// allow rule.
    pub fn allow_spiffe_trust_domains<I, D>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<String>,
    {
        self.allow = Allow::TrustDomains(domains.into_iter().map(Into::into).collect());
        self
    }

    /// Answers `403` to identities for which `predicate` is false. Requests
    /// without a certificate are governed by [`required`](Self::required).
    /// Replaces any earlier allow rule.
    pub fn allow<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&ClientIdentity) -> bool + Send + Sync + 'static,
    {
        self.allow = Allow::Predicate(Arc::new(predicate));
        self
    }
}

impl<S> Layer<S> for ClientCertLayer {
    type Service = ClientCert<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientCert::new(inner, self.clone())
    }
}
