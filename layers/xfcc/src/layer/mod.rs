//! [`XfccLayer`]: the forwarded client certificate, honoured only from
//! trusted proxies and removed from everyone else before anything reads it.
//!
//! The TCP peer decides trust ([`PeerAddr`](portcullis_identity::PeerAddr),
//! else the [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo) remote
//! address, else, with the `axum` feature, axum's
//! `ConnectInfo<SocketAddr>`). Never "the connection is mTLS", and never a
//! header. With [`TrustedProxies::none()`](portcullis_identity::TrustedProxies::none)
//! nobody is trusted and every forwarded-certificate header is removed.
//!
//! For each request:
//!
//! 1. A `Connection` header that nominates a protected header is refused
//!    (`400`): it asks the hop to drop the header the proxy wrote.
//! 2. Every protected header is removed, whatever its spelling
//!    (`X_Forwarded_Client_Cert`, `x.forwarded.client.cert`): names are
//!    compared by their lower-case letters and digits alone. The one header
//!    a trusted peer is configured to send survives, under its exact name.
//! 3. From a trusted peer, its lines are joined in order and decoded in the
//!    declared [`CertFormat`](crate::CertFormat); the identity comes from
//!    the last XFCC element (the one our proxy wrote). Malformed → `400`
//!    with the reason, or, if configured, the header is dropped and the
//!    request goes on without a forwarded identity.
//! 4. The forwarded identity becomes the request's
//!    [`ClientIdentity`], with
//!    `Source::Forwarded`: handlers read the same extension as behind
//!    [`ClientCertLayer`](https://docs.rs/portcullis-client-cert). The
//!    trusted proxy's own TLS identity, if it presented one, is not the
//!    client's: it moves to [`ProxyIdentity`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use portcullis_identity::{ClientIdentity, PeerAddr, TrustedProxies};
//! use portcullis_xfcc::XfccLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxies = TrustedProxies::new(["10.0.0.0/8".parse()?]);
//! let mut service = ServiceBuilder::new()
//!     .layer(XfccLayer::new(proxies))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let cn = req.extensions().get::<ClientIdentity>().and_then(|id| id.common_name().map(str::to_owned));
//!         let forwarded = req.headers().contains_key("x-forwarded-client-cert");
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("{cn:?} {forwarded}")))))
//!     }));
//!
//! let xfcc = r#"By=spiffe://example.org/gw;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=client.example.com";URI=spiffe://example.org/ns/a"#;
//! let from = |peer: &str| {
//!     let mut req = Request::builder().header("x-forwarded-client-cert", xfcc).body(()).unwrap();
//!     req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
//!     req
//! };
//!
//! // Our proxy: the header counts.
//! let res = service.ready().await?.call(from("10.0.0.2:40000")).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), r#"Some("client.example.com") true"#);
//!
//! // Anyone else: the header is gone before the handler runs.
//! let res = service.ready().await?.call(from("203.0.113.9:40000")).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "None false");
//! # Ok(())
//! # }
//! ```

mod cache;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub(crate) use layer::ProxyPrincipals;
pub use layer::{CERT_SIDE_HEADERS, ForwardingProxy, KNOWN_CERT_HEADERS, XfccLayer};
pub use portcullis_identity::response::ResponseBody;
pub use service::Xfcc;

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use portcullis_identity::ClientIdentity;
use portcullis_identity::response::Rejection;

/// Response future of [`Xfcc`].
pub type ResponseFuture<F> = portcullis_identity::response::ResponseFuture<F, XfccRejection>;

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
    kind: RejectionKind,
    reason: String,
}

/// The kind of an [`XfccRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A trusted proxy's header did not parse or decode.
    Malformed,
    /// A `Connection` header named a protected header.
    ConnectionNominatesProtected,
}

impl RejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            RejectionKind::Malformed => "forwarded_certificate_malformed",
            RejectionKind::ConnectionNominatesProtected => "connection_nominates_protected",
        }
    }
}

impl XfccRejection {
    pub(crate) fn new(kind: RejectionKind, reason: String) -> Self {
        XfccRejection { kind, reason }
    }

    /// What went wrong.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The reason, as the response body says it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Rejection for XfccRejection {
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
