//! The whole stack: [`PortcullisLayer`] in its fixed order, and [`Portcullis`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::Request;
use tower::Service;

use portcullis_client_cert::{
    ClientCert, ClientCertLayer, EnvTls, HttpBody, HttpService, ServeOptions, TlsAcceptor,
    TlsListener, TlsReloader,
};
use portcullis_identity::TrustedProxies;
use portcullis_identity::env::{EnvError, EnvProblem, EnvWarning, Problems};
use portcullis_rate_limit::{RateLimit, RateLimitLayer};
use portcullis_tenant::{InternalGuardLayer, ResolveTenant, TenantLayer};
use portcullis_xfcc::{Xfcc, XfccLayer};
use tower_layer::Layer;

/// Where the examples listen unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8443";

/// The environment cannot be served: every problem found, each naming its
/// variable, the value and the fix, so one restart fixes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupError {
    problems: Vec<EnvProblem>,
}

impl StartupError {
    pub(crate) fn new(problems: Problems) -> Self {
        match problems.finish(|| ()) {
            Ok(()) => StartupError {
                problems: Vec::new(),
            },
            Err(error) => error.into(),
        }
    }

    /// Each problem.
    pub fn problems(&self) -> &[EnvProblem] {
        &self.problems
    }
}

impl From<EnvError> for StartupError {
    fn from(error: EnvError) -> Self {
        StartupError {
            problems: error.into_iter().collect(),
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "portcullis cannot start: {count} problem{} in the environment",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartupError {}

/// The four layers in their fixed order.
///
/// The order is fixed, because each layer trusts what the one before it
/// established:
///
/// 1. [`ClientCertLayer`]: the certificate our own TLS acceptor verified;
/// 2. [`XfccLayer`]: a certificate forwarded by a trusted proxy, and the
///    removal of forwarded-certificate headers from everyone else, before
///    anything reads them;
/// 3. [`TenantLayer`]: the protected headers removed, the caller
///    authenticated (by bearer digest or by the certificate the first two
///    established), and only then the tenant stamped;
/// 4. [`RateLimitLayer`]: the bucket named by the identity and tenant the
///    others established, and the tenant's plan as the quota.
#[derive(Debug, Clone)]
pub struct PortcullisLayer {
    client_cert: ClientCertLayer,
    xfcc: XfccLayer,
    tenant: TenantLayer,
    rate_limit: RateLimitLayer,
}

impl PortcullisLayer {
    /// The four layers, in the fixed order whatever order they are given.
    pub fn new(
        client_cert: ClientCertLayer,
        xfcc: XfccLayer,
        tenant: TenantLayer,
        rate_limit: RateLimitLayer,
    ) -> Self {
        PortcullisLayer {
            client_cert,
            xfcc,
            tenant,
            rate_limit,
        }
    }
}

/// The four services, outermost first.
type Layered<S> = ClientCert<Xfcc<ResolveTenant<RateLimit<S>>>>;

/// The service [`PortcullisLayer`] makes: the four layers in their order
/// and, with the `tracing` feature, one `portcullis` span per request (at
/// DEBUG, opened by the outermost layer as a child of the current span)
/// that each layer records what it established into: `source`,
/// `principal`, `bearer` (a digest prefix), `tenant`, `key`, `decision` and
/// `reason` (see [`identity::observe`](crate::identity::observe)).
#[derive(Debug, Clone)]
pub struct PortcullisService<S> {
    inner: Layered<S>,
}

impl<S, B> Service<Request<B>> for PortcullisService<S>
where
    Layered<S>: Service<Request<B>>,
{
    type Response = <Layered<S> as Service<Request<B>>>::Response;
    type Error = <Layered<S> as Service<Request<B>>>::Error;
    type Future = <Layered<S> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.inner.call(req)
    }
}

impl<S> Layer<S> for PortcullisLayer {
    type Service = PortcullisService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PortcullisService {
            inner: self.client_cert.layer(
                self.xfcc
                    .layer(self.tenant.layer(self.rate_limit.layer(inner))),
            ),
        }
    }
}

/// Everything the environment describes: the layers, the TLS
/// configuration, the internal-route guard and the listen address.
#[derive(Debug)]
pub struct Portcullis {
    pub(crate) layer: PortcullisLayer,
    pub(crate) tls: Option<EnvTls>,
    pub(crate) guard: InternalGuardLayer,
    pub(crate) listen: SocketAddr,
    pub(crate) proxies: TrustedProxies,
    pub(crate) serve_options: ServeOptions,
    /// `METRICS_ADDR`.
    pub(crate) metrics: Option<SocketAddr>,
    pub(crate) warnings: Vec<EnvWarning>,
}

impl Portcullis {
    /// The four layers, for `.layer(..)`.
    pub fn layer(&self) -> PortcullisLayer {
        self.layer.clone()
    }

