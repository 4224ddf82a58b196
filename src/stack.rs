//! The whole stack from the environment: [`from_env`] and [`Portcullis`].
//!
//! The order is fixed, because each layer trusts what the one before it
//! established:
//!
//! 1. [`ClientCertLayer`]: the certificate our own TLS acceptor verified;
//! 2. [`XfccLayer`]: a certificate forwarded by a trusted proxy, and the
//!    removal of forwarded-certificate headers from everyone else, before
//!    anything reads them;
//! 3. [`TenantLayer`]: the protected headers removed, the caller
//!    authenticated (by bearer digest or by the certificate the first two
//!    established), and only then the tenant stamped;
//! 4. [`RateLimitLayer`]: the bucket named by the identity and tenant the
//!    others established, and the tenant's plan as the quota.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use tower::Service;

use portcullis_client_cert::{
    ClientCert, ClientCertLayer, EnvTls, OutboundTrust, ServeOptions, ServerTls, TlsAcceptor,
    TlsListener,
};
use portcullis_identity::TrustedProxies;
use portcullis_rate_limit::{KeySource, RateLimit, RateLimitEnv, RateLimitLayer};
use portcullis_tenant::{InternalGuardLayer, ResolveTenant, TenantLayer};
use portcullis_xfcc::{Xfcc, XfccLayer};
use tower_layer::Layer;

/// Where the examples listen unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8443";

/// The environment cannot be served: every problem found, each naming its
/// variables and the fix, so one restart fixes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupError {
    problems: Vec<String>,
}

impl StartupError {
    /// Each problem, one sentence each.
    pub fn problems(&self) -> &[String] {
        &self.problems
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

/// The four layers in their fixed order; see the [module docs](self).
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
/// DEBUG) that each layer records what it established into: `source`,
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
    #[cfg(feature = "tracing")]
    type Future = tracing::instrument::Instrumented<<Layered<S> as Service<Request<B>>>::Future>;
    #[cfg(not(feature = "tracing"))]
    type Future = <Layered<S> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[cfg(feature = "tracing")]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        use tracing::field::Empty;
        // The path without its query: a query may carry a credential.
        let span = tracing::debug_span!(
            "portcullis",
            method = %req.method(),
            path = req.uri().path(),
            source = Empty,
            principal = Empty,
            bearer = Empty,
            tenant = Empty,
            key = Empty,
            decision = Empty,
            reason = Empty,
        );
        // Each layer decides in `call` and may finish in its future: the
        // span is current for both.
        let future = span.in_scope(|| self.inner.call(req));
        tracing::Instrument::instrument(future, span)
    }

    #[cfg(not(feature = "tracing"))]
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
    layer: PortcullisLayer,
    tls: Option<EnvTls>,
    guard: InternalGuardLayer,
    listen: SocketAddr,
    proxies: TrustedProxies,
    serve_options: ServeOptions,
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
        self.serve_options
    }

    /// Binds `LISTEN_ADDR`: TLS when `TLS_CERT` and `TLS_KEY` are set,
    /// else plaintext (behind a proxy that terminates TLS). Serve the
    /// application on the result with [`Listening::serve`], under
    /// [`serve_options`](Self::serve_options).
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
    /// let stack = portcullis::from_env().await?;
    /// let listening = stack.bind().await?;
    /// println!("listening on {}", listening.url());
    /// listening.serve(app, std::future::pending()).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(&self) -> std::io::Result<Listening> {
        let addr = self.listen;
        let bind_error =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("LISTEN_ADDR={addr}: {e}"));
        let listener = match &self.tls {
            Some(tls) => {
                let config = tls.tls.build().map_err(std::io::Error::other)?;
                Listener::Tls(
                    TlsListener::bind(addr, TlsAcceptor::new(config))
                        .await
                        .map_err(bind_error)?,
                )
            }
            None => Listener::Tcp(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(bind_error)?,
            ),
        };
        Ok(Listening {
            listener,
            options: self.serve_options,
        })
    }

    /// `LISTEN_ADDR`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
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
        S: Service<Request<Incoming>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.listener {
            Listener::Tls(listener) => self.options.serve(listener, service, shutdown).await,
            Listener::Tcp(listener) => self.options.serve_tcp(listener, service, shutdown).await,
        }
    }
}

