//! What the TLS acceptor learnt about a connection, shared by its requests.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Extensions;
use rustls_pki_types::CertificateDer;

use crate::{CertificateError, ClientIdentity};

/// The TCP peer of a request. Set by the portcullis acceptor; any server can
/// insert it to tell the layers who connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl PeerAddr {
    /// The peer recorded in `extensions`: a [`PeerAddr`], else the remote
    /// address of a [`TlsConnectInfo`], else (feature `axum`) axum's
    /// `ConnectInfo<SocketAddr>`. Every layer reads the peer here, so no
    /// application glue is needed under any of the three servers.
    pub fn from_extensions(extensions: &Extensions) -> Option<PeerAddr> {
        if let Some(peer) = extensions.get::<PeerAddr>() {
            return Some(*peer);
        }
        if let Some(info) = extensions.get::<TlsConnectInfo>() {
            return Some(PeerAddr(info.remote_addr()));
        }
        #[cfg(feature = "axum")]
        if let Some(axum::extract::ConnectInfo(addr)) =
            extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(PeerAddr(*addr));
        }
        None
    }
}

/// The peer that sent a connection's PROXY protocol header: the layer-4
/// load balancer in front, when the connection's [`PeerAddr`] is the client
/// its header named. Set by the portcullis listeners beside [`PeerAddr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyPeer(pub SocketAddr);

/// What a trusted load balancer's PROXY v2 SSL TLVs said of the client's
/// own TLS connection to it: set beside [`ProxyPeer`] when the balancer
/// terminated TLS (HAProxy's `send-proxy-v2-ssl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxiedTls {
    /// The TLS version the client spoke (`TLSv1.3`), when sent.
    pub version: Option<Box<str>>,
    /// Whether the client presented a certificate the balancer verified
    /// (the request's `ClientIdentity` then names its CN).
    pub certificate_verified: bool,
}

/// One TLS connection: addresses, negotiated parameters and the client's
/// certificate chain, with the leaf parsed once into a [`ClientIdentity`].
///
/// Built by the acceptor once per connection; every request on the
/// connection gets a clone, which is a reference-count increment.
///
/// # Example
///
/// ```
/// use portcullis_identity::TlsConnectInfo;
/// use rustls_pki_types::CertificateDer;
/// # let leaf = portcullis_test_support::pki().client().der().to_vec();
///
/// let info = TlsConnectInfo::builder("192.0.2.1:50000".parse()?, "127.0.0.1:8443".parse()?)
///     .server_name("api.example.com")
///     .alpn(b"h2".to_vec())
///     .peer_chain(vec![CertificateDer::from(leaf)])
///     .build();
/// assert_eq!(info.client_identity().and_then(|id| id.common_name()), Some("client.example.com"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConnectInfo(Arc<Inner>);

struct Inner {
    remote_addr: SocketAddr,
    proxied_by: Option<SocketAddr>,
    local_addr: SocketAddr,
    server_name: Option<String>,
    alpn: Option<Vec<u8>>,
    protocol_version: Option<u16>,
    cipher_suite: Option<(u16, &'static str)>,
    peer_chain: Vec<CertificateDer<'static>>,
    client_identity: Result<Option<ClientIdentity>, CertificateError>,
}

impl TlsConnectInfo {
    /// Starts describing a connection between `remote_addr` (the client) and
    /// `local_addr` (our socket).
    pub fn builder(remote_addr: SocketAddr, local_addr: SocketAddr) -> TlsConnectInfoBuilder {
        TlsConnectInfoBuilder {
            inner: Inner {
                remote_addr,
                proxied_by: None,
                local_addr,
                server_name: None,
                alpn: None,
                protocol_version: None,
                cipher_suite: None,
                peer_chain: Vec::new(),
                client_identity: Ok(None),
            },
        }
    }

    /// The client's address: the TCP peer, or the client a trusted load
    /// balancer's PROXY header named.
    pub fn remote_addr(&self) -> SocketAddr {
        self.0.remote_addr
    }

    /// The load balancer that sent the PROXY header, when one did.
    pub fn proxied_by(&self) -> Option<SocketAddr> {
        self.0.proxied_by
    }

    /// Our address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// The SNI host name the client asked for.
    pub fn server_name(&self) -> Option<&str> {
        self.0.server_name.as_deref()
    }