    /// The server TLS configuration (`TLS_*`), or `None`: plaintext.
    pub fn tls(&self) -> Option<&EnvTls> {
        self.tls.as_ref()
    }

    /// The guard for `/internal/*` routes (`CONTROL_PLANE_INTERNAL_SECRET`;
    /// unset: the routes answer 404).
    ///
    /// Wrap the internal routes with it *beside* [`layer`](Self::layer),
    /// not inside it: the stack removes `x-internal-secret` from every
    /// request it handles (so the secret never reaches the application),
    /// which means a guard behind the stack would never see it. The
    /// `axum` and `hyper` examples route `/internal/*` to the guard and
    /// everything else to the stack.
    pub fn internal_guard(&self) -> InternalGuardLayer {
        self.guard.clone()
    }

    /// How to serve connections: `HEADER_READ_TIMEOUT_SECS` (default 30;
    /// it also closes an HTTP/1.1 keep-alive connection idle that long) and
    /// `MAX_CONNECTIONS` (default 10,000), with h2 keep-alive pings. Use
    /// its [`serve`](ServeOptions::serve) (TLS) or
    /// [`serve_tcp`](ServeOptions::serve_tcp) (plaintext) for an axum
    /// router too: `axum::serve` sets no timer, so hyper's header-read
    /// timeout is off there.
    pub fn serve_options(&self) -> ServeOptions {
        self.serve_options.clone()
    }

    /// Binds `LISTEN_ADDR`: TLS when `TLS_CERT` and `TLS_KEY` are set,
    /// else plaintext (behind a proxy that terminates TLS). Serve the
    /// application on the result with [`Listening::serve`], under
    /// [`serve_options`](Self::serve_options).
    ///
    /// With TLS, the files are watched (unless `TLS_RELOAD=false`) for as
    /// long as the [`Listening`] lives: a renewed certificate, key, client
    /// CA or CRL (a file replaced, or Kubernetes swapping its `..data`
    /// link) is served from the next handshake on; a file that does not
    /// load changes nothing, and the last good configuration stays (the
    /// failure is logged with `tracing` and counted in
    /// `portcullis_reloads_total{what="tls",result="error"}`).
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
    /// let stack = portcullis::from_env(&portcullis::identity::env::Env::process()).await?;
    /// let listening = stack.bind().await?;
    /// println!("listening on {}", listening.url());
    /// listening.serve(app, portcullis::client_cert::shutdown_signal()).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(&self) -> std::io::Result<Listening> {
        let addr = self.listen;
        let bind_error = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}={addr}: {e}", crate::env::LISTEN_ADDR))
        };
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let mut reloader = None;
        let listener = match &self.tls {
            Some(tls) => {
                let config = tls.tls.build().map_err(std::io::Error::other)?;
                let acceptor = TlsAcceptor::new(config);
                if tls.reload {
                    let watching = TlsReloader::watch(acceptor.clone(), tls.files.clone())
                        .map_err(|e| {
                            std::io::Error::other(format!(
                                "TLS_RELOAD: {e}; set TLS_RELOAD=false to serve these files \
                                 without watching them"
                            ))
                        })?;
                    reloader = Some(watching);
                }
                // The PROXY header comes before the handshake: the TLS
                // listener reads it.
                Listener::Tls(TlsListener::with_proxy_protocol(
                    tcp,
                    acceptor,
                    self.serve_options.proxy_protocol_settings().clone(),
                ))
            }
            None => Listener::Tcp(tcp),
        };
        #[cfg(feature = "metrics")]
        let metrics = match self.metrics {
            Some(addr) => Some((
                crate::metrics::MetricsEndpoint::bind(addr).await?,
                crate::metrics::Levels {
                    tenant: self.layer.tenant.clone(),
                    rate_limit: self.layer.rate_limit.clone(),
                    expiry: self.tls.as_ref().map(|tls| tls.tls.expiry()),
                    reloads: reloader.as_ref().map(TlsReloader::shared_stats),
                },
            )),
            None => None,
        };
        Ok(Listening {
            listener,
            options: self.serve_options.clone(),
            reloader,
            #[cfg(feature = "metrics")]
            metrics,
        })
    }

    /// Settings that work but are probably not what was meant (a client
    /// CA without `TLS_CLIENT_AUTH`, no tenants at all), each naming its
    /// variable: print them at start-up (the examples do). With the
    /// `tracing` feature they are logged too.
    pub fn warnings(&self) -> &[EnvWarning] {
        &self.warnings
    }

    /// `LISTEN_ADDR`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// `METRICS_ADDR`: where [`bind`](Self::bind) serves `GET /metrics`
    /// (feature `metrics`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// `TRUSTED_PROXY_CIDRS` (with `CLIENT_IP_HEADER`), for a handler's own
    /// `ClientIp`.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.proxies
    }
}

