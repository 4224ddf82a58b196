//! portcullis: Tower layers that answer, for every request, **who is
//! calling** (a client certificate from our own TLS acceptor or forwarded by
//! a trusted proxy), **for which tenant**, and **may they call again now**.
//!
//! This facade re-exports the layer crates behind features: the shared
//! vocabulary [`identity`] and, with `client-cert` (on by default), the
//! self-terminated mTLS listener and [`ClientCertLayer`](client_cert::ClientCertLayer).
//! With `xfcc` (on by default), [`xfcc`] gives
//! [`XfccLayer`](xfcc::XfccLayer): the client certificate a trusted reverse
//! proxy forwarded (Envoy's XFCC, nginx, HAProxy, Caddy, Traefik, the AWS
//! ALB, RFC 9440), as the same `ClientIdentity`. With `tenant` (on by
//! default), [`tenant`] gives [`TenantLayer`](tenant::TenantLayer): protected
//! headers stripped, keys and certificates resolved to tenants through local
//! stores and a cached control plane, the tenant stamped; and
//! [`InternalGuardLayer`](tenant::InternalGuardLayer) for internal routes.
//! With `rate-limit` (on by default), [`rate_limit`] gives
//! [`RateLimitLayer`](rate_limit::RateLimitLayer): GCRA buckets keyed by
//! certificate, bearer digest, tenant or client IP, with per-tenant quotas.
//!
//! # Example
//!
//! ```
//! use http::HeaderMap;
//! use portcullis::identity::{ClientIdentity, TrustedProxies};
//! # let leaf_der = portcullis_test_support::pki().client_spiffe().der().to_vec();
//!
//! let identity = ClientIdentity::from_der(&leaf_der)?;
//! assert_eq!(identity.spiffe_id().map(|id| id.trust_domain()), Some("example.org"));
//!
//! let proxies = TrustedProxies::parse("10.0.0.0/8")?;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "6.6.6.6, 198.51.100.20".parse()?);
//! // A client's own X-Forwarded-For is ignored...
//! assert_eq!(proxies.client_ip(&headers, "203.0.113.1".parse()?).to_string(), "203.0.113.1");
//! // ...and through our proxy the rightmost untrusted entry wins.
//! assert_eq!(proxies.client_ip(&headers, "10.0.0.2".parse()?).to_string(), "198.51.100.20");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `client-cert` | [`client_cert`]: server TLS from config or env, the concurrent TLS listener, `ClientCertLayer` | Yes |
//! | `xfcc` | [`xfcc`]: `XfccLayer`, Envoy's XFCC grammar (`parse`, `to_header_value`), other proxies' formats | Yes |
//! | `tenant` | [`tenant`]: `TenantLayer`, `MemoryStore`, `FileStore`, `ControlPlaneResolver`, `InternalGuardLayer` | Yes |
//! | `rate-limit` | [`rate_limit`]: `RateLimitLayer`, the GCRA `MemoryLimiter`, key chains | Yes |
//! | `redis` | `rate_limit::RedisLimiter`: limits shared by every instance | No |
//! | `axum` | axum extractors for the identity extensions; `axum::serve` over the TLS listener | No |
//! | `tracing` | a `portcullis` span per request from [`PortcullisLayer`], with what each layer established (see [`identity::observe`]), and events from every layer | No |
//! | `metrics` | counters through the `metrics` facade: strips, rejections by reason, control-plane cache results, reloads, rate-limit decisions ([`identity::observe`]) | No |
//! | `full` | all of the above | No |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use portcullis_identity as identity;

#[cfg(feature = "client-cert")]
#[cfg_attr(docsrs, doc(cfg(feature = "client-cert")))]
pub use portcullis_client_cert as client_cert;

#[cfg(feature = "xfcc")]
#[cfg_attr(docsrs, doc(cfg(feature = "xfcc")))]
pub use portcullis_xfcc as xfcc;

#[cfg(feature = "tenant")]
#[cfg_attr(docsrs, doc(cfg(feature = "tenant")))]
pub use portcullis_tenant as tenant;

#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use portcullis_rate_limit as rate_limit;

/// Gives each item the four layers' features: the whole stack from the
/// environment needs them all.
macro_rules! with_every_layer {
    ($($item:item)*) => {$(
        #[cfg(all(
            feature = "client-cert",
            feature = "xfcc",
            feature = "tenant",
            feature = "rate-limit"
        ))]
        #[cfg_attr(
            docsrs,
            doc(cfg(all(
                feature = "client-cert",
                feature = "xfcc",
                feature = "tenant",
                feature = "rate-limit"
            )))
        )]
        $item
    )*};
}

with_every_layer! {
    mod env;
    #[cfg(feature = "metrics")]
    mod metrics;
    mod stack;
    pub use env::from_env;
    pub use stack::{
        DEFAULT_LISTEN_ADDR, Listening, Portcullis, PortcullisLayer, PortcullisService,
        StartupError,
    };
}

#[cfg(any(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
mod builder;
#[cfg(any(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
pub use builder::PortcullisExt;

/// The names most services need, for a glob import.
pub mod prelude {
    pub use portcullis_identity::env::Env;
    pub use portcullis_identity::response::{ProblemJson, Refusal, RejectionHookLayer};
    pub use portcullis_identity::{
        BearerDigest, ClientIdentity, ClientIp, ClientIpHeader, ClientIpLayer, PeerAddr, Source,
        SpiffeId, TlsConnectInfo, TrustedProxies,
    };

    #[cfg(feature = "client-cert")]
    pub use portcullis_client_cert::{
        ClientAuth, ClientCertLayer, ServerTls, TlsAcceptor, TlsListener,
    };

    #[cfg(feature = "xfcc")]
    pub use portcullis_xfcc::{CertFormat, ForwardingProxy, Mode as XfccMode, XfccLayer};

    pub use portcullis_identity::{Quota, Tenant, TenantStatus};

    #[cfg(feature = "redis")]
    pub use portcullis_rate_limit::RedisLimiter;
    #[cfg(feature = "rate-limit")]
    pub use portcullis_rate_limit::{
        KeyChain, KeySource, OnStoreError, RateLimitDecision, RateLimitEnv, RateLimitLayer,
    };
    #[cfg(feature = "tenant")]
    pub use portcullis_tenant::{
        AuthPolicy, Chain, ControlPlane, ControlPlaneResolver, FileStore, InternalGuardLayer,
        MemoryStore, Principal, TenantLayer,
    };
}

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum", feature = "client-cert"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
