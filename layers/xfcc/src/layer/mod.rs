//! [`XfccLayer`]: the forwarded client certificate, honoured only from
//! trusted proxies and removed from everyone else before anything reads it.

mod cache;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub(crate) use layer::ProxyPrincipals;
pub use layer::{CERT_SIDE_HEADERS, ForwardingProxy, KNOWN_CERT_HEADERS, XfccLayer};
use portcullis_identity::response::ResponseBody;
pub use service::Xfcc;

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use portcullis_identity::ClientIdentity;
use portcullis_identity::response::Rejection;

/// Response future of [`Xfcc`].
pub type XfccFuture<F> = portcullis_identity::response::ResponseFuture<F, XfccRejection>;

/// What the layer does with forwarded-certificate headers, after Envoy's
/// `forward_client_cert_details`.
///
/// Whatever the mode, headers from untrusted peers never yield an identity
/// and, except in [`DangerousAlwaysForward`](Mode::DangerousAlwaysForward),
/// never reach the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Remove the headers from every request; trust no one's.
    Sanitize,
    /// Read a trusted proxy's header into the identity and pass it on as
    /// it came; remove everyone else's.
    #[default]
    ForwardOnly,
    /// As `ForwardOnly`, then append an element for the certificate of this
    /// hop's own TLS peer (Envoy format; other formats keep the trusted
    /// proxy's value, or get the peer's certificate when there is none).
    AppendForward,
    /// Remove the headers from every request, then set one for the
    /// certificate of this hop's own TLS peer, if it sent one. No forwarded
    /// identity.
    SanitizeSet,
    /// Pass the configured header through from anyone, untouched, and never
    /// read an identity from it: Envoy's `ALWAYS_FORWARD_ONLY`, for an
    /// application that forwards the header to a service that does its own
    /// checking. Other spellings are still removed.
    DangerousAlwaysForward,
}

impl Mode {
    /// Whether a trusted proxy's header is read into the identity.
    fn reads(self) -> bool {
        matches!(self, Mode::ForwardOnly | Mode::AppendForward)
    }
}

/// What to do when a trusted proxy's header does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnMalformed {
    /// Answer `400` with the reason.
    #[default]
    Reject,
    /// Remove the header and go on without a forwarded identity (a debug
    /// event records why).
    StripAndContinue,
}

/// The TLS identity of a trusted proxy that forwarded a request, moved out
/// of the way of the client's.
///
/// When the proxy connects with its own client certificate,
/// `ClientCertLayer` records that certificate as the request's
/// [`ClientIdentity`]. It names the proxy, not the client, so `XfccLayer`
/// moves it here for every request a trusted proxy forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIdentity(pub ClientIdentity);

/// Why [`Xfcc`] turned a request away (always `400`); found in the
/// response's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfccRejection {
    kind: XfccRejectionKind,
    reason: String,
}

/// The kind of an [`XfccRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XfccRejectionKind {
    /// A trusted proxy's header did not parse or decode.
    Malformed,
    /// A `Connection` header named a protected header.
    ConnectionNominatesProtected,
}

impl XfccRejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            XfccRejectionKind::Malformed => "forwarded_certificate_malformed",
            XfccRejectionKind::ConnectionNominatesProtected => "connection_nominates_protected",
        }
    }
}

impl XfccRejection {
    pub(crate) fn new(kind: XfccRejectionKind, reason: String) -> Self {
        XfccRejection { kind, reason }
    }

    /// What went wrong.
    pub fn kind(&self) -> XfccRejectionKind {
        self.kind
    }

    /// The reason, as the response body says it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Rejection for XfccRejection {
    fn layer(&self) -> &'static str {
        "xfcc"
    }

    fn reason(&self) -> &'static str {
        self.kind().label()
    }

    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Owned(format!("{}\n", self.reason))
    }
}

impl fmt::Display for XfccRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for XfccRejection {}
