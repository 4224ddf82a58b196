//! The four layers' own work per request, in process: the stack from
//! `from_env` (in-memory stores, the certificate's CN as the rate key, a
//! bearer resolved by the tenants file) on a request as the TLS listener
//! hands it over, against the bare service, and each layer alone against
//! the same bare service. Where the whole-stack load bench (`stack`) says
//! how much slower, this says which layer it is.
//!
//! Run: `cargo bench -p portcullis --bench layers`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::hint::black_box;

use common::{StackFiles, TOKEN};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use portcullis::client_cert::ClientCertLayer;
use portcullis::identity::{PeerAddr, TlsConnectInfo};
use portcullis::xfcc::XfccLayer;
use portcullis_test_support::pki;
use rustls_pki_types::CertificateDer;
use tower::{Layer, Service, ServiceExt};

async fn app(_req: Request<()>) -> Result<Response<&'static str>, Infallible> {
    Ok(Response::new("ok"))
}

fn request(connection: &TlsConnectInfo) -> Request<()> {
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

fn run<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, service: S)
where
    S: Service<Request<()>, Error = Infallible> + Clone,
    S::Future: 'static,
{
    let connection = TlsConnectInfo::builder(
        "192.0.2.7:50000".parse().unwrap(),
        "127.0.0.1:8443".parse().unwrap(),
    )
    .peer_chain(vec![CertificateDer::from(pki().client().der().to_vec())])
    .build();
    c.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut service = service.clone();
                black_box(
                    service
                        .ready()
                        .await
                        .unwrap()
                        .call(request(&connection))
                        .await
                        .unwrap(),
                );
            })
        })
    });
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let files = StackFiles::new("layers-bench");
    let vars = files.env();
    let env = Env::from_pairs(vars.iter().cloned());
    let stack = rt.block_on(portcullis::from_env(&env)).unwrap();
    let no_proxies = portcullis::identity::TrustedProxies::none();
    let bare = tower::service_fn(app);

    run(c, &rt, "bare service", bare);
    run(c, &rt, "four layers (from_env)", stack.layer().layer(bare));
    run(
        c,
        &rt,
        "client-cert alone",
        ClientCertLayer::new().layer(bare),
    );
    run(
        c,
        &rt,
        "xfcc alone (no trusted proxy, known headers stripped)",
        XfccLayer::from_env(&env, &no_proxies)
            .unwrap()
            .strip_known_cert_headers()
            .layer(bare),
    );
    let tenant = portcullis::tenant::TenantLayer::from_env(&env)
        .unwrap()
        .unwrap();
    run(c, &rt, "tenant alone (bearer)", tenant.layer(bare));
    let rate_limit = rt
        .block_on(
            portcullis::rate_limit::RateLimitEnv::from_env(&env, &no_proxies)
                .unwrap()
                .layer(),
        )
        .unwrap();
    // Behind the client-cert layer, which supplies the CN it keys by.
    run(
        c,
        &rt,
        "client-cert + rate-limit (cn)",
        ClientCertLayer::new().layer(rate_limit.layer(bare)),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = layers
}
criterion_main!(benches);
