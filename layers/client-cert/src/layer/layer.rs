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

/// Inserts the connection's [`ClientIdentity`] into each request.
///
/// [`ClientCertLayer`] reads the [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo)
/// the acceptor attached and inserts its [`ClientIdentity`](portcullis_identity::ClientIdentity)
/// (with `Source::Tls`) into the request extensions. The leaf was parsed
/// once when the connection was set up; here it is a reference-count
/// increment. Without a client certificate the request goes on without an
/// identity, unless [`required`](ClientCertLayer::required) answers `401`.
/// An allow-list answers `403` to identities it does not name.
///
/// Turned-away requests get a built response with a short text reason and a
/// [`ClientCertRejection`](crate::ClientCertRejection) in its extensions, never an `Err`: the service's
/// error type is the inner service's.
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use bytes::Bytes;
/// use portcullis_client_cert::ClientCertLayer;
/// use portcullis_identity::{ClientIdentity, TlsConnectInfo};
/// use rustls_pki_types::CertificateDer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let leaf = portcullis_test_support::pki().client_spiffe().der().to_vec();
/// let mut service = ServiceBuilder::new()
///     .layer(ClientCertLayer::new().required().allow_spiffe_trust_domains(["example.org"]))
///     .service(service_fn(|req: Request<()>| async move {
///         let id = req.extensions().get::<ClientIdentity>().unwrap();
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
///             id.spiffe_id().unwrap().to_string(),
///         ))))
///     }));
///
/// // What the acceptor attaches to every request of a connection.
/// let info = TlsConnectInfo::builder("192.0.2.1:5000".parse()?, "127.0.0.1:8443".parse()?)
///     .peer_chain(vec![CertificateDer::from(leaf)])
///     .build();
/// let mut req = Request::new(());
/// req.extensions_mut().insert(info);
/// let res = service.ready().await?.call(req).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "spiffe://example.org/ns/prod/sa/api");
///
/// // No client certificate: 401.
/// let res = service.ready().await?.call(Request::new(())).await?;
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// # Ok(())
/// # }
/// ```
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
