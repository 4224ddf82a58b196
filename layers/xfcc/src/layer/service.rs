use portcullis_identity::response::Rejection;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response};
use portcullis_identity::{ClientIdentity, PeerAddr, Source, TlsConnectInfo, observe};
use tower_service::Service;

use super::layer::{CERT_SIDE_HEADERS, Config, Upstream};
use super::{
    Mode, OnMalformed, ProxyIdentity, ResponseBody, XfccFuture, XfccLayer, XfccRejection,
    XfccRejectionKind,
};
use crate::format::{pem, url_encode};
use crate::{CertFormat, ForwardedCert, XfccElement, parse_with_limits, to_header_value};

/// The service [`XfccLayer`] makes. See [`XfccLayer`].
#[derive(Debug, Clone)]
pub struct Xfcc<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Xfcc<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Xfcc { inner, config }
    }

    /// An [`XfccLayer`] trusting `proxies`.
    pub fn layer(proxies: portcullis_identity::TrustedProxies) -> XfccLayer {
        XfccLayer::new(proxies)
    }

    portcullis_identity::define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Xfcc<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = observe::InSpan<XfccFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        observe::in_request_span(req, |req| self.respond(req))
    }
}

impl<S> Xfcc<S> {
    /// The layer's work on `req`, inside the request span.
    fn respond<ReqBody, ResBody>(&mut self, mut req: Request<ReqBody>) -> XfccFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let (parts, body) = {
            let (mut parts, body) = req.into_parts();
            match apply(&self.config, &mut parts) {
                Ok(()) => (parts, body),
                Err(rejection) => {
                    observe::rejected(Rejection::layer(&rejection), Rejection::reason(&rejection));
                    #[cfg(feature = "tracing")]
                    tracing::debug!(reason = %rejection, "forwarded client certificate refused");
                    return XfccFuture::rejected(rejection);
                }
            }
        };
        req = Request::from_parts(parts, body);
        XfccFuture::future(self.inner.call(req))
    }
}

/// The TCP peer, wherever the server recorded it.
fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    PeerAddr::from_extensions(extensions).map(|PeerAddr(addr)| addr.ip())
}

/// Everything the layer does to one request's head.
pub(crate) fn apply(
    config: &Config,
    parts: &mut http::request::Parts,
) -> Result<(), XfccRejection> {
    refuse_connection_nominations(config, &parts.headers)?;

    let peer = peer_ip(&parts.extensions);
    // By address, and by the proxy's own certificate where that is bound.
    let own = parts.extensions.get::<ClientIdentity>();
    let trusted: Option<(usize, IpAddr)> = match (config.mode.reads(), peer) {
        (true, Some(peer)) => config
            .upstreams
            .iter()
            .position(|u| u.proxies.contains(peer) && u.identities.admit(own))
            .map(|i| (i, peer)),
        _ => None,
    };
    let keep: Option<&Upstream> = match config.mode {
        Mode::DangerousAlwaysForward => Some(&config.upstreams[0]),
        _ => trusted.map(|(i, _)| &config.upstreams[i]),
    };
    strip(config, &mut parts.headers, keep, trusted.is_some(), peer);

    if let Some((upstream_index, proxy)) = trusted {
        // The proxy's own certificate names the proxy, not the client.
        if let Some(own) = parts.extensions.remove::<ClientIdentity>() {
            parts.extensions.insert(ProxyIdentity(own));
        }
        match read_identity(config, upstream_index, proxy, &parts.headers) {
            Ok(Some(identity)) => {
                observe::identity(&identity);
                parts.extensions.insert(identity);
            }
            Ok(None) => {}
            Err(reason) => match config.on_malformed {
                OnMalformed::Reject => {
                    return Err(XfccRejection::new(XfccRejectionKind::Malformed, reason));
                }
                OnMalformed::StripAndContinue => {
                    observe::stripped("xfcc", 1);
                    #[cfg(feature = "tracing")]
                    tracing::debug!(%proxy, %reason, "malformed forwarded certificate removed");
                    parts
                        .headers
                        .remove(&config.upstreams[upstream_index].header);
                }
            },
        }
    }

    if matches!(config.mode, Mode::AppendForward | Mode::SanitizeSet) {
        set_own_element(config, parts);
    }
    Ok(())
}

fn refuse_connection_nominations(
    config: &Config,
    headers: &HeaderMap,
) -> Result<(), XfccRejection> {
    match config.protected.nominated_by_connection(headers) {
        None => Ok(()),
        Some(token) => Err(XfccRejection::new(
            XfccRejectionKind::ConnectionNominatesProtected,
            format!("Connection header nominates the protected header {token:?}"),
        )),
    }
}

/// Removes every protected header, by canonical name, except the exact
/// header (and companions, such as RFC 9440's `Client-Cert-Chain`) of the
/// trusted upstream in `keep`, and, from a trusted peer, the side headers
/// (verify status, DNs, fingerprint) under their exact names.
fn strip(
    config: &Config,
    headers: &mut HeaderMap,
    keep: Option<&Upstream>,
    trusted: bool,
    peer: Option<IpAddr>,
) {
    let removed = config.protected.strip(headers, |name| {
        keep.is_some_and(|upstream| {
            *name == upstream.header || upstream.format.companion_headers().contains(&name.as_str())
        }) || (trusted && CERT_SIDE_HEADERS.contains(&name.as_str()))
    });
    observe::stripped("xfcc", removed);
    #[cfg(feature = "tracing")]
    if removed > 0 {
        tracing::debug!(peer = ?peer, removed, "forwarded client certificate headers removed");
    }
    let _ = (removed, peer);
}

