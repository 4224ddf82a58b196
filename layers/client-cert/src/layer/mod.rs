//! Puts the connection's client-certificate identity on each request.
//!
//! [`ClientCertLayer`] reads the [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo)
//! the acceptor attached and inserts its [`ClientIdentity`](portcullis_identity::ClientIdentity)
//! (with `Source::Tls`) into the request extensions. The leaf was parsed
//! once when the connection was set up; here it is a reference-count
//! increment. Without a client certificate the request goes on without an
//! identity, unless [`required`](ClientCertLayer::required) answers `401`.
//! An allow-list answers `403` to identities it does not name.
//!
//! Turned-away requests get a built response with a short text reason and a
//! [`ClientCertRejection`] in its extensions, never an `Err`: the service's
//! error type is the inner service's.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use portcullis_client_cert::ClientCertLayer;
//! use portcullis_identity::{ClientIdentity, TlsConnectInfo};
//! use rustls_pki_types::CertificateDer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let leaf = portcullis_test_support::pki().client_spiffe().der().to_vec();
//! let mut service = ServiceBuilder::new()
//!     .layer(ClientCertLayer::new().required().allow_spiffe_trust_domains(["example.org"]))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let id = req.extensions().get::<ClientIdentity>().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
//!             id.spiffe_id().unwrap().to_string(),
//!         ))))
//!     }));
//!
//! // What the acceptor attaches to every request of a connection.
//! let info = TlsConnectInfo::builder("192.0.2.1:5000".parse()?, "127.0.0.1:8443".parse()?)
//!     .peer_chain(vec![CertificateDer::from(leaf)])
//!     .build();
//! let mut req = Request::new(());
//! req.extensions_mut().insert(info);
//! let res = service.ready().await?.call(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "spiffe://example.org/ns/prod/sa/api");
//!
//! // No client certificate: 401.
//! let res = service.ready().await?.call(Request::new(())).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use layer::ClientCertLayer;
pub use portcullis_identity::response::ResponseBody;
pub use service::ClientCert;

use std::borrow::Cow;
use std::fmt;

use portcullis_identity::response::Rejection;

/// Response future of [`ClientCert`].
pub type ResponseFuture<F> = portcullis_identity::response::ResponseFuture<F, ClientCertRejection>;

use http::StatusCode;

/// Why [`ClientCert`] turned a request away; found in the response's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertRejection {
    kind: RejectionKind,
}

/// The kind of a [`ClientCertRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No client certificate, and one is required: `401`.
    Missing,
    /// The client sent a certificate this crate could not read: `401`.
    Unreadable,
    /// The identity is not allowed: `403`.
    NotAllowed,
}

impl RejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            RejectionKind::Missing => "certificate_missing",
            RejectionKind::Unreadable => "certificate_unreadable",
            RejectionKind::NotAllowed => "certificate_not_allowed",
        }
    }
}

impl ClientCertRejection {
    pub(crate) fn new(kind: RejectionKind) -> Self {
        ClientCertRejection { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status the response carries.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::Missing | RejectionKind::Unreadable => StatusCode::UNAUTHORIZED,
            RejectionKind::NotAllowed => StatusCode::FORBIDDEN,
        }
    }

    /// The response body.
    pub fn body_text(&self) -> &'static str {
        match self.kind {
            RejectionKind::Missing => "client certificate required\n",
            RejectionKind::Unreadable => "client certificate could not be read\n",
            RejectionKind::NotAllowed => "client certificate identity not allowed\n",
        }
    }
}

impl Rejection for ClientCertRejection {
    fn status(&self) -> StatusCode {
        ClientCertRejection::status(self)
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Borrowed(ClientCertRejection::body_text(self))
    }
}

impl fmt::Display for ClientCertRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.body_text().trim_end())
    }
}

impl std::error::Error for ClientCertRejection {}
