//! The whole stack from the environment: each crate reads its own
//! variables (its `from_env`), this module reads `LISTEN_ADDR`, composes
//! them and checks the combinations no one crate can see.
//!
//! `TRUSTED_PROXY_CIDRS` (with `CLIENT_IP_HEADER`) is read once, by
//! [`TrustedProxies::from_env`], and the same value is handed to the
//! forwarded-certificate layer, the `ip` rate-limit key and
//! [`Portcullis::trusted_proxies`].

use std::net::SocketAddr;

use portcullis_client_cert::{ClientCertLayer, ServeOptions, ServerTls};
use portcullis_identity::TrustedProxies;
use portcullis_identity::env::{Env, EnvProblem, Problems};
use portcullis_rate_limit::RateLimitEnv;
use portcullis_tenant::{InternalGuardLayer, TenantLayer};
use portcullis_xfcc::XfccLayer;

use crate::stack::{DEFAULT_LISTEN_ADDR, Portcullis, PortcullisLayer, StartupError};

/// The variable naming where the stack listens (named in bind errors too).
pub(crate) const LISTEN_ADDR: &str = "LISTEN_ADDR";

/// The variable naming where the Prometheus endpoint listens.
const METRICS_ADDR: &str = "METRICS_ADDR";

/// Where a client certificate can come from, as configured (even if a
/// file is wrong: its own problem is reported once, not again here).
struct CertificateSources {
    /// `TLS_CLIENT_CA`: verified by our own handshake.
    own: bool,
    /// `TRUSTED_PROXY_CIDRS`: forwarded by a trusted proxy.
    forwarded: bool,
}

impl CertificateSources {
    fn any(&self) -> bool {
        self.own || self.forwarded
    }
}

/// The whole stack from `env` (the README's table; [`Env::process`] for
/// the process environment).
///
/// Every problem is reported at once, each naming its variable, the value
/// and the fix: a bad value, a pair half set, and combinations that cannot
/// work (a certificate-only rate-limit key with no certificate source, a
/// tenant key with no tenants). Connects to Redis when `REDIS_URL` is set,
/// last, once everything else is right.
///
/// ```
/// use portcullis::identity::env::Env;
///
/// # tokio_test_block_on(async {
/// let env = Env::from_pairs([("TLS_CLIENT_AUTH", "sometimes"), ("RATE_LIMIT_BURST", "5")]);
/// let error = portcullis::from_env(&env).await.unwrap_err();
/// assert_eq!(error.problems().len(), 2);
/// assert_eq!(error.problems()[0].var(), "TLS_CLIENT_AUTH");
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn from_env(env: &Env<'_>) -> Result<Portcullis, StartupError> {
    let mut problems = Problems::new();
    let listen = env
        .socket_addr(LISTEN_ADDR, &mut problems, "127.0.0.1:8443")
        .or_else(|| DEFAULT_LISTEN_ADDR.parse().ok());
    let metrics = metrics_addr(env, &mut problems);
    let tls = problems.take(ServerTls::from_env(env)).flatten();
    let proxies = problems
        .take(TrustedProxies::from_env(env))
        .unwrap_or_else(TrustedProxies::none);
    let serve_options = problems.take(ServeOptions::from_env(env, &proxies));
    // Every other known certificate header goes too: the stack hands the
    // application one identity, never a header a client could have set.
    let xfcc = problems
        .take(XfccLayer::from_env(env, &proxies))
        .map(XfccLayer::strip_known_cert_headers);
    let tenant = problems.take(TenantLayer::from_env(env)).flatten();
    let rate_limit = problems.take(RateLimitEnv::from_env(env, &proxies));
    // Its secret is read by the function the control plane's reader uses,
    // which reports a bad one: hidden routes meanwhile.
    let guard = InternalGuardLayer::from_env(env).unwrap_or_else(|_| InternalGuardLayer::new(None));

    let sources = CertificateSources {
        own: env.is_set("TLS_CLIENT_CA"),
        forwarded: env.is_set("TRUSTED_PROXY_CIDRS"),
    };
    if env.is_set("TRUSTED_PROXY_IDENTITIES") && !sources.own {
        problems.push(EnvProblem::setting(
            "TRUSTED_PROXY_IDENTITIES",
            "set, but no client certificate can be verified here: a proxy proves its identity \
             with its own TLS client certificate",
            "set TLS_CLIENT_CA (with TLS_CERT and TLS_KEY), or unset TRUSTED_PROXY_IDENTITIES",
        ));
    }
    // Configured, even if wrongly: its own problems are reported above.
    let tenants = tenant.is_some() || env.is_set("TENANTS_FILE") || env.is_set("CONTROL_PLANE_URL");
    if !tenants {
        env.warn(
            "TENANTS_FILE",
            if sources.own {
                "no tenants are configured (TENANTS_FILE or CONTROL_PLANE_URL): nothing is \
                 authenticated beyond the handshake, so every client whose certificate verifies \
                 is admitted, with no tenant; almost never what you want"
            } else {
                "no tenants are configured (TENANTS_FILE or CONTROL_PLANE_URL): nothing is \
                 authenticated, so every request is admitted, with no tenant (a development \
                 setup)"
            },
        );
    }
    if let Some(rate_limit) = &rate_limit {
        check_rate_limit(env, rate_limit, &sources, tenants, &mut problems);
    }

    let (Some(listen), Some(serve_options), Some(xfcc), Some(rate_limit), true) =
        (listen, serve_options, xfcc, rate_limit, problems.is_empty())
    else {
        return Err(StartupError::new(problems));
    };
    // The cost header is for a layer after the strip: no client sets it.
    let mut tenant = tenant.unwrap_or_else(TenantLayer::strip_only);
    if let Some(cost) = rate_limit.cost_header() {
        tenant = tenant.protect(cost.as_str());
    }
    // Connect to Redis last, and only when everything else is right.
    let rate_limit = rate_limit.layer().await.map_err(StartupError::from)?;
    Ok(Portcullis {
        layer: PortcullisLayer::new(ClientCertLayer::new(), xfcc, tenant, rate_limit),
        tls,
        guard,
        listen,
        proxies,
        serve_options,
        metrics,
        warnings: env.warnings(),
    })
}