/// The identity a trusted proxy's header carries; `Err` is the reason it
/// is malformed.
fn read_identity(
    config: &Config,
    upstream_index: usize,
    proxy: IpAddr,
    headers: &HeaderMap,
) -> Result<Option<ClientIdentity>, String> {
    let upstream = &config.upstreams[upstream_index];
    let header = &upstream.header;
    let all = headers.get_all(header);
    let mut lines = all.iter();
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    let count = 1 + lines.count();
    if count > 1 && !upstream.format.is_list() {
        return Err(format!(
            "{header} arrived {count} times; it carries one certificate"
        ));
    }
    let total: usize = all.iter().map(|v| v.len()).sum::<usize>() + count - 1;
    if total > config.limits.max_len {
        return Err(format!(
            "{header} is {total} bytes, over the limit of {}",
            config.limits.max_len
        ));
    }
    // One line is read in place; several are joined in order, as one list.
    let joined: Vec<u8>;
    let value: &[u8] = if count == 1 {
        first.as_bytes()
    } else {
        joined = all
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b","[..]);
        &joined
    };
    if value.is_empty() {
        // The proxy had no client certificate to forward.
        return Ok(None);
    }
    let identity = config.caches[upstream_index].get_or_decode(value, || {
        // Checked only on a miss: a cached value passed this once.
        let text = std::str::from_utf8(value)
            .ok()
            .filter(|text| {
                text.bytes()
                    .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            })
            .ok_or_else(|| format!("{header} is not visible ASCII"))?;
        decode(config, upstream, proxy, text)
    })?;
    Ok(identity.map(|identity| {
        identity.with_source(Source::Forwarded {
            proxy,
            header: header.clone(),
        })
    }))
}

/// Decodes one (joined) header value in the upstream's format.
fn decode(
    config: &Config,
    upstream: &Upstream,
    proxy: IpAddr,
    value: &str,
) -> Result<Option<ClientIdentity>, String> {
    let header = &upstream.header;
    match upstream.format {
        CertFormat::Envoy => {
            let elements = parse_with_limits(value, &config.limits)
                .map_err(|error| format!("{header}: {error}"))?;
            let Some(element) = elements
                .len()
                .checked_sub(1 + config.element_from_last)
                .map(|i| &elements[i])
            else {
                return Ok(None);
            };
            let fields = ForwardedCert::from_element(element)
                .map_err(|error| format!("{header}: {error}"))?;
            fields
                .identity(proxy, header.clone())
                .map_err(|error| format!("{header}: {error}"))
        }
        format => {
            let chain = format
                .decode(value)
                .map_err(|error| format!("{header}: {error}"))?;
            let leaf = chain
                .first()
                .ok_or_else(|| format!("{header}: no certificate"))?;
            ClientIdentity::from_der(leaf)
                .map(Some)
                .map_err(|error| format!("{header}: certificate: {error}"))
        }
    }
}

/// `AppendForward` and `SanitizeSet`: describe this hop's own TLS peer.
fn set_own_element(config: &Config, parts: &mut http::request::Parts) {
    let Some(info) = parts.extensions.get::<TlsConnectInfo>() else {
        return;
    };
    let Some(peer_identity) = info.client_identity() else {
        return;
    };
    let upstream = &config.upstreams[0];
    let header = &upstream.header;
    let value = match upstream.format {
        CertFormat::Envoy => {
            let mut element = XfccElement::new::<&str, &str>([]);
            if let Some(by) = &config.by {
                element.push("By", by);
            }
            element.push("Hash", &peer_identity.fingerprint_sha256_hex());
            if config.set_cert {
                element.push("Cert", &url_encode(&pem(peer_identity.der())));
            }
            element.push("Subject", peer_identity.subject());
            for uri in peer_identity.uris() {
                element.push("URI", uri);
            }
            for dns in peer_identity.dns_names() {
                element.push("DNS", dns);
            }
            let ours = to_header_value(&[element]);
            let existing: Vec<&str> = match config.mode {
                Mode::AppendForward => parts
                    .headers
                    .get_all(header)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .collect(),
                _ => Vec::new(),
            };
            if existing.is_empty() {
                ours
            } else {
                format!("{},{ours}", existing.join(","))
            }
        }
        format => {
            if config.mode == Mode::AppendForward && parts.headers.contains_key(header) {
                return;
            }
            let chain: Vec<&[u8]> = info.peer_chain().iter().map(|c| c.as_ref()).collect();
            format.encode(&chain)
        }
    };
    match HeaderValue::from_str(&value) {
        Ok(value) => {
            parts.headers.insert(header.clone(), value);
        }
        Err(_) => {
            // Subjects with raw UTF-8 cannot go in a header value as is.
            parts.headers.remove(header);
            #[cfg(feature = "tracing")]
            tracing::debug!(%header, "own forwarded-certificate element is not a valid header value");
        }
    }
}
