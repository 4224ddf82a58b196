use std::sync::{Arc, OnceLock};

use http::HeaderName;
use portcullis_identity::{ClientIdentity, ProtectedHeaders, Source, TrustedProxies};
use tower_layer::Layer;

use super::cache::IdentityCache;
use super::{Mode, OnMalformed, Xfcc};
use crate::{CertFormat, ParseLimits};

/// Proxies that forward the client certificate in one header and one
/// format.
///
/// [`XfccLayer::new`] makes the first (Envoy's XFCC in
/// `x-forwarded-client-cert`); [`XfccLayer::also`] adds more, e.g. an nginx
/// tier and an AWS ALB in front of one service. A peer is matched against
/// them in order.
#[derive(Debug, Clone)]
pub struct ForwardingProxy {
    pub(crate) proxies: TrustedProxies,
    pub(crate) format: CertFormat,
    pub(crate) header: Option<HeaderName>,
    pub(crate) identities: ProxyPrincipals,
}

/// The proxies' own certificate principals: when any are given, a peer
/// counts only if its own TLS client certificate (verified by our
/// acceptor) names one. A `spiffe://` entry matches the SPIFFE ID (URI
/// SAN), any other entry the common name: a CN that reads like a SPIFFE ID
/// is still only a CN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProxyPrincipals {
    spiffe_ids: Vec<String>,
    common_names: Vec<String>,
}

impl ProxyPrincipals {
    pub(crate) fn parse<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut principals = ProxyPrincipals::default();
        for name in names {
            let name = name.as_ref().trim();
            if name.is_empty() {
                continue;
            }
            // `get`, not slicing: byte 9 may fall inside a character.
            if name
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case("spiffe://"))
            {
                let id = portcullis_identity::SpiffeId::parse(name)
                    .map_err(|e| format!("{name:?} is not a valid SPIFFE ID: {e}"))?;
                principals.spiffe_ids.push(id.as_str().to_owned());
            } else {
                principals.common_names.push(name.to_owned());
            }
        }
        Ok(principals)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.spiffe_ids.is_empty() && self.common_names.is_empty()
    }

    /// Whether the peer's own verified certificate names one of them.
    pub(crate) fn admit(&self, own: Option<&ClientIdentity>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(own) = own.filter(|id| *id.source() == Source::Tls) else {
            return false;
        };
        own.spiffe_id()
            .is_some_and(|id| self.spiffe_ids.iter().any(|s| s == id.as_str()))
            || own
                .common_name()
                .is_some_and(|cn| self.common_names.iter().any(|c| c == cn))
    }
}

impl ForwardingProxy {
    /// `proxies` writing `format` in the format's
    /// [default header](CertFormat::default_header).
    pub fn new(proxies: TrustedProxies, format: CertFormat) -> Self {
        ForwardingProxy {
            proxies,
            format,
            header: None,
            identities: ProxyPrincipals::default(),
        }
    }

    /// The header they write instead of the format's default.
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = Some(header);
        self
    }

    /// Binds trust to the proxies' own identity as well as their address:
    /// a peer in the CIDRs counts only if it did mTLS with us and its own
    /// certificate names one of `principals` (a `spiffe://` SPIFFE ID, or
    /// a common name). Without this, any host in a broad CIDR can name any
    /// client. An error names a `spiffe://` entry that is not a valid
    /// SPIFFE ID.
    pub fn require_identity<S: AsRef<str>>(
        mut self,
        principals: impl IntoIterator<Item = S>,
    ) -> Result<Self, String> {
        self.identities = ProxyPrincipals::parse(principals)?;
        Ok(self)
    }

    /// The trusted networks.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// The format they write.
    pub fn format(&self) -> CertFormat {
        self.format
    }

    pub(crate) fn header_name(&self) -> HeaderName {
        self.header
            .clone()
            .unwrap_or_else(|| HeaderName::from_static(self.format.default_header()))
    }
}

