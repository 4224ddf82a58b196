use std::sync::Arc;

use http::HeaderName;
use portcullis_identity::TrustedProxies;
use tower_layer::Layer;

use super::{Mode, OnMalformed, Xfcc, canonical};
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
}

impl ForwardingProxy {
    /// `proxies` writing `format` in the format's
    /// [default header](CertFormat::default_header).
    pub fn new(proxies: TrustedProxies, format: CertFormat) -> Self {
        ForwardingProxy {
            proxies,
            format,
            header: None,
        }
    }

    /// The header they write instead of the format's default.
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = Some(header);
        self
    }

    pub(crate) fn header_name(&self) -> HeaderName {
        self.header
            .clone()
            .unwrap_or_else(|| HeaderName::from_static(self.format.default_header()))
    }
}

/// Reads forwarded client certificates from trusted proxies and removes
/// them from everyone else. See the [module docs](crate::layer).
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
}

impl XfccLayer {
    /// Trusts `proxies` to send Envoy's `x-forwarded-client-cert`. With
    /// [`TrustedProxies::none()`] every such header is removed and nothing is
    /// trusted.
    pub fn new(proxies: TrustedProxies) -> Self {
        XfccLayer {
            upstreams: vec![ForwardingProxy::new(proxies, CertFormat::Envoy)],
            mode: Mode::default(),
            on_malformed: OnMalformed::default(),
            element_from_last: 0,
            limits: ParseLimits::default(),
            also_strip: Vec::new(),
            by: None,
            set_cert: false,
        }
    }

    /// The format the proxies of [`new`](Self::new) write, in its default
    /// header unless [`header`](Self::header) names another.
    #[must_use]
    pub fn format(mut self, format: CertFormat) -> Self {
        self.upstreams[0].format = format;
        self
    }

    /// The header the proxies of [`new`](Self::new) write.
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.upstreams[0].header = Some(header);
        self
    }

    /// More proxies, with their own format and header. Their headers are
    /// protected from everyone else too.
    #[must_use]
    pub fn also(mut self, upstream: ForwardingProxy) -> Self {
        self.upstreams.push(upstream);
        self
    }

    /// The [`Mode`].
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What to do with a trusted proxy's malformed header.
    #[must_use]
    pub fn on_malformed(mut self, on_malformed: OnMalformed) -> Self {
        self.on_malformed = on_malformed;
        self
    }

    /// Reads the identity from the element `n` places before the last (`0`,
    /// the default, is the last: the one our proxy wrote). For a chain of
    /// trusted proxies that each append, where the client's is further left.
    /// A header with fewer elements yields no identity.
    #[must_use]
    pub fn element_from_last(mut self, n: usize) -> Self {
        self.element_from_last = n;
        self
    }

    /// Bounds on a trusted proxy's Envoy header.
    #[must_use]
    pub fn limits(mut self, limits: ParseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Another header to remove from every request (matched by canonical
    /// name), e.g. one an older proxy tier wrote.
    #[must_use]
    pub fn also_strip(mut self, header: HeaderName) -> Self {
        self.also_strip.push(header);
        self
    }

    /// The `By` value of the element [`Mode::AppendForward`] and
    /// [`Mode::SanitizeSet`] write (this hop's own identity, e.g. its SPIFFE
    /// ID). Without it the element has no `By`.
    #[must_use]
    pub fn by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }

    /// Whether the written element carries `Cert` (URL-encoded PEM) besides
    /// `Hash`, `Subject`, `URI` and `DNS`, so the next hop gets a full
    /// identity. Off by default, as in Envoy: a certificate is a kilobyte
    /// per request.
    #[must_use]
    pub fn set_cert(mut self, set_cert: bool) -> Self {
        self.set_cert = set_cert;
        self
    }
}

/// The layer's configuration, resolved once and shared by every clone.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) protected: Vec<Box<[u8]>>,
    pub(crate) mode: Mode,
    pub(crate) on_malformed: OnMalformed,
    pub(crate) element_from_last: usize,
    pub(crate) limits: ParseLimits,
    pub(crate) by: Option<String>,
    pub(crate) set_cert: bool,
}

#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) proxies: TrustedProxies,
    pub(crate) format: CertFormat,
    pub(crate) header: HeaderName,
}

impl XfccLayer {
    fn resolve(&self) -> Config {
        let upstreams: Vec<Upstream> = self
            .upstreams
            .iter()
            .map(|u| Upstream {
                proxies: u.proxies.clone(),
                format: u.format,
                header: u.header_name(),
            })
            .collect();
        let mut protected: Vec<Box<[u8]>> = Vec::new();
        let names = upstreams
            .iter()
            .flat_map(|u| {
                std::iter::once(u.header.as_str())
                    .chain(u.format.companion_headers().iter().copied())
            })
            .chain(self.also_strip.iter().map(HeaderName::as_str));
        for name in names {
            let name = canonical(name);
            if !protected.contains(&name) {
                protected.push(name);
            }
        }
        Config {
            upstreams,
            protected,
            mode: self.mode,
            on_malformed: self.on_malformed,
            element_from_last: self.element_from_last,
            limits: self.limits,
            by: self.by.clone(),
            set_cert: self.set_cert,
        }
    }
}

impl<S> Layer<S> for XfccLayer {
    type Service = Xfcc<S>;

    fn layer(&self, inner: S) -> Xfcc<S> {
        Xfcc::new(inner, Arc::new(self.resolve()))
    }
}
