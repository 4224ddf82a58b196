//! Serving HTTP/1.1 and h2 over the [`TlsListener`], with each request
//! carrying its connection's [`TlsConnectInfo`] and [`PeerAddr`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis_identity::{PeerAddr, TlsConnectInfo};
use tower_service::Service;

use crate::TlsListener;

/// Inserts one connection's [`TlsConnectInfo`] (a reference-counted handle,
/// never a deep copy) and [`PeerAddr`] into every request's extensions.
#[derive(Clone)]
pub struct AddTlsConnectInfo<S> {
    inner: S,
    info: TlsConnectInfo,
}

impl<S> AddTlsConnectInfo<S> {
    /// Wraps `inner` for the connection described by `info`.
    pub fn new(inner: S, info: TlsConnectInfo) -> Self {
        AddTlsConnectInfo { inner, info }
    }
}

impl<S: fmt::Debug> fmt::Debug for AddTlsConnectInfo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddTlsConnectInfo")
            .field("inner", &self.inner)
            .field("info", &self.info)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for AddTlsConnectInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        extensions.insert(PeerAddr(self.info.remote_addr()));
        extensions.insert(self.info.clone());
        self.inner.call(req)
    }
}

/// Serves `service` on `listener` with hyper-util's automatic HTTP/1.1 and
/// h2 server until `shutdown` completes, then lets open connections finish.
///
/// `service` is cloned once per connection and wrapped in
/// [`AddTlsConnectInfo`].
pub async fn serve<S, B>(mut listener: TlsListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(AddTlsConnectInfo::new(
            service.clone(),
            stream.info().clone(),
        ));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                #[cfg(feature = "tracing")]
                tracing::debug!(peer = %_peer, %error, "connection ended with an error");
                let _ = error;
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