/// Reads forwarded client certificates from trusted proxies and removes
/// them from everyone else.
///
/// The TCP peer decides trust ([`PeerAddr`](portcullis_identity::PeerAddr),
/// else the [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo) remote
/// address, else, with the `axum` feature, axum's
/// `ConnectInfo<SocketAddr>`). Never "the connection is mTLS", and never a
/// header. With [`TrustedProxies::none()`](portcullis_identity::TrustedProxies::none)
/// nobody is trusted and every forwarded-certificate header is removed.
///
/// For each request:
///
/// 1. A `Connection` header that nominates a protected header is refused
///    (`400`): it asks the hop to drop the header the proxy wrote.
/// 2. Every protected header is removed, whatever its spelling
///    (`X_Forwarded_Client_Cert`, `x.forwarded.client.cert`): names are
///    compared by their lower-case letters and digits alone. The one header
///    a trusted peer is configured to send survives, under its exact name.
/// 3. From a trusted peer, its lines are joined in order and decoded in the
///    declared [`CertFormat`](crate::CertFormat); the identity comes from
///    the last XFCC element (the one our proxy wrote). Malformed → `400`
///    with the reason, or, if configured, the header is dropped and the
///    request goes on without a forwarded identity.
/// 4. The forwarded identity becomes the request's
///    [`ClientIdentity`], with
///    `Source::Forwarded`: handlers read the same extension as behind
///    [`ClientCertLayer`](https://docs.rs/portcullis-client-cert). The
///    trusted proxy's own TLS identity, if it presented one, is not the
///    client's: it moves to [`ProxyIdentity`](crate::ProxyIdentity).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use portcullis_identity::{ClientIdentity, PeerAddr, TrustedProxies};
/// use portcullis_xfcc::XfccLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let proxies = TrustedProxies::new(["10.0.0.0/8".parse()?]);
/// let mut service = ServiceBuilder::new()
///     .layer(XfccLayer::new(proxies))
///     .service(service_fn(|req: Request<()>| async move {
///         let cn = req.extensions().get::<ClientIdentity>().and_then(|id| id.common_name().map(str::to_owned));
///         let forwarded = req.headers().contains_key("x-forwarded-client-cert");
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("{cn:?} {forwarded}")))))
///     }));
///
/// let xfcc = r#"By=spiffe://example.org/gw;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=client.example.com";URI=spiffe://example.org/ns/a"#;
/// let from = |peer: &str| {
///     let mut req = Request::builder().header("x-forwarded-client-cert", xfcc).body(()).unwrap();
///     req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
///     req
/// };
///
/// // Our proxy: the header counts.
/// let res = service.ready().await?.call(from("10.0.0.2:40000")).await?;
/// assert_eq!(res.into_body().collect().await?.to_bytes(), r#"Some("client.example.com") true"#);
///
/// // Anyone else: the header is gone before the handler runs.
/// let res = service.ready().await?.call(from("203.0.113.9:40000")).await?;
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "None false");
/// # Ok(())
/// # }
/// ```
///
/// Defaults: [`Mode::ForwardOnly`], Envoy's format in
/// `x-forwarded-client-cert`, the identity from the last element, malformed
/// headers answered `400`, and [`ParseLimits::default`].
#[derive(Debug, Clone)]
pub struct XfccLayer {
    upstreams: Vec<ForwardingProxy>,
    mode: Mode,
    on_malformed: OnMalformed,
    element_from_last: usize,
    limits: ParseLimits,
    also_strip: Vec<HeaderName>,
    by: Option<String>,
    set_cert: bool,
    cache_capacity: usize,
    /// [`strip_known_cert_headers`](Self::strip_known_cert_headers): worked
    /// out in `resolve`, against the final upstreams.
    strip_known: bool,
    /// Worked out once for every service this layer (or a clone) makes:
    /// `layer` may be called per connection or, by some routers, per
    /// request, and each call must not rebuild the protected-header set
    /// and an empty identity cache. Every builder method starts afresh.
    resolved: Arc<OnceLock<Arc<Config>>>,
}

/// Values longer than this are decoded every time instead of cached,
/// bounding the cache's memory at `capacity × 8 KiB`.
const MAX_CACHED_VALUE_LEN: usize = 8 * 1024;

impl XfccLayer {
    /// Trusts `proxies` to send Envoy's `x-forwarded-client-cert`. With
    /// [`TrustedProxies::none()`] every such header is removed and nothing is
    /// trusted. For another format, header or a proxy identity, build the
    /// [`ForwardingProxy`] and use [`forwarding`](Self::forwarding).
    pub fn new(proxies: TrustedProxies) -> Self {
        Self::forwarding(ForwardingProxy::new(proxies, CertFormat::Envoy))
    }

