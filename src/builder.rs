//! [`PortcullisExt`]: one method per layer on tower's `ServiceBuilder`.

use tower::ServiceBuilder;
use tower_layer::Stack;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds the portcullis layers to a [`ServiceBuilder`] by name.
///
/// Layers run in the order they are added; the order that keeps each
/// layer's promises is client certificate → forwarded certificate → tenant
/// → rate limit (see [`PortcullisLayer`](crate::PortcullisLayer)), which
/// [`portcullis`](Self::portcullis) fixes for you.
///
/// ```
/// use std::sync::Arc;
/// use portcullis::PortcullisExt;
/// use portcullis::prelude::*;
/// use portcullis::identity::Quota;
/// use portcullis::rate_limit::{MemoryLimiter, SystemClock, WhenFull};
///
/// let buckets = Arc::new(MemoryLimiter::new(100_000, WhenFull::default(), SystemClock::new()));
/// let service = tower::ServiceBuilder::new()
///     .client_cert(ClientCertLayer::new())
///     .xfcc(XfccLayer::new(TrustedProxies::none()))
///     .tenant(TenantLayer::strip_only())
///     .rate_limit(
///         RateLimitLayer::new(buckets, KeyChain::new([KeySource::CommonName]))
///             .default_quota(Quota::per_minute(600, 20)?),
///     )
///     .service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PortcullisExt<L>: sealed::Sealed + Sized {
    /// [`ClientCertLayer`](crate::client_cert::ClientCertLayer): the
    /// certificate our TLS acceptor verified.
    #[cfg(feature = "client-cert")]
    fn client_cert(
        self,
        layer: crate::client_cert::ClientCertLayer,
    ) -> ServiceBuilder<Stack<crate::client_cert::ClientCertLayer, L>>;

    /// [`XfccLayer`](crate::xfcc::XfccLayer): a certificate a trusted proxy
    /// forwarded.
    #[cfg(feature = "xfcc")]
    fn xfcc(
        self,
        layer: crate::xfcc::XfccLayer,
    ) -> ServiceBuilder<Stack<crate::xfcc::XfccLayer, L>>;

    /// [`TenantLayer`](crate::tenant::TenantLayer): strip, authenticate,
    /// resolve, stamp.
    #[cfg(feature = "tenant")]
    fn tenant(
        self,
        layer: crate::tenant::TenantLayer,
    ) -> ServiceBuilder<Stack<crate::tenant::TenantLayer, L>>;

    /// [`RateLimitLayer`](crate::rate_limit::RateLimitLayer): may they call
    /// again now.
    #[cfg(feature = "rate-limit")]
    fn rate_limit(
        self,
        layer: crate::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<Stack<crate::rate_limit::RateLimitLayer, L>>;

    /// All four in their fixed order, as [`from_env`](crate::from_env)
    /// assembled them.
    #[cfg(all(
        feature = "client-cert",
        feature = "xfcc",
        feature = "tenant",
        feature = "rate-limit"
    ))]
    fn portcullis(
        self,
        layer: crate::PortcullisLayer,
    ) -> ServiceBuilder<Stack<crate::PortcullisLayer, L>>;
}

impl<L> PortcullisExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "client-cert")]
    fn client_cert(
        self,
        layer: crate::client_cert::ClientCertLayer,
    ) -> ServiceBuilder<Stack<crate::client_cert::ClientCertLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "xfcc")]
    fn xfcc(
        self,
        layer: crate::xfcc::XfccLayer,
    ) -> ServiceBuilder<Stack<crate::xfcc::XfccLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "tenant")]
    fn tenant(
        self,
        layer: crate::tenant::TenantLayer,
    ) -> ServiceBuilder<Stack<crate::tenant::TenantLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "rate-limit")]
    fn rate_limit(
        self,
        layer: crate::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<Stack<crate::rate_limit::RateLimitLayer, L>> {
        self.layer(layer)
    }

    #[cfg(all(
        feature = "client-cert",
        feature = "xfcc",
        feature = "tenant",
        feature = "rate-limit"
    ))]
    fn portcullis(
        self,
        layer: crate::PortcullisLayer,
    ) -> ServiceBuilder<Stack<crate::PortcullisLayer, L>> {
        self.layer(layer)
    }
}
