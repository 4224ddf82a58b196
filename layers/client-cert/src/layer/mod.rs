//! Puts the connection's client-certificate identity on each request.

#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use layer::ClientCertLayer;
use portcullis_identity::response::ResponseBody;
pub use service::ClientCert;

use std::borrow::Cow;
use std::fmt;

use portcullis_identity::response::Rejection;

/// Response future of [`ClientCert`].
pub type ClientCertFuture<F> =
    portcullis_identity::response::ResponseFuture<F, ClientCertRejection>;

use http::StatusCode;

/// Why [`ClientCert`] turned a request away; found in the response's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertRejection {
    kind: ClientCertRejectionKind,
}

/// The kind of a [`ClientCertRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCertRejectionKind {
    /// No client certificate, and one is required: `401`.
    Missing,
    /// The client sent a certificate this crate could not read: `401`.
    Unreadable,
    /// The identity is not allowed: `403`.
    NotAllowed,
}

impl ClientCertRejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            ClientCertRejectionKind::Missing => "certificate_missing",
            ClientCertRejectionKind::Unreadable => "certificate_unreadable",
            ClientCertRejectionKind::NotAllowed => "certificate_not_allowed",
        }
    }
}

impl ClientCertRejection {
    pub(crate) fn new(kind: ClientCertRejectionKind) -> Self {
        ClientCertRejection { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> ClientCertRejectionKind {
        self.kind
    }

    /// The status the response carries.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ClientCertRejectionKind::Missing | ClientCertRejectionKind::Unreadable => {
                StatusCode::UNAUTHORIZED
            }
            ClientCertRejectionKind::NotAllowed => StatusCode::FORBIDDEN,
        }
    }

    /// The response body.
    pub fn body_text(&self) -> &'static str {
        match self.kind {
            ClientCertRejectionKind::Missing => "client certificate required\n",
            ClientCertRejectionKind::Unreadable => "client certificate could not be read\n",
            ClientCertRejectionKind::NotAllowed => "client certificate identity not allowed\n",
        }
    }
}

impl Rejection for ClientCertRejection {
    fn layer(&self) -> &'static str {
        "client_cert"
    }

    fn reason(&self) -> &'static str {
        self.kind().label()
    }

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