    /// Trusts `upstream` (its proxies, format, header and identities);
    /// [`also`](Self::also) adds more. In
    /// [`Mode::AppendForward`] and [`Mode::SanitizeSet`] the element for
    /// the next hop is written in this first upstream's header and format.
    ///
    /// ```
    /// use portcullis_identity::TrustedProxies;
    /// use portcullis_xfcc::{CertFormat, ForwardingProxy, XfccLayer};
    ///
    /// // nginx: proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
    /// let nginx = ForwardingProxy::new("10.0.0.0/8".parse()?, CertFormat::Nginx)
    ///     .header(http::HeaderName::from_static("x-client-cert"));
    /// let layer = XfccLayer::forwarding(nginx)
    ///     .also(ForwardingProxy::new("192.168.0.0/16".parse()?, CertFormat::AwsAlb));
    /// assert_eq!(layer.upstreams()[1].format(), CertFormat::AwsAlb);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forwarding(upstream: ForwardingProxy) -> Self {
        XfccLayer {
            upstreams: vec![upstream],
            mode: Mode::default(),
            on_malformed: OnMalformed::default(),
            element_from_last: 0,
            limits: ParseLimits::default(),
            also_strip: Vec::new(),
            by: None,
            set_cert: false,
            cache_capacity: 1024,
            strip_known: false,
            resolved: Arc::default(),
        }
    }

    /// Applies a builder change; the resolved configuration starts afresh.
    fn edit(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self.resolved = Arc::default();
        self
    }

    /// How many decoded header values to keep (default 1024; `0` turns the
    /// cache off). Behind a proxy one connection carries many clients, so
    /// identities are cached by the exact header value instead of per
    /// connection; values over 8 KiB are never kept.
    #[must_use]
    pub fn cache_capacity(self, capacity: usize) -> Self {
        self.edit(|l| l.cache_capacity = capacity)
    }

    /// The upstreams, in the order a peer is matched against them.
    pub fn upstreams(&self) -> &[ForwardingProxy] {
        &self.upstreams
    }

    /// More proxies, with their own format and header. Their headers are
    /// protected from everyone else too.
    #[must_use]
    pub fn also(self, upstream: ForwardingProxy) -> Self {
        self.edit(|l| l.upstreams.push(upstream))
    }

    /// The [`Mode`].
    #[must_use]
    pub fn mode(self, mode: Mode) -> Self {
        self.edit(|l| l.mode = mode)
    }

    /// What to do with a trusted proxy's malformed header.
    #[must_use]
    pub fn on_malformed(self, on_malformed: OnMalformed) -> Self {
        self.edit(|l| l.on_malformed = on_malformed)
    }

    /// Reads the identity from the element `n` places before the last (`0`,
    /// the default, is the last: the one our proxy wrote). For a chain of
    /// trusted proxies that each append, where the client's is further left.
    /// A header with fewer elements yields no identity.
    #[must_use]
    pub fn element_from_last(self, n: usize) -> Self {
        self.edit(|l| l.element_from_last = n)
    }

    /// Bounds on a trusted proxy's Envoy header.
    #[must_use]
    pub fn limits(self, limits: ParseLimits) -> Self {
        self.edit(|l| l.limits = limits)
    }

    /// Another header to remove from every request (matched by canonical
    /// name), e.g. one an older proxy tier wrote.
    #[must_use]
    pub fn also_strip(self, header: HeaderName) -> Self {
        self.edit(|l| l.also_strip.push(header))
    }

    /// Also remove, from every request, the certificate headers of every
    /// other format and of common proxy set-ups ([`KNOWN_CERT_HEADERS`]),
    /// so that an application, or a library it uses, that reads one of them
    /// directly is never handed a client's forgery. The configured
    /// header (and its companions) still pass from trusted proxies.
    #[must_use]
    pub fn strip_known_cert_headers(self) -> Self {
        self.edit(|l| l.strip_known = true)
    }

    /// The `By` value of the element [`Mode::AppendForward`] and
    /// [`Mode::SanitizeSet`] write (this hop's own identity, e.g. its SPIFFE
    /// ID). Without it the element has no `By`.
    #[must_use]
    pub fn by(self, by: impl Into<String>) -> Self {
        self.edit(|l| l.by = Some(by.into()))
    }

    /// The element written for the next hop carries `Cert` (URL-encoded
    /// PEM) besides `Hash`, `Subject`, `URI` and `DNS`, so it gets a full
    /// identity. Off by default, as in Envoy: a certificate is a kilobyte
    /// per request.
    #[must_use]
    pub fn forward_whole_certificate(self) -> Self {
        self.edit(|l| l.set_cert = true)
    }
}

/// The layer's configuration, resolved once and shared by every clone.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) protected: ProtectedHeaders,
    pub(crate) mode: Mode,
    pub(crate) on_malformed: OnMalformed,
    pub(crate) element_from_last: usize,
    pub(crate) limits: ParseLimits,
    pub(crate) by: Option<String>,
    pub(crate) set_cert: bool,
    /// One per upstream: a value means different things in different formats.
    pub(crate) caches: Vec<IdentityCache>,
}

