//! Serving HTTP/1.1 and h2 over the [`TlsListener`], with each request
//! carrying its connection's [`TlsConnectInfo`] and [`PeerAddr`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
#[cfg(feature = "axum")]
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis_identity::response::ReadyOrLater;
use portcullis_identity::{ClientIdentity, PeerAddr, ProxiedTls, ProxyPeer, TlsConnectInfo};
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::{ProxyProtocol, TlsListener};

/// Inserts one connection's [`PeerAddr`] and, over TLS, its
/// [`TlsConnectInfo`] (a reference-counted handle, never a deep copy) into
/// every request's extensions.
#[derive(Clone, Debug)]
pub struct AddTlsConnectInfo<S> {
    inner: S,
    connection: Connection,
}

/// What is known of one connection.
#[derive(Debug, Clone)]
enum Connection {
    Tls(TlsConnectInfo),
    /// Plaintext ([`serve_tcp`]): the client, and the load balancer whose
    /// PROXY header named it, if one did.
    Tcp {
        peer: std::net::SocketAddr,
        proxy: Option<std::net::SocketAddr>,
        /// The client certificate the load balancer verified, from its
        /// PROXY v2 SSL TLVs.
        identity: Option<ClientIdentity>,
        /// What those TLVs said of the client's TLS.
        tls: Option<ProxiedTls>,
    },
}

impl<S> AddTlsConnectInfo<S> {
    /// Wraps `inner` for the connection described by `info`.
    pub fn new(inner: S, info: TlsConnectInfo) -> Self {
        AddTlsConnectInfo {
            inner,
            connection: Connection::Tls(info),
        }
    }

    portcullis_identity::define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for AddTlsConnectInfo<S>
where
    S: Service<Request<B>>,
{
    portcullis_identity::define_pass_through_service!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        match &self.connection {
            Connection::Tls(info) => {
                extensions.insert(PeerAddr(info.remote_addr()));
                if let Some(proxy) = info.proxied_by() {
                    extensions.insert(ProxyPeer(proxy));
                }
                extensions.insert(info.clone());
            }
            Connection::Tcp {
                peer,
                proxy,
                identity,
                tls,
            } => {
                extensions.insert(PeerAddr(*peer));
                if let Some(proxy) = proxy {
                    extensions.insert(ProxyPeer(*proxy));
                }
                if let Some(identity) = identity {
                    extensions.insert(identity.clone());
                }
                if let Some(tls) = tls {
                    extensions.insert(tls.clone());
                }
            }
        }
        self.inner.call(req)
    }
}

/// What [`serve`] and [`serve_tcp`] serve: a `Clone` service (an axum
/// `Router`, a `tower::ServiceBuilder` stack) answering every request with
/// a response, never an error. Implemented for every such service.
pub trait HttpService<B>:
    Service<Request<Incoming>, Response = Response<B>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The response body an [`HttpService`] answers with. Implemented for
/// every body hyper can send.
pub trait HttpBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> HttpBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// How [`serve`] and [`serve_tcp`] treat connections: the limits that keep
/// slow or idle clients from holding the server.
///
/// hyper's own defaults include a 30 s header-read timeout, but it is
/// silently off unless a timer is set, and `axum::serve` sets none: there,
/// a client that sends one header byte every few seconds holds its
/// connection forever. These options always set the timer.
///
/// ```
/// use std::time::Duration;
/// use portcullis_client_cert::ServeOptions;
///
/// let options = ServeOptions::default()
///     .header_read_timeout(Duration::from_secs(10))
///     .max_connections(2_000);
/// assert_eq!(options.header_read_limit(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    header_read_timeout: Duration,
    h2_keep_alive_interval: Duration,
    h2_keep_alive_timeout: Duration,
    h2_max_concurrent_streams: u32,
    max_connections: usize,
    proxy_protocol: ProxyProtocol,
    shutdown_grace: Duration,
}

