//! Keep-alive requests/s over loopback through `RateLimitLayer` (bearer
//! key, a quota never exhausted) against the same server with no layer
//! (target ≥ 0.95×), in alternating rounds; server and client each on a
//! single-threaded runtime of their own thread.
//!
//! Also the layer's own work per request in process, against the bare
//! service and against the bearer key's SHA-256 alone.
//!
//! Run: `cargo bench -p portcullis-rate-limit --bench layer`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use portcullis_identity::Quota;
use portcullis_rate_limit::{
    KeyChain, KeySource, MemoryLimiter, RateLimitLayer, SystemClock, WhenFull,
};
use tower::ServiceBuilder;

async fn app(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn server(layer: Option<RateLimitLayer>) -> SocketAddr {
    use portcullis_test_support::{bench_service, serve_loopback};
    serve_loopback(match layer {
        None => bench_service(tower::service_fn(app)),
        Some(layer) => bench_service(
            ServiceBuilder::new()
                .map_request(authenticated)
                .layer(layer)
                .service_fn(app),
        ),
    })
    .await
}

const TOKEN: &str = "Bearer sk-live-0123456789abcdef0123456789abcdef";

/// What `TenantLayer` leaves for an authenticated key: the bearer key only
/// names a bucket once a layer vouched for it. The SHA-256 is the same work
/// the limiter did itself before.
fn authenticated<B>(mut req: Request<B>) -> Request<B> {
    if let Ok(Some(digest)) = portcullis_identity::BearerDigest::from_headers(req.headers()) {
        req.extensions_mut().insert(digest);
    }
    req
}

fn layer() -> RateLimitLayer {
    let store = Arc::new(MemoryLimiter::new(
        100_000,
        WhenFull::default(),
        SystemClock::new(),
    ));
    RateLimitLayer::new(store, KeyChain::new([KeySource::Bearer]))
        .default_quota(Quota::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap())
}

fn in_process(c: &mut Criterion) {
    use std::hint::black_box;
    use tower::{Service, ServiceExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = || {
        Request::get("/")
            .header("authorization", TOKEN)
            .body(())
            .unwrap()
    };
    let noop = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut group = c.benchmark_group("RateLimitLayer work per request, in process");
    group.bench_function("no layer (baseline)", |b| {
        let mut svc = noop;
        b.iter(|| rt.block_on(async { svc.ready().await.unwrap().call(request()).await }))
    });
    group.bench_function(
        "BearerDigest::from_headers alone (SHA-256 of the key)",
        |b| {
            let req = request();
            b.iter(|| portcullis_identity::BearerDigest::from_headers(black_box(req.headers())))
        },
    );
    group.bench_function("RateLimitLayer, bearer key, MemoryLimiter", |b| {
        let mut svc = ServiceBuilder::new()
            .map_request(authenticated)
            .layer(layer())
            .service(noop);
        b.iter(|| rt.block_on(async { svc.ready().await.unwrap().call(request()).await }))
    });
    group.finish();
}

fn requests(_: &mut Criterion) {
    let (plain, layered) = portcullis_test_support::on_own_thread(|| async {
        (server(None).await, server(Some(layer())).await)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    portcullis_test_support::paired_rounds(
        "keep-alive requests: no layer -> RateLimitLayer (bearer key)",
        24,
        10_000,
        |candidate, n| {
            rt.block_on(portcullis_test_support::keep_alive_requests(
                if candidate { layered } else { plain },
                n,
                || {
                    Request::get("/")
                        .header("host", "bench")
                        .header("authorization", TOKEN)
                        .body(Empty::<Bytes>::new())
                        .unwrap()
                },
            ))
        },
    );
}

criterion_group!(benches, in_process, requests);
criterion_main!(benches);