#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) proxies: TrustedProxies,
    pub(crate) format: CertFormat,
    pub(crate) header: HeaderName,
    pub(crate) identities: ProxyPrincipals,
}

/// Client-certificate headers seen in common proxy configurations besides
/// the formats' own ([`CertFormat::default_header`]): nginx, HAProxy,
/// Apache and F5 recipes. Removed from every request by
/// [`XfccLayer::strip_known_cert_headers`], unless one is the configured
/// header.
pub const KNOWN_CERT_HEADERS: &[&str] = &[
    "x-client-cert",
    "x-ssl-client-cert",
    "ssl-client-cert",
    "x-ssl-cert",
    "x-client-certificate",
];

/// The headers proxies set beside a client certificate: the verification
/// result, subject and issuer DNs, CN, fingerprint, serial and validity,
/// under the spellings nginx, HAProxy, Caddy and Apache recipes use
/// (Traefik's info header is its format's companion: it passes only from a
/// proxy configured with that format). Always protected: removed (under
/// every spelling) from every request
/// except one from a trusted proxy, from which they pass as written, under
/// these exact names.
pub const CERT_SIDE_HEADERS: &[&str] = &[
    // nginx ($ssl_client_verify, $ssl_client_s_dn, $ssl_client_fingerprint, ...)
    "x-client-verify",
    "x-client-dn",
    "x-client-s-dn",
    "x-client-i-dn",
    "x-client-fingerprint",
    "x-client-serial",
    "x-client-cert-fingerprint",
    // HAProxy (ssl_c_verify, ssl_c_s_dn, ssl_c_i_dn, ssl_c_sha1, ...)
    "x-ssl",
    "x-ssl-client-verify",
    "x-ssl-client-used",
    "x-ssl-client-dn",
    "x-ssl-client-s-dn",
    "x-ssl-client-i-dn",
    "x-ssl-client-cn",
    "x-ssl-issuer",
    "x-ssl-client-sha1",
    "x-ssl-client-fingerprint",
    "x-ssl-client-serial",
    "x-ssl-client-notbefore",
    "x-ssl-client-notafter",
    // Caddy ({http.request.tls.client.subject}, .issuer, .fingerprint, ...)
    "x-client-subject",
    "x-client-issuer",
    "x-client-cn",
    "x-client-san",
    "x-client-verified",
    "x-tls-client-subject",
    "x-tls-client-fingerprint",
    // Apache mod_ssl variables sent as headers
    "ssl-client-verify",
    "ssl-client-s-dn",
    "ssl-client-i-dn",
    "ssl-client-m-serial",
];

impl XfccLayer {
    fn resolve(&self) -> Config {
        let upstreams: Vec<Upstream> = self
            .upstreams
            .iter()
            .map(|u| Upstream {
                proxies: u.proxies.clone(),
                format: u.format,
                header: u.header_name(),
                identities: u.identities.clone(),
            })
            .collect();
        let configured = |name: &str| {
            upstreams
                .iter()
                .any(|u| u.header == name || u.format.companion_headers().contains(&name))
        };
        let known = CertFormat::ALL
            .iter()
            .flat_map(|format| {
                std::iter::once(format.default_header())
                    .chain(format.companion_headers().iter().copied())
            })
            .chain(KNOWN_CERT_HEADERS.iter().copied())
            .filter(|name| self.strip_known && !configured(name));
        let names = upstreams
            .iter()
            .flat_map(|u| {
                std::iter::once(u.header.as_str())
                    .chain(u.format.companion_headers().iter().copied())
            })
            .chain(self.also_strip.iter().map(HeaderName::as_str))
            .chain(CERT_SIDE_HEADERS.iter().copied())
            .chain(known);
        let protected = ProtectedHeaders::new(names);
        Config {
            upstreams,
            protected,
            mode: self.mode,
            on_malformed: self.on_malformed,
            element_from_last: self.element_from_last,
            limits: self.limits,
            by: self.by.clone(),
            set_cert: self.set_cert,
            caches: self
                .upstreams
                .iter()
                .map(|_| IdentityCache::new(self.cache_capacity, MAX_CACHED_VALUE_LEN))
                .collect(),
        }
    }
}

impl<S> Layer<S> for XfccLayer {
    type Service = Xfcc<S>;

    fn layer(&self, inner: S) -> Xfcc<S> {
        let config = self.resolved.get_or_init(|| Arc::new(self.resolve()));
        Xfcc::new(inner, config.clone())
    }
}