    /// The negotiated ALPN protocol (`b"h2"`, `b"http/1.1"`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.0.alpn.as_deref()
    }

    /// The TLS version's wire code (`0x0303` for TLS 1.2, `0x0304` for 1.3).
    pub fn protocol_version(&self) -> Option<u16> {
        self.0.protocol_version
    }

    /// `"TLSv1.2"` or `"TLSv1.3"`, when the version is one of those.
    pub fn protocol_version_name(&self) -> Option<&'static str> {
        match self.0.protocol_version? {
            0x0303 => Some("TLSv1.2"),
            0x0304 => Some("TLSv1.3"),
            _ => None,
        }
    }

    /// The negotiated cipher suite's IANA code.
    pub fn cipher_suite(&self) -> Option<u16> {
        self.0.cipher_suite.map(|(code, _)| code)
    }

    /// The negotiated cipher suite's name, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub fn cipher_suite_name(&self) -> Option<&'static str> {
        self.0.cipher_suite.map(|(_, name)| name)
    }

    /// The client's certificate chain as presented, leaf first; empty when
    /// it sent none.
    pub fn peer_chain(&self) -> &[CertificateDer<'static>] {
        &self.0.peer_chain
    }

    /// The client's identity, parsed from the leaf when the connection was
    /// set up. `None` without a client certificate or when the leaf could
    /// not be parsed (see [`client_identity_error`](Self::client_identity_error)).
    pub fn client_identity(&self) -> Option<&ClientIdentity> {
        self.0.client_identity.as_ref().ok()?.as_ref()
    }

    /// Why the leaf could not be read, when it could not.
    pub fn client_identity_error(&self) -> Option<&CertificateError> {
        self.0.client_identity.as_ref().err()
    }
}

impl fmt::Debug for TlsConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnectInfo")
            .field("remote_addr", &self.0.remote_addr)
            .field("proxied_by", &self.0.proxied_by)
            .field("local_addr", &self.0.local_addr)
            .field("server_name", &self.0.server_name)
            .field("alpn", &self.0.alpn.as_deref().map(String::from_utf8_lossy))
            .field("protocol_version", &self.protocol_version_name())
            .field("cipher_suite", &self.cipher_suite_name())
            .field("peer_chain_len", &self.0.peer_chain.len())
            .field("client_identity", &self.0.client_identity)
            .finish()
    }
}

/// Builds a [`TlsConnectInfo`]; see [`TlsConnectInfo::builder`].
#[must_use]
pub struct TlsConnectInfoBuilder {
    inner: Inner,
}

impl TlsConnectInfoBuilder {
    /// The load balancer whose PROXY header named the remote address.
    pub fn proxied_by(mut self, proxy: SocketAddr) -> Self {
        self.inner.proxied_by = Some(proxy);
        self
    }

    /// The SNI host name.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.inner.server_name = Some(name.into());
        self
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(mut self, protocol: Vec<u8>) -> Self {
        self.inner.alpn = Some(protocol);
        self
    }

    /// The TLS version's wire code.
    pub fn protocol_version(mut self, code: u16) -> Self {
        self.inner.protocol_version = Some(code);
        self
    }

    /// The cipher suite's IANA code and name.
    pub fn cipher_suite(mut self, code: u16, name: &'static str) -> Self {
        self.inner.cipher_suite = Some((code, name));
        self
    }

    /// The client's certificate chain, leaf first. The leaf is parsed when
    /// the info is built, once for the whole connection.
    pub fn peer_chain(mut self, chain: Vec<CertificateDer<'static>>) -> Self {
        self.inner.peer_chain = chain;
        self
    }

    /// Parses the leaf, if any, and finishes.
    pub fn build(mut self) -> TlsConnectInfo {
        self.inner.client_identity = self
            .inner
            .peer_chain
            .first()
            .map(|leaf| ClientIdentity::from_der(leaf))
            .transpose();
        #[cfg(feature = "tracing")]
        if let Err(error) = &self.inner.client_identity {
            tracing::warn!(peer = %self.inner.remote_addr, %error, "client certificate could not be parsed");
        }
        TlsConnectInfo(Arc::new(self.inner))
    }
}

impl fmt::Debug for TlsConnectInfoBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnectInfoBuilder")
            .field("remote_addr", &self.inner.remote_addr)
            .finish_non_exhaustive()
    }
}
