//! The `ClientIp` extension and the layer that sets it.

use std::net::IpAddr;

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::{PeerAddr, TrustedProxies};

/// The client's address, resolved through [`TrustedProxies`] by
/// [`ClientIpLayer`]. Never read from a raw `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// Resolves each request's client address and inserts it as [`ClientIp`].
///
/// The TCP peer comes from a [`PeerAddr`] or
/// [`TlsConnectInfo`](crate::TlsConnectInfo) extension; a request with
/// neither gets no `ClientIp` (the extractor then says which layer is
/// missing). Any `ClientIp` the request already carried is replaced.
///
/// # Example
///
/// ```
/// use http::Request;
/// use portcullis_identity::{ClientIp, ClientIpLayer, PeerAddr, TrustedProxies};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = ServiceBuilder::new()
///     .layer(ClientIpLayer::new(TrustedProxies::parse("10.0.0.0/8")?))
///     .service(service_fn(|req: Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(req.extensions().get::<ClientIp>().copied())
///     }));
///
/// let mut req = Request::builder()
///     .header("x-forwarded-for", "203.0.113.9")
///     .body(())?;
/// req.extensions_mut().insert(PeerAddr("10.0.0.2:40000".parse()?));
/// let ip = service.oneshot(req).await?;
/// assert_eq!(ip, Some(ClientIp("203.0.113.9".parse()?)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientIpLayer {
    proxies: TrustedProxies,
}

impl ClientIpLayer {
    /// Resolves client addresses through `proxies`.
    pub fn new(proxies: TrustedProxies) -> Self {
        ClientIpLayer { proxies }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = SetClientIp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetClientIp {
            inner,
            proxies: self.proxies.clone(),
        }
    }
}

/// The service [`ClientIpLayer`] makes. See the layer for an example.
#[derive(Clone, Debug)]
pub struct SetClientIp<S> {
    inner: S,
    proxies: TrustedProxies,
}

impl<S> SetClientIp<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, proxies: TrustedProxies) -> Self {
        SetClientIp { inner, proxies }
    }

    /// A [`ClientIpLayer`] resolving through `proxies`.
    pub fn layer(proxies: TrustedProxies) -> ClientIpLayer {
        ClientIpLayer::new(proxies)
    }

    crate::define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for SetClientIp<S>
where
    S: Service<Request<B>>,
{
    crate::define_pass_through_service!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match PeerAddr::from_extensions(req.extensions()) {
            Some(PeerAddr(peer)) => {
                let ip = self.proxies.client_ip(req.headers(), peer.ip());
                req.extensions_mut().insert(ClientIp(ip));
            }
            None => {
                // A forged or stale value must not survive the missing peer.
                req.extensions_mut().remove::<ClientIp>();
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::TlsConnectInfo;

    async fn seen(extensions: http::Extensions, xff: &str) -> Option<ClientIp> {
        let service = ServiceBuilder::new()
            .layer(ClientIpLayer::new(
                TrustedProxies::parse("10.0.0.0/8").unwrap(),
            ))
            .service(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(req.extensions().get::<ClientIp>().copied())
            }));
        let mut req = Request::builder()
            .header("x-forwarded-for", xff)
            .body(())
            .unwrap();
        *req.extensions_mut() = extensions;
        service.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn reads_the_peer_from_tls_connect_info() {
        let mut extensions = http::Extensions::new();
        let info = TlsConnectInfo::builder(
            "10.0.0.9:1234".parse().unwrap(),
            "127.0.0.1:8443".parse().unwrap(),
        )
        .build();
        extensions.insert(info);
        assert_eq!(
            seen(extensions, "203.0.113.1").await,
            Some(ClientIp("203.0.113.1".parse().unwrap()))
        );
    }

    #[tokio::test]
    async fn an_untrusted_peer_gets_its_own_address() {
        let mut extensions = http::Extensions::new();
        extensions.insert(PeerAddr("198.51.100.3:1".parse().unwrap()));
        assert_eq!(
            seen(extensions, "203.0.113.1").await,
            Some(ClientIp("198.51.100.3".parse().unwrap()))
        );
    }

    #[tokio::test]
    async fn without_a_peer_a_planted_client_ip_is_removed() {
        let mut extensions = http::Extensions::new();
        extensions.insert(ClientIp("6.6.6.6".parse().unwrap()));
        assert_eq!(seen(extensions, "203.0.113.1").await, None);
    }
}
