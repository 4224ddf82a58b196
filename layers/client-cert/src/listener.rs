//! A listener that finishes TLS handshakes concurrently.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::{ProxyProtocol, TlsAcceptor, TlsStream};

/// The default for [`TlsListener::with_max_handshakes`].
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// Accepts TCP connections and runs their TLS handshakes in tasks of their
/// own, so a client that connects and stalls never holds up the next one.
/// [`accept`](Self::accept) yields connections whose handshake finished.
///
/// At most [`with_max_handshakes`](Self::with_max_handshakes) connections
/// are in a handshake or waiting to be taken by [`accept`](Self::accept);
/// past that, new connections wait in the kernel's backlog. Each handshake
/// has the acceptor's deadline.
///
/// With the `axum` feature it implements `axum::serve::Listener`; serve the
/// router through [`WithTlsConnectInfo`](crate::WithTlsConnectInfo) so each
/// request carries its connection's [`TlsConnectInfo`](portcullis_identity::TlsConnectInfo).
pub struct TlsListener {
    /// Each finished stream travels with its permit, released when taken.
    ready: mpsc::Receiver<(TlsStream, OwnedSemaphorePermit)>,
    local_addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl TlsListener {
    /// Binds `addr` and starts accepting.
    pub async fn bind(addr: impl ToSocketAddrs, acceptor: TlsAcceptor) -> io::Result<Self> {
        Ok(Self::new(TcpListener::bind(addr).await?, acceptor))
    }

    /// Starts accepting on `tcp` with the default handshake concurrency.
    /// Must be called inside a tokio runtime.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Self::with_max_handshakes(tcp, acceptor, DEFAULT_MAX_HANDSHAKES)
    }

    /// Starts accepting on `tcp`, running at most `max` handshakes at once.
    pub fn with_max_handshakes(tcp: TcpListener, acceptor: TlsAcceptor, max: usize) -> Self {
        Self::start(tcp, acceptor, max, ProxyProtocol::default())
    }

    /// Starts accepting on `tcp`, reading a PROXY protocol header from the
    /// peers `proxy` trusts before each handshake: the client it names is
    /// the connection's [`remote_addr`](portcullis_identity::TlsConnectInfo::remote_addr).
    pub fn with_proxy_protocol(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        proxy: ProxyProtocol,
    ) -> Self {
        Self::start(tcp, acceptor, DEFAULT_MAX_HANDSHAKES, proxy)
    }

    fn start(tcp: TcpListener, acceptor: TlsAcceptor, max: usize, proxy: ProxyProtocol) -> Self {
        let local_addr = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (sender, ready) = mpsc::channel(max.clamp(1, 256));
        let accept_loop = tokio::spawn(accept_loop(
            tcp,
            acceptor,
            Arc::new(proxy),
            sender,
            Arc::new(Semaphore::new(max.max(1))),
        ));
        TlsListener {
            ready,
            local_addr,
            accept_loop,
        }
    }

    /// The next connection whose handshake completed, and its peer.
    /// `None` once the accept loop has stopped.
    pub async fn accept(&mut self) -> Option<(TlsStream, SocketAddr)> {
        let (stream, _permit) = self.ready.recv().await?;
        let peer = stream.info().remote_addr();
        Some((stream, peer))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<ProxyProtocol>,
    ready: mpsc::Sender<(TlsStream, OwnedSemaphorePermit)>,
    handshakes: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (mut stream, _peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                #[cfg(feature = "tracing")]
                tracing::warn!(%error, "accept failed; retrying");
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let (acceptor, proxy) = (acceptor.clone(), proxy.clone());
        let ready = ready.clone();
        tokio::spawn(async move {
            // The PROXY header counts against the handshake's deadline.
            let deadline = acceptor.deadline();
            let proxied = match proxy.read_until(&mut stream, deadline).await {
                Ok(proxied) => proxied,
                Err(error) => {
                    portcullis_identity::observe::handshake_failed("proxy_header");
                    #[cfg(feature = "tracing")]
                    tracing::debug!(peer = %_peer, %error, "connection refused: PROXY protocol");
                    let _ = error;
                    return;
                }
            };
            match acceptor
                .accept_proxied(stream, proxied.client, proxied.proxy, deadline)
                .await
            {
                Ok(tls) => {
                    // The permit goes with the stream and is released when
                    // the consumer takes it: an idle consumer bounds what waits.
                    let _ = ready.send((tls, permit)).await;
                }
                Err(error) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(peer = %_peer, %error, "TLS handshake failed");
                    let _ = error;
                }
            }
        });
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match TlsListener::accept(self).await {
            Some(accepted) => accepted,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