/// Completes on SIGTERM (what Kubernetes, systemd and `docker stop` send)
/// or Ctrl-C: the `shutdown` future to give [`serve`], [`serve_tcp`] or
/// `Listening::serve`, which then stop accepting and let requests in
/// flight finish within [`ServeOptions::shutdown_grace`].
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            // No handler could be installed: Ctrl-C alone.
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The default for [`ServeOptions::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The default for [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            h2_keep_alive_interval: Duration::from_secs(20),
            h2_keep_alive_timeout: Duration::from_secs(20),
            h2_max_concurrent_streams: 200,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            proxy_protocol: ProxyProtocol::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl ServeOptions {
    /// How long requests in flight may finish once the shutdown future
    /// completed (default 10 s): the listener stops accepting at once, and
    /// serving returns when the last connection is done or this has passed,
    /// whichever is first.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The PROXY protocol on [`serve_tcp`](Self::serve_tcp)'s plaintext
    /// listener (a [`TlsListener`] reads it before its handshakes: build it
    /// with [`TlsListener::with_proxy_protocol`]). Off by default.
    #[must_use]
    pub fn proxy_protocol(mut self, proxy: ProxyProtocol) -> Self {
        self.proxy_protocol = proxy;
        self
    }

    /// The PROXY protocol settings.
    pub fn proxy_protocol_settings(&self) -> &ProxyProtocol {
        &self.proxy_protocol
    }

    /// How long an HTTP/1.1 client has to send a request's whole head
    /// (default 30 s, as hyper's). The clock starts when the server waits
    /// for a request, so it also closes a keep-alive connection left idle
    /// that long.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The HTTP/1.1 header-read timeout in force.
    pub fn header_read_limit(&self) -> Duration {
        self.header_read_timeout
    }

    /// HTTP/2 keep-alive: a PING after this long without a frame (default
    /// 20 s), and the connection closed when its answer takes longer than
    /// `timeout` (default 20 s).
    #[must_use]
    pub fn h2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.h2_keep_alive_interval = interval;
        self.h2_keep_alive_timeout = timeout;
        self
    }

    /// Most concurrent HTTP/2 streams per connection (default 200).
    #[must_use]
    pub fn h2_max_concurrent_streams(mut self, streams: u32) -> Self {
        self.h2_max_concurrent_streams = streams;
        self
    }

    /// Most connections open at once (default 10,000); past that, new
    /// connections wait in the kernel's backlog until one closes.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.h2_keep_alive_interval)
            .keep_alive_timeout(self.h2_keep_alive_timeout)
            .max_concurrent_streams(self.h2_max_concurrent_streams);
        builder
    }

    /// [`serve`] with these options.
    pub async fn serve<S, B>(
        self,
        listener: TlsListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) where
        S: HttpService<B>,
        B: HttpBody,
    {
        self.serve_connections(listener, service, shutdown).await;
    }

    /// [`serve_tcp`] with these options.
    pub async fn serve_tcp<S, B>(
        self,
        listener: tokio::net::TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) where
        S: HttpService<B>,
        B: HttpBody,
    {
        let proxy = Arc::new(self.proxy_protocol.clone());
        self.serve_connections(TcpAccept { listener, proxy }, service, shutdown)
            .await;
    }

    /// The accept loop both listeners share: a permit per open connection,
    /// hyper-util auto with a timer, graceful shutdown.
    async fn serve_connections<L, S, B>(
        self,
        mut listener: L,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) where
        L: Accept,
        S: HttpService<B>,
        B: HttpBody,
    {
        let graceful = GracefulShutdown::new();
        // Shared by every connection's task: a reference count, not a copy.
        let builder = Arc::new(self.builder());
        let open = Arc::new(Semaphore::new(self.max_connections));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                permit = open.clone().acquire_owned() => match permit {
                    Ok(permit) => tokio::select! {
                        accepted = listener.next() => accepted.map(|io| (io, permit)),
                        () = &mut shutdown => None,
                    },
                    Err(_) => None,
                },
                () = &mut shutdown => None,
            };
            let Some(((io, connection), permit)) = accepted else {
                break;
            };
            let prepared = listener.prepare(io, connection);
            let (service, builder, watcher) =
                (service.clone(), builder.clone(), graceful.watcher());
            tokio::spawn(async move {
                let Some((io, connection)) = prepared.await else {
                    return;
                };
                let per_connection = TowerToHyperService::new(AddTlsConnectInfo {
                    inner: service,
                    connection,
                });
                let serving =
                    builder.serve_connection_with_upgrades(TokioIo::new(io), per_connection);
                if let Err(error) = watcher.watch(serving.into_owned()).await {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(%error, "connection ended with an error");
                    let _ = error;
                }
                drop(permit);
            });
        }
        // Stop accepting now: new clients are refused, not left in the
        // backlog while open requests finish.
        drop(listener);
        if tokio::time::timeout(self.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            #[cfg(feature = "tracing")]
            tracing::warn!(grace = ?self.shutdown_grace, "connections still open after the shutdown grace; closing them");
        }
    }
}

/// A listener the accept loop can take connections from.
trait Accept {
    /// The stream hyper serves.
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection and what its requests carry; `None` once the
    /// listener is done.
    fn next(&mut self) -> impl Future<Output = Option<(Self::Io, Connection)>>;

    /// Work on a connection in its own task before it is served (reading a
    /// PROXY header); `None` closes it. Nothing by default.
    fn prepare(&self, io: Self::Io, connection: Connection) -> Prepare<Self::Io> {
        Prepare::ready(Some((io, connection)))
    }
}

/// A connection being prepared: at hand at once when there is nothing to
/// do (no allocation), or later; `None` closes it.
type Prepare<Io> = ReadyOrLater<'static, Option<(Io, Connection)>>;

impl Accept for TlsListener {
    type Io = crate::TlsStream;
    async fn next(&mut self) -> Option<(crate::TlsStream, Connection)> {
        let (stream, _) = self.accept().await?;
        let info = stream.info().clone();
        Some((stream, Connection::Tls(info)))
    }
}

struct TcpAccept {
    listener: tokio::net::TcpListener,
    proxy: Arc<ProxyProtocol>,
}

impl Accept for TcpAccept {
    type Io = tokio::net::TcpStream;
    async fn next(&mut self) -> Option<(tokio::net::TcpStream, Connection)> {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = Connection::Tcp {
                        peer,
                        proxy: None,
                        identity: None,
                        tls: None,
                    };
                    return Some((stream, connection));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn prepare(&self, mut io: Self::Io, connection: Connection) -> Prepare<Self::Io> {
        if !self.proxy.is_on() {
            return Prepare::ready(Some((io, connection)));
        }
        let proxy = self.proxy.clone();
        Prepare::later(async move {
            match proxy.read(&mut io).await {
                Ok(proxied) => Some((
                    io,
                    Connection::Tcp {
                        peer: proxied.client,
                        proxy: proxied.proxy,
                        identity: proxied.identity,
                        tls: proxied.tls,
                    },
                )),
                Err(error) => {
                    portcullis_identity::observe::handshake_failed("proxy_header");
                    #[cfg(feature = "tracing")]
                    tracing::debug!(%error, "connection refused: PROXY protocol");
                    let _ = error;
                    None
                }
            }
        })
    }
}

/// Serves `service` on `listener` with hyper-util's automatic HTTP/1.1 and
/// h2 server until `shutdown` completes, then lets open connections finish;
/// with the default [`ServeOptions`] (header-read timeout, h2 keep-alive
/// pings, a cap on open connections).
///
/// `service` is cloned once per connection and wrapped in
/// [`AddTlsConnectInfo`]. An axum `Router` is such a service: serve it
/// here rather than through `axum::serve`, which sets no timer and so no
/// header-read timeout.
pub async fn serve<S, B>(listener: TlsListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: HttpService<B>,
    B: HttpBody,
{
    ServeOptions::default()
        .serve(listener, service, shutdown)
        .await;
}

/// [`serve`] for plaintext (behind a proxy that terminates TLS): each
/// request carries its TCP peer as [`PeerAddr`],
/// which the forwarded-certificate layer and `ip` rate-limit keys read.
pub async fn serve_tcp<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: HttpService<B>,
    B: HttpBody,
{
    ServeOptions::default()
        .serve_tcp(listener, service, shutdown)
        .await;
}

/// Makes an axum app (any `Clone` service) serveable by `axum::serve` over a
/// [`TlsListener`], each request carrying its [`TlsConnectInfo`] and
/// [`PeerAddr`].
///
/// ```no_run
/// # async fn run(listener: portcullis_client_cert::TlsListener, app: axum::Router) {
/// use portcullis_client_cert::WithTlsConnectInfo;
/// axum::serve(listener, WithTlsConnectInfo::new(app)).await.unwrap();
/// # }
/// ```
#[cfg(feature = "axum")]
#[derive(Debug, Clone)]
pub struct WithTlsConnectInfo<S> {
    inner: S,
}

#[cfg(feature = "axum")]
impl<S> WithTlsConnectInfo<S> {
    /// Wraps the app.
    pub fn new(inner: S) -> Self {
        WithTlsConnectInfo { inner }
    }

    portcullis_identity::define_inner_service_accessors!();
}

#[cfg(feature = "axum")]
impl<S: Clone> Service<axum::serve::IncomingStream<'_, TlsListener>> for WithTlsConnectInfo<S> {
    type Response = AddTlsConnectInfo<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self::Future {
        std::future::ready(Ok(AddTlsConnectInfo::new(
            self.inner.clone(),
            stream.io().info().clone(),
        )))
    }
}