/// The whole stack from the process environment; see [`from_env_with`].
pub async fn from_env() -> Result<Portcullis, StartupError> {
    from_env_with(|var| std::env::var(var).ok()).await
}

/// The whole stack from the variables `lookup` gives (the README's table).
///
/// Every problem is reported at once, each naming its variables and the
/// fix: a bad value, a pair half set, and combinations that cannot work
/// (a certificate-only rate-limit key with no certificate source, a tenant
/// setting with no tenants). Connects to Redis when `REDIS_URL` is set.
///
/// ```
/// # tokio_test_block_on(async {
/// let env = |var: &str| match var {
///     "TLS_CLIENT_AUTH" => Some("sometimes".to_owned()),
///     "RATE_LIMIT_BURST" => Some("5".to_owned()),
///     _ => None,
/// };
/// let error = portcullis::from_env_with(env).await.unwrap_err();
/// assert_eq!(error.problems().len(), 2);
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn from_env_with(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Portcullis, StartupError> {
    let get = |var: &str| {
        lookup(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut problems = Vec::new();

    let listen = match get("LISTEN_ADDR") {
        None => DEFAULT_LISTEN_ADDR.parse().ok(),
        Some(text) => text.parse().map_or_else(
            |_| {
                problems.push(format!(
                    "LISTEN_ADDR={text:?}: not an address and port; write one such as 127.0.0.1:8443"
                ));
                None
            },
            Some,
        ),
    };

    let mut serve_options = ServeOptions::default();
    if let Some(text) = get("HEADER_READ_TIMEOUT_SECS") {
        match text.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
                serve_options = serve_options.header_read_timeout(Duration::from_secs_f64(secs));
            }
            _ => problems.push(format!(
                "HEADER_READ_TIMEOUT_SECS={text:?}: not a number of seconds above 0; write one such as 30 or 0.5"
            )),
        }
    }
    if let Some(text) = get("MAX_CONNECTIONS") {
        match text.parse::<usize>() {
            Ok(max) if max > 0 => serve_options = serve_options.max_connections(max),
            _ => problems.push(format!(
                "MAX_CONNECTIONS={text:?}: not a whole number above 0; write one such as 10000"
            )),
        }
    }

    // The certificate may name the caller behind a proxy too: the TLS
    // settings are read without it, and it is checked against both below.
    let use_cert_as_principal = match get("USE_CERT_AS_PRINCIPAL") {
        None => false,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "false" | "0" | "no" | "off" => false,
            "true" | "1" | "yes" | "on" => true,
            _ => {
                problems.push(format!(
                    "USE_CERT_AS_PRINCIPAL={value:?}: write true or false"
                ));
                false
            }
        },
    };
    let tls = ServerTls::from_env_with(|var| {
        (var != "USE_CERT_AS_PRINCIPAL")
            .then(|| lookup(var))
            .flatten()
    })
    .unwrap_or_else(|e| {
        problems.extend(e.into_each().iter().map(ToString::to_string));
        None
    });

    // Every other known certificate header goes too: the stack hands the
    // application one identity, never a header a client could have set.
    let xfcc = XfccLayer::from_env_with(&lookup)
        .unwrap_or_else(|e| {
            problems.extend(e.problems());
            XfccLayer::new(TrustedProxies::none())
        })
        .strip_known_cert_headers();
    let proxies = xfcc.proxies().clone();
    let forwarded_certs = !proxies.is_empty();
    let own_certs = tls
        .as_ref()
        .is_some_and(|tls| tls.files.client_ca.is_some());
    if get("TRUSTED_PROXY_IDENTITIES").is_some() && !own_certs {
        problems.push(
            "TRUSTED_PROXY_IDENTITIES is set but no client certificate can be verified here: a \
             proxy proves its identity with its own TLS client certificate; set TLS_CLIENT_CA \
             (with TLS_CERT and TLS_KEY), or unset TRUSTED_PROXY_IDENTITIES"
                .to_owned(),
        );
    }
    if use_cert_as_principal && !own_certs && !forwarded_certs {
        problems.push(
            "USE_CERT_AS_PRINCIPAL=true but no certificate can arrive: set TLS_CLIENT_CA (with \
             TLS_CERT and TLS_KEY) to verify client certificates here, or TRUSTED_PROXY_CIDRS for \
             a proxy that forwards them"
                .to_owned(),
        );
    }

    // Outbound trust (the platform's roots, SSL_CERT_FILE, ...) is read
    // only for an https control plane, the one outbound call the stack
    // makes.
    let https_control_plane =
        get("CONTROL_PLANE_URL").is_some_and(|url| url.to_ascii_lowercase().starts_with("https:"));
    let outbound = https_control_plane
        .then(|| {
            OutboundTrust::from_env_with(portcullis_client_cert::DEFAULT_PREFIX, &lookup)
                .and_then(|trust| trust.client_config())
                .map_err(|e| problems.push(e.to_string()))
                .ok()
        })
        .flatten();
    let outbound_failed = outbound.is_none();
    // USE_CERT_AS_PRINCIPAL never changes who must authenticate (the bearer
    // still selects the tenant): only the rate-limit bucket, below.
    let tenant = match TenantLayer::from_env_with(&lookup, outbound) {
        Ok(Some(layer)) => Some(layer),
        Ok(None) => {
            for var in ["AUTH_POLICY", "TENANT_HEADER", "CALLER_HEADER"] {
                if get(var).is_some() {
                    problems.push(format!(
                        "{var} is set but no tenants are: set TENANTS_FILE or CONTROL_PLANE_URL \
                         (with CONTROL_PLANE_INTERNAL_SECRET), or unset {var}"
                    ));
                }
            }
            None
        }
        Err(e) => {
            // Without outbound trust the tenant reader also says an https
            // control plane has no TLS configuration: the trust problem
            // above is the one to fix.
            let trust_failed = https_control_plane && outbound_failed;
            problems.extend(
                e.problems()
                    .iter()
                    .filter(|p| !(trust_failed && p.contains("no TLS client configuration")))
                    .cloned(),
            );
            None
        }
    };
    // Configured, even if wrongly: its own problems are reported above.
    let tenants =
        tenant.is_some() || get("TENANTS_FILE").is_some() || get("CONTROL_PLANE_URL").is_some();

    let rate_limit = match RateLimitEnv::from_env_with(&lookup, &proxies) {
        Ok(mut env) => {
            if use_cert_as_principal {
                env = env.certificate_as_principal(&proxies);
            }
            let sources: Vec<&'static str> = env.keys().sources().map(KeySource::name).collect();
            let certificate_only = sources
                .iter()
                .all(|name| matches!(*name, "cn" | "spiffe" | "fingerprint"));
            if certificate_only && !own_certs && !forwarded_certs {
                problems.push(format!(
                    "RATE_LIMIT_KEY={:?} names only certificate keys but no certificate can arrive: \
                     add bearer or ip to the chain, or set TLS_CLIENT_CA or TRUSTED_PROXY_CIDRS",
                    sources.join(",")
                ));
            }
            if sources.contains(&"tenant") && !tenants {
                problems.push(
                    "RATE_LIMIT_KEY names tenant but no tenants are configured: set TENANTS_FILE \
                     or CONTROL_PLANE_URL, or key by cn, bearer or ip"
                        .to_owned(),
                );
            }
            Some(env)
        }
        Err(e) => {
            problems.extend(e.problems().iter().cloned());
            None
        }
    };

    // Connect to Redis last, and only when everything else is right.
    let (Some(listen), Some(rate_limit), true) = (listen, rate_limit, problems.is_empty()) else {
        return Err(StartupError { problems });
    };
    let rate_limit = rate_limit.layer().await.map_err(|e| StartupError {
        problems: e.problems().to_vec(),
    })?;
    Ok(Portcullis {
        layer: PortcullisLayer::new(
            ClientCertLayer::new(),
            xfcc,
            tenant.unwrap_or_else(TenantLayer::strip_only),
            rate_limit,
        ),
        tls,
        guard: InternalGuardLayer::from_env_with(&lookup),
        listen,
        proxies,
        serve_options,
    })
}
