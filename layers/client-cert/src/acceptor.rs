//! TLS handshakes with a deadline, yielding streams that carry their
//! [`TlsConnectInfo`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use portcullis_identity::TlsConnectInfo;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The default for [`TlsAcceptor::with_handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs server handshakes under a deadline with a configuration that can be
/// swapped while serving (hot reload): each handshake uses the configuration
/// current when it starts.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<RwLock<Arc<ServerConfig>>>,
    handshake_timeout: Duration,
}

impl TlsAcceptor {
    /// Accepts with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            config: Arc::new(RwLock::new(config)),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Gives up on a client that has not finished its handshake within
    /// `timeout` (default 10 s).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Replaces the configuration for every later handshake; connections
    /// already established keep theirs.
    pub fn set_config(&self, config: Arc<ServerConfig>) {
        // A poisoned lock still holds a whole Arc: keep going with it.
        let mut current = self.config.write().unwrap_or_else(|p| p.into_inner());
        *current = config;
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs the handshake on `tcp`.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let remote_addr = tcp.peer_addr()?;
        self.accept_proxied(tcp, remote_addr, None, self.deadline())
            .await
    }

    /// When a handshake starting now must be done.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.handshake_timeout
    }

    /// Runs the handshake on `tcp`, whose client is `remote_addr` (named by
    /// the PROXY header `proxy` sent, when one did).
    pub(crate) async fn accept_proxied(
        &self,
        tcp: TcpStream,
        remote_addr: std::net::SocketAddr,
        proxy: Option<std::net::SocketAddr>,
        deadline: tokio::time::Instant,
    ) -> io::Result<TlsStream> {
        let local_addr = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                portcullis_identity::observe::handshake_failed(failure_reason(&error));
                return Err(error);
            }
            Err(_) => {
                portcullis_identity::observe::handshake_failed("timeout");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
        };
        // Nagle off only now: during the handshake it coalesces the
        // records of a flight; for HTTP it would add delayed-ACK stalls.
        let _ = stream.get_ref().0.set_nodelay(true);
        let info = connect_info(&stream, remote_addr, proxy, local_addr);
        Ok(TlsStream {
            inner: stream,
            info,
        })
    }
}

/// The metrics label for a failed handshake (see
/// [`observe::handshake_failed`](portcullis_identity::observe::handshake_failed)).
fn failure_reason(error: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return "closed";
    };
    match tls {
        Error::NoCertificatesPresented => "no_certificate",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_issuer",
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "expired",
        Error::InvalidCertificate(CertificateError::Revoked) => "revoked",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::AlertReceived(_) => "alert_received",
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => "incompatible",
        _ => "protocol",
    }
}

fn connect_info(
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
    remote_addr: SocketAddr,
    proxy: Option<SocketAddr>,
    local_addr: SocketAddr,
) -> TlsConnectInfo {
    let (_, conn) = stream.get_ref();
    let mut info = TlsConnectInfo::builder(remote_addr, local_addr);
    if let Some(proxy) = proxy {
        info = info.proxied_by(proxy);
    }
    if let Some(name) = conn.server_name() {
        info = info.server_name(name);
    }
    if let Some(alpn) = conn.alpn_protocol() {
        info = info.alpn(alpn.to_vec());
    }
    if let Some(version) = conn.protocol_version() {
        info = info.protocol_version(u16::from(version));
    }
    if let Some(suite) = conn.negotiated_cipher_suite() {
        let suite = suite.suite();
        info = info.cipher_suite(u16::from(suite), suite.as_str().unwrap_or("unknown"));
    }
    if let Some(chain) = conn.peer_certificates() {
        // Parsed into a ClientIdentity here, once for the connection.
        info = info.peer_chain(chain.to_vec());
    }
    info.build()
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// A server TLS stream and what its handshake established.
pub struct TlsStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

impl TlsStream {
    /// The connection's addresses, TLS parameters and client identity.
    pub fn info(&self) -> &TlsConnectInfo {
        &self.info
    }

    /// The rustls stream underneath.
    pub fn get_ref(&self) -> &tokio_rustls::server::TlsStream<TcpStream> {
        &self.inner
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
