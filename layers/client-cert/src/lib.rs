//! Self-terminated mTLS for any hyper or axum service: the server's TLS
//! configuration ([`ServerTls`], also from the environment), a listener that
//! runs handshakes concurrently under a deadline ([`TlsListener`]), serving
//! helpers that hand each request its connection's
//! [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo), and
//! [`ClientCertLayer`], which turns that into a
//! [`ClientIdentity`](portcullis_identity::ClientIdentity) extension.
//!
//! # Example
//!
//! The whole server with hyper-util (HTTP/1.1 and h2), no framework:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use portcullis_client_cert::{ClientAuth, ClientCertLayer, ServerTls, TlsAcceptor, TlsListener, serve};
//! use portcullis_identity::ClientIdentity;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = ServerTls::from_files("server.chain.pem", "server.key.pem")?
//!     .with_client_ca_file("clients-ca.pem")?
//!     .with_client_auth(ClientAuth::Required);
//! let listener = TlsListener::bind("127.0.0.1:8443", TlsAcceptor::new(tls.build()?)).await?;
//!
//! let app = ServiceBuilder::new()
//!     .layer(ClientCertLayer::new().required())
//!     .service_fn(|req: Request<hyper::body::Incoming>| async move {
//!         let cn = req.extensions().get::<ClientIdentity>().and_then(|id| id.common_name().map(str::to_owned));
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("hello {cn:?}\n")))))
//!     });
//! // SIGTERM or Ctrl-C: stop accepting, let requests in flight finish.
//! serve(listener, app, portcullis_client_cert::shutdown_signal()).await;
//! # Ok(())
//! # }
//! ```
//!
//! An axum `Router` is served the same way: `serve(listener, router, ..)`.
//! `axum::serve(listener, WithTlsConnectInfo::new(router))` (feature
//! `axum`) works too, but sets no timer, so hyper's header-read timeout is
//! off there and a client sending one header byte at a time holds its
//! connection open indefinitely: prefer [`serve`] (and [`serve_tcp`] for
//! plaintext), whose [`ServeOptions`] bound slow and idle clients.
//!
//! From the environment: [`ServerTls::from_env`] and
//! [`ServeOptions::from_env`] (this crate's variables are all read in its
//! `env.rs`).
//!
//! # Revocation and OCSP
//!
//! CRLs are supported ([`Revocation`] documents the defaults, which follow
//! nginx). OCSP for client certificates is not: neither nginx nor Envoy
//! checks client certificates by OCSP in the handshake path without extra
//! modules, an online check per connection adds a network dependency to
//! every handshake, and the workloads that present client certificates
//! (SPIFFE SVIDs, service meshes) use short-lived certificates whose
//! expiry does the job revocation would. Use CRLs, or short lifetimes.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `axum` | `axum::serve::Listener` for [`TlsListener`] and [`WithTlsConnectInfo`] | No |
//! | `tracing` | handshake failures, rejections, skipped PEM blocks | No |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acceptor;
mod env;
mod error;
mod layer;
mod listener;
mod proxy_protocol;
mod reload;
mod serve;
mod server;

pub use acceptor::{DEFAULT_HANDSHAKE_TIMEOUT, TlsAcceptor, TlsStream};
pub use env::EnvTls;
pub use error::TlsConfigError;
pub use layer::{
    ClientCert, ClientCertFuture, ClientCertLayer, ClientCertRejection, ClientCertRejectionKind,
};
pub use listener::{DEFAULT_MAX_HANDSHAKES, TlsListener};
pub use proxy_protocol::{
    ProxyHeaderError, ProxyProtocol, ProxyProtocolVersions, parse_proxy_header,
};
pub use reload::{ReloadStats, TlsFiles, TlsReloader};
#[cfg(feature = "axum")]
pub use serve::WithTlsConnectInfo;
pub use serve::{
    AddTlsConnectInfo, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, HttpBody, HttpService,
    ServeOptions, serve, serve_tcp, shutdown_signal,
};
pub use server::{CertificateExpiry, ClientAuth, Policy, Revocation, RevocationDepth, ServerTls};

/// The process-default crypto provider when the application installed one,
/// otherwise *ring*: what every rustls config this crate builds uses.
fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()))
}
