//! Who is calling: the vocabulary every portcullis layer reads and writes.
//!
//! - [`ClientIdentity`]: a client certificate's subject, SANs, SPIFFE ID and
//!   fingerprint, parsed once, and how it was learnt ([`Source`]).
//! - [`SpiffeId`]: a strictly validated SPIFFE ID.
//! - [`TrustedProxies`]: which peers are reverse proxies, and the client
//!   address behind them ([`ClientIpLayer`] stores it as [`ClientIp`]).
//! - [`BearerDigest`]: a bearer token as its SHA-256 digest, compared in
//!   constant time.
//! - [`TlsConnectInfo`] and [`PeerAddr`]: what the acceptor learnt about a
//!   connection.
//! - [`env`](mod@env): settings from the environment, one lookup type and one typed
//!   problem for every crate.
//! - [`observe`]: the request span's fields and the counters every layer
//!   reports.
//! - [`pem`]: a PEM/DER bundle reader that sees every block, shared by the
//!   TLS and forwarded-certificate layers.
//!
//! Every type is a cheap clone and lives in `http::Extensions` by value, so
//! a handler reads `req.extensions().get::<ClientIdentity>()` whichever
//! topology (own TLS or a trusted proxy) delivered the request.
//!
//! # Example
//!
//! ```
//! use http::HeaderMap;
//! use portcullis_identity::{ClientIdentity, TrustedProxies};
//! # let leaf_der = portcullis_test_support::pki().client().der().to_vec();
//!
//! // A leaf certificate, as the TLS acceptor hands it over.
//! let identity = ClientIdentity::from_der(&leaf_der)?;
//! assert_eq!(identity.common_name(), Some("client.example.com"));
//! assert_eq!(identity.subject(), "CN=client.example.com,O=Portcullis Test Clients");
//!
//! // The client behind a trusted proxy at 10.0.0.2.
//! let proxies = TrustedProxies::parse("10.0.0.0/8")?;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.5".parse()?);
//! assert_eq!(proxies.client_ip(&headers, "10.0.0.2".parse()?).to_string(), "203.0.113.5");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `axum` | `FromRequestParts` / `OptionalFromRequestParts` for [`ClientIdentity`] and [`ClientIp`] (axum-core only) | No |
//! | `tracing` | debug events when a client-IP walk stops early, a warning when a leaf cannot be parsed; [`observe::record`] into the request span | No |
//! | `outbound-tls` | [`OutboundTrust`]: the roots for the service's own outbound TLS (rustls, rustls-native-certs) | No |
//! | `watch` | [`watch::FileWatcher`]: the one file watcher every reload uses (notify) | No |
//! | `metrics` | the counters of [`observe`], through the `metrics` facade | No |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;
mod bearer;
mod certificate;
mod client_ip;
mod connection;
mod dn;
pub mod env;
mod forwarded;
#[doc(hidden)]
pub mod hex;
pub mod observe;
#[cfg(feature = "outbound-tls")]
mod outbound;
pub mod pem;
#[doc(hidden)]
pub mod percent;
mod protected;
mod proxies;
mod quota;
pub mod response;
mod spiffe;
mod tenant;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub mod watch;
mod x509;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;

pub use bearer::{BearerDigest, BearerError, BearerErrorKind};
/// The pseudo header name a [`ClientIdentity`] learnt from a PROXY v2
/// header's SSL TLVs records in [`Source::Forwarded`]: no HTTP header
/// carried it.
pub const PROXY_PROTOCOL_SSL: &str = "proxy-protocol-ssl";

pub use certificate::{
    CertificateError, CertificateErrorKind, ClientIdentity, Fingerprint, KnownFields, Source,
};
pub use client_ip::{ClientIp, ClientIpLayer, SetClientIp};
pub use connection::{PeerAddr, ProxiedTls, ProxyPeer, TlsConnectInfo, TlsConnectInfoBuilder};
#[cfg(feature = "outbound-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "outbound-tls")))]
pub use outbound::{OutboundTrust, OutboundTrustError, crypto_provider};
pub use protected::ProtectedHeaders;
pub use proxies::{
    ClientIpHeader, ClientIpResolution, DEFAULT_MAX_HOPS, ProxyConfigError, ResolvedBy,
    TrustedProxies,
};
pub use quota::{Quota, QuotaError};
pub use spiffe::{MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeId, SpiffeIdError};
pub use tenant::{Tenant, TenantStatus};