/// The stack's listener, from [`Portcullis::bind`].
#[derive(Debug)]
pub struct Listening {
    listener: Listener,
    options: ServeOptions,
    /// Watches the TLS files while serving; dropped with the listener.
    reloader: Option<TlsReloader>,
    /// `METRICS_ADDR`'s endpoint, served beside the application.
    #[cfg(feature = "metrics")]
    metrics: Option<(crate::metrics::MetricsEndpoint, crate::metrics::Levels)>,
}

#[derive(Debug)]
enum Listener {
    Tls(TlsListener),
    Tcp(tokio::net::TcpListener),
}

impl Listening {
    /// The bound address (`LISTEN_ADDR` may name port 0).
    pub fn local_addr(&self) -> SocketAddr {
        match &self.listener {
            Listener::Tls(listener) => listener.local_addr(),
            Listener::Tcp(listener) => listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        }
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.listener, Listener::Tls(_))
    }

    /// The reloader watching the TLS files (`None`: plaintext, or
    /// `TLS_RELOAD=false`): its counts, and
    /// [`reload_now`](TlsReloader::reload_now) for a `SIGHUP` handler.
    pub fn tls_reloader(&self) -> Option<&TlsReloader> {
        self.reloader.as_ref()
    }

    /// Where `GET /metrics` is served (`METRICS_ADDR`, feature
    /// `metrics`), once [`serve`](Self::serve) runs.
    pub fn metrics_url(&self) -> Option<String> {
        #[cfg(feature = "metrics")]
        return self.metrics.as_ref().map(|(endpoint, _)| endpoint.url());
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// `https://` or `http://` and the bound address.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serves `service` (an axum `Router`, or any `Clone` service) until
    /// `shutdown` completes, then lets open requests finish: hyper-util's
    /// HTTP/1.1 and h2 server under the stack's [`ServeOptions`], each
    /// request carrying its `PeerAddr` and, over TLS, its `TlsConnectInfo`.
    pub async fn serve<S, B>(self, service: S, shutdown: impl Future<Output = ()>)
    where
        S: HttpService<B>,
        B: HttpBody,
    {
        // Watching, and the metrics served, until serving ends.
        let _reloader = self.reloader;
        #[cfg(feature = "metrics")]
        let _metrics = self
            .metrics
            .map(|(endpoint, levels)| AbortOnDrop(endpoint.spawn(levels)));
        match self.listener {
            Listener::Tls(listener) => self.options.serve(listener, service, shutdown).await,
            Listener::Tcp(listener) => self.options.serve_tcp(listener, service, shutdown).await,
        }
    }
}

/// Stops a task when dropped.
#[cfg(feature = "metrics")]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

#[cfg(feature = "metrics")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
