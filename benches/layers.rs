//! The four layers' own work per request, in process: the stack from
//! `from_env` (in-memory stores, the certificate's CN as the rate key, a
//! bearer resolved by the tenants file) on a request as the TLS listener
//! hands it over, against the bare service, and each layer alone against
//! the same bare service. Where the whole-stack load bench (`stack`) says
//! how much slower, this says which layer it is.
//!
//! Each comparison alternates the bare service and the layered one in
//! rounds (the machine's drift falls on both alike) and prints the ratio
//! of totals and the median round ratio (below 1: the layered service's
//! share of the bare one's speed), then the time per request of each, what
//! the layers add, and the allocations per request of each.
//!
//! Both sides pay what a server pays per request besides the layers: the
//! request built (as hyper parses one), the service cloned (as hyper-util's
//! `TowerToHyperService` does), one poll to completion.
//!
//! Run: `cargo bench -p portcullis --bench layers [-- <name filter>]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{StackFiles, TOKEN};
use http::{Request, Response};
use portcullis::client_cert::ClientCertLayer;
use portcullis::identity::env::Env;
use portcullis::identity::{PeerAddr, TlsConnectInfo};
use portcullis::xfcc::XfccLayer;
use portcullis_test_support::{paired_rounds, pki};
use rustls_pki_types::CertificateDer;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUNDS: usize = 24;
const PER_ROUND: u64 = 20_000;

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

/// `n` requests through `service`, each on its own `block_on`.
fn drive<S>(rt: &Runtime, connection: &TlsConnectInfo, service: &S, n: u64) -> Duration
where
    S: Service<Request<()>, Error = Infallible> + Clone,
{
    let start = Instant::now();
    for _ in 0..n {
        rt.block_on(async {
            let mut service = service.clone();
            black_box(
                service
                    .ready()
                    .await
                    .unwrap()
                    .call(request(connection))
                    .await
                    .unwrap(),
            );
        });
    }
    start.elapsed()
}

/// Allocations (and reallocations) per request through `service`.
fn allocations<S>(rt: &Runtime, connection: &TlsConnectInfo, service: &S) -> f64
where
    S: Service<Request<()>, Error = Infallible> + Clone,
{
    const N: u64 = 1000;
    let region = Region::new(GLOBAL);
    drive(rt, connection, service, N);
    let stats = region.change();
    (stats.allocations + stats.reallocations) as f64 / N as f64
}

/// The bare service against `layered`, in alternating rounds.
fn compare<B, L>((rt, connection, bare): (&Runtime, &TlsConnectInfo, &B), name: &str, layered: L)
where
    B: Service<Request<()>, Error = Infallible> + Clone,
    L: Service<Request<()>, Error = Infallible> + Clone,
{
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !name.contains(&filter)
    {
        return;
    }
    let (mut bare_time, mut layered_time) = (Duration::ZERO, Duration::ZERO);
    let ratio = paired_rounds(name, ROUNDS, PER_ROUND, |candidate, n| {
        let took = if candidate {
            drive(rt, connection, &layered, n)
        } else {
            drive(rt, connection, bare, n)
        };
        if n == PER_ROUND {
            *if candidate {
                &mut layered_time
            } else {
                &mut bare_time
            } += took;
        }
        took
    });
    let requests = (ROUNDS as u64 * PER_ROUND) as f64;
    let bare_each = bare_time.as_secs_f64() / requests * 1e9;
    let layered_each = layered_time.as_secs_f64() / requests * 1e9;
    println!(
        "    {bare_each:.0} ns -> {layered_each:.0} ns per request ({:.2}x the time, {:.0} ns added); allocations per request {:.1} -> {:.1}",
        1.0 / ratio,
        layered_each - bare_each,
        allocations(rt, connection, bare),
        allocations(rt, connection, &layered),
    );
}

fn main() {
    // Only measure under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
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
    let files = StackFiles::new("layers-bench");
    let vars = files.env();
    let env = Env::from_pairs(vars.iter().cloned());
    let stack = rt.block_on(portcullis::from_env(&env)).unwrap();
    let no_proxies = portcullis::identity::TrustedProxies::none();
    let bare = tower::service_fn(app);
    let on = (&rt, &connection, &bare);

    compare(on, "four layers (from_env)", stack.layer().layer(bare));
    compare(on, "client-cert alone", ClientCertLayer::new().layer(bare));
    compare(
        on,
        "xfcc alone (no trusted proxy, known headers stripped)",
        XfccLayer::from_env(&env, &no_proxies)
            .unwrap()
            .strip_known_cert_headers()
            .layer(bare),
    );
    let tenant = portcullis::tenant::TenantLayer::from_env(&env)
        .unwrap()
        .unwrap();
    compare(on, "tenant alone (bearer)", tenant.layer(bare));
    let rate_limit = rt
        .block_on(
            portcullis::rate_limit::RateLimitEnv::from_env(&env, &no_proxies)
                .unwrap()
                .layer(),
        )
        .unwrap();
    // Behind the client-cert layer, which supplies the CN it keys by.
    compare(
        on,
        "client-cert + rate-limit (cn)",
        ClientCertLayer::new().layer(rate_limit.layer(bare)),
    );
}