/// `METRICS_ADDR`: where to serve `GET /metrics` (feature `metrics`).
fn metrics_addr(env: &Env<'_>, problems: &mut Problems) -> Option<SocketAddr> {
    let addr = env.socket_addr(
        METRICS_ADDR,
        problems,
        "0.0.0.0:9090 (0.0.0.0 for a scraper on another host)",
    );
    if addr.is_some() && cfg!(not(feature = "metrics")) {
        problems.push(EnvProblem::invalid(
            METRICS_ADDR,
            env.get(METRICS_ADDR).unwrap_or_default(),
            "this build has no Prometheus endpoint",
            "build portcullis with the metrics feature, or unset METRICS_ADDR",
        ));
    }
    addr
}

/// The rate-limit settings against where certificates and tenants come
/// from.
fn check_rate_limit(
    env: &Env<'_>,
    rate_limit: &RateLimitEnv,
    sources: &CertificateSources,
    tenants: bool,
    problems: &mut Problems,
) {
    const KEY: &str = "RATE_LIMIT_KEY";
    let key_problem = |problem: &'static str, fix: &'static str| match env.get(KEY) {
        Some(value) => EnvProblem::invalid(KEY, value, problem, fix),
        None => EnvProblem::setting(KEY, problem, fix),
    };
    if rate_limit.certificate_as_principal() && !sources.any() {
        problems.push(EnvProblem::invalid(
            "USE_CERT_AS_PRINCIPAL",
            env.get("USE_CERT_AS_PRINCIPAL").unwrap_or_default(),
            "no certificate can arrive",
            "set TLS_CLIENT_CA (with TLS_CERT and TLS_KEY) to verify client certificates here, \
             or TRUSTED_PROXY_CIDRS for a proxy that forwards them",
        ));
    }
    if rate_limit.keys().needs_certificate() && !sources.any() {
        problems.push(key_problem(
            "names only certificate keys but no certificate can arrive",
            "add bearer or ip to the chain, or set TLS_CLIENT_CA or TRUSTED_PROXY_CIDRS",
        ));
    }
    if rate_limit.keys().uses_tenant() && !tenants {
        problems.push(key_problem(
            "names tenant but no tenants are configured",
            "set TENANTS_FILE or CONTROL_PLANE_URL, or key by cn, bearer or ip",
        ));
    }
}
