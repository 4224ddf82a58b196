//! What the `layers` and `layer_allocations` benches share: the bare
//! service, a request as the TLS listener hands it over, the services
//! compared against the bare one, and the loop that drives them.
//!
//! Both sides pay what a server pays per request besides the layers: the
//! request built (as hyper parses one), the service cloned (as hyper-util's
//! `TowerToHyperService` does), one poll to completion.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::common::{StackFiles, TOKEN};
use http::{Request, Response};
use portcullis::client_cert::ClientCertLayer;
use portcullis::identity::env::Env;
use portcullis::identity::{PeerAddr, TlsConnectInfo};
use portcullis::xfcc::XfccLayer;
use portcullis_test_support::pki;
use rustls_pki_types::CertificateDer;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

async fn app(_req: Request<()>) -> Result<Response<&'static str>, Infallible> {
    Ok(Response::new("ok"))
}

/// The service without layers.
pub(crate) fn bare() -> impl Service<
    Request<()>,
    Response = Response<&'static str>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(app)
}

/// A service the benches measure.
pub(crate) trait Measure {
    /// Measures `service`, named `name`.
    fn measure<S: Service<Request<()>, Error = Infallible> + Clone>(
        &mut self,
        name: &str,
        service: S,
    );
}

/// The runtime, the connection requests arrive on, and the files the
/// stack reads.
pub(crate) struct Fixture {
    pub(crate) rt: Runtime,
    pub(crate) connection: TlsConnectInfo,
    files: StackFiles,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connection = TlsConnectInfo::builder(
            "192.0.2.7:50000".parse().unwrap(),
            "127.0.0.1:8443".parse().unwrap(),
        )
        .peer_chain(vec![CertificateDer::from(pki().client().der().to_vec())])
        .build();
        Fixture {
            rt,
            connection,
            files: StackFiles::new("layers-bench"),
        }
    }

    /// `n` requests through `service`, each on its own `block_on`.
    pub(crate) fn drive<S>(&self, service: &S, n: u64) -> Duration
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        let start = Instant::now();
        for _ in 0..n {
            self.rt.block_on(async {
                let mut service = service.clone();
                black_box(
                    service
                        .ready()
                        .await
                        .unwrap()
                        .call(request(&self.connection))
                        .await
                        .unwrap(),
                );
            });
        }
        start.elapsed()
    }

    /// The four layers as `from_env` builds them, then each alone, around
    /// the bare service; those whose name contains `filter`.
    pub(crate) fn each_layered(&self, filter: Option<&str>, on: &mut impl Measure) {
        let measure = |name: &str| filter.is_none_or(|f| name.contains(f));
        let vars = self.files.env();
        let env = Env::from_pairs(vars.iter().cloned());
        let no_proxies = portcullis::identity::TrustedProxies::none();
        let bare = bare();
        let name = "four layers (from_env)";
        if measure(name) {
            let stack = self.rt.block_on(portcullis::from_env(&env)).unwrap();
            on.measure(name, stack.layer().layer(bare.clone()));
        }
        let name = "client-cert alone";
        if measure(name) {
            on.measure(name, ClientCertLayer::new().layer(bare.clone()));
        }
        let name = "xfcc alone (no trusted proxy, known headers stripped)";
        if measure(name) {
            let xfcc = XfccLayer::from_env(&env, &no_proxies).unwrap();
            on.measure(name, xfcc.strip_known_cert_headers().layer(bare.clone()));
        }
        let name = "tenant alone (bearer)";
        if measure(name) {
            let tenant = portcullis::tenant::TenantLayer::from_env(&env)
                .unwrap()
                .unwrap();
            on.measure(name, tenant.layer(bare.clone()));
        }
        // Behind the client-cert layer, which supplies the CN it keys by.
        let name = "client-cert + rate-limit (cn)";
        if measure(name) {
            let rate_limit = self
                .rt
                .block_on(
                    portcullis::rate_limit::RateLimitEnv::from_env(&env, &no_proxies)
                        .unwrap()
                        .layer(),
                )
                .unwrap();
            on.measure(name, ClientCertLayer::new().layer(rate_limit.layer(bare)));
        }
    }
}

/// A request as the TLS listener hands it over.
pub(crate) fn request(connection: &TlsConnectInfo) -> Request<()> {
    let mut req = Request::get("/v1/chat")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(())
        .unwrap();
    req.extensions_mut().insert(connection.clone());
    req.extensions_mut()
        .insert(PeerAddr(connection.remote_addr()));
    req
}
