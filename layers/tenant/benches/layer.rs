//! What resolving a tenant costs once the answer is cached.
//!
//! - In process: a request through `TenantLayer` (bearer digest, cache
//!   hit, stamping) against the same no-op service without it (target:
//!   under 1 µs of layer work), for a local `MemoryStore` and for the
//!   control-plane resolver's cache.
//! - Over loopback: keep-alive requests/s of a hyper server with the
//!   layer (control-plane cache hits) against the same server without it
//!   (target ≥ 0.9×), in criterion and in alternating rounds.
//!
//! - The miss path: the control-plane resolver with a zero TTL (every
//!   lookup a call through its pooled client) against a raw pooled hyper
//!   client to the same server (target ≥ 0.9×).
//!
//! Run: `cargo bench -p portcullis-tenant`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{
    CachePolicy, Chain, ControlPlane, ControlPlaneResolver, MemoryStore, Principal, TenantLayer,
    TenantResolver,
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const KEY: &str = "sk-live-0123456789abcdef0123456789abcdef";

/// A control plane on loopback that knows `KEY`.
async fn control_plane() -> SocketAddr {
    portcullis_test_support::serve_loopback(portcullis_test_support::bench_service(service_fn(
        |_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                br#"{"active": true, "consumer": "billing", "tenant_id": "acme", "rate_per_min": 600, "burst": 20}"#,
            ))))
        },
    )))
    .await
}

/// The control-plane resolver, its cache warmed with `KEY`.
async fn cached_resolver() -> ControlPlaneResolver {
    let addr = control_plane().await;
    let policy = CachePolicy {
        positive_ttl: Duration::from_secs(3600),
        ..CachePolicy::default()
    };
    let resolver = ControlPlaneResolver::with_policy(
        ControlPlane::new(&format!("http://{addr}"), "s").unwrap(),
        policy,
    )
    .unwrap();
    resolver
        .resolve(&Principal::Bearer(BearerDigest::of_token(KEY)))
        .await
        .unwrap();
    resolver
}

fn store() -> MemoryStore {
    let store = MemoryStore::new();
    store.insert(
        Principal::Bearer(BearerDigest::of_token(KEY)),
        Tenant::new("acme", TenantStatus::Active).with_caller("billing"),
    );
    store
}

fn request() -> Request<()> {
    Request::get("/v1/chat")
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-llm-router-tenant", "forged")
        .body(())
        .unwrap()
}

fn in_process(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let noop = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let remote = rt.block_on(cached_resolver());
    let mut group = c.benchmark_group("TenantLayer work per request, in process (cache hit)");
    group.bench_function("no layer (baseline)", |b| {
        let mut svc = noop;
        b.iter(|| rt.block_on(async { svc.ready().await.unwrap().call(request()).await }))
    });
    group.bench_function(
        "BearerDigest::from_headers alone (SHA-256 of the key)",
        |b| {
            let req = request();
            b.iter(|| BearerDigest::from_headers(black_box(req.headers())))
        },
    );
    for (name, layer) in [
        ("TenantLayer, MemoryStore", TenantLayer::new(store())),
        (
            "TenantLayer, Chain(control plane, cached)",
            TenantLayer::new(Chain::new(Vec::<MemoryStore>::new()).with_remote(remote.clone())),
        ),
    ] {
        group.bench_function(name, |b| {
            let mut svc = ServiceBuilder::new().layer(layer.clone()).service(noop);
            b.iter(|| {
                let res = rt
                    .block_on(async { svc.ready().await.unwrap().call(request()).await })
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res
            })
        });
    }
    group.finish();

    // The same, in alternating rounds on one thread: the per-request
    // difference is the layer's work (1/candidate - 1/baseline).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let remote = rt.block_on(cached_resolver());
    for (name, layer) in [
        ("MemoryStore", TenantLayer::new(store())),
        (
            "Chain(control plane, cached)",
            TenantLayer::new(Chain::new(Vec::<MemoryStore>::new()).with_remote(remote)),
        ),
    ] {
        let mut plain = noop;
        let mut layered = ServiceBuilder::new().layer(layer).service(noop);
        portcullis_test_support::paired_rounds(
            &format!("in process, cache hit, {name}: no layer -> TenantLayer"),
            24,
            200_000,
            |candidate, n| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        if candidate {
                            let res = layered
                                .ready()
                                .await
                                .unwrap()
                                .call(request())
                                .await
                                .unwrap();
                            assert_eq!(res.status(), StatusCode::OK);
                        } else {
                            black_box(plain.ready().await.unwrap().call(request()).await.unwrap());
                        }
                    }
                    start.elapsed()
                })
            },
        );
    }
}

async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let tenant_len = req.extensions().get::<Tenant>().map_or(0, |t| t.id().len());
    Ok(Response::new(Full::new(Bytes::from(
        tenant_len.to_string(),
    ))))
}

async fn server(layer: Option<TenantLayer>) -> SocketAddr {
    use portcullis_test_support::{bench_service, serve_loopback};
    serve_loopback(match layer {
        None => bench_service(tower::service_fn(app)),
        Some(layer) => bench_service(ServiceBuilder::new().layer(layer).service_fn(app)),
    })
    .await
}

async fn drive(addr: SocketAddr, n: u64) -> Duration {
    portcullis_test_support::keep_alive_requests(addr, n, || {
        Request::get("/v1/chat")
            .header("host", "bench")
            .header("authorization", format!("Bearer {KEY}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await
}

/// The servers run on a single-threaded runtime of their own thread and the
/// client on another, so work stealing between the two does not decide the
/// result: each side is one thread, as on a dedicated core.
fn server_thread() -> (SocketAddr, SocketAddr, SocketAddr) {
    portcullis_test_support::on_own_thread(|| async {
        let plain = server(None).await;
        let remote = cached_resolver().await;
        let layered = server(Some(TenantLayer::new(
            Chain::new(Vec::<MemoryStore>::new()).with_remote(remote),
        )))
        .await;
        let local = server(Some(TenantLayer::new(store()))).await;
        (plain, layered, local)
    })
}

fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (plain, layered, local) = server_thread();
    let mut group = c.benchmark_group("keep-alive requests over loopback, control-plane cache hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no layer (baseline)", |b| {
        b.iter_custom(|n| rt.block_on(drive(plain, n)))
    });
    group.bench_function("ResolveTenant", |b| {
        b.iter_custom(|n| rt.block_on(drive(layered, n)))
    });
    group.finish();

    portcullis_test_support::paired_rounds(
        "keep-alive requests, control-plane cache hit: no layer -> ResolveTenant",
        24,
        10_000,
        |candidate, n| rt.block_on(drive(if candidate { layered } else { plain }, n)),
    );
    portcullis_test_support::paired_rounds(
        "keep-alive requests, MemoryStore: no layer -> ResolveTenant",
        24,
        10_000,
        |candidate, n| rt.block_on(drive(if candidate { local } else { plain }, n)),
    );
}

/// The miss path: every lookup goes to the control plane (a zero TTL), the
/// resolver's pooled client against a raw pooled hyper client to the same
/// server (target ≥ 0.9× the raw client's rate).
fn misses(_: &mut Criterion) {
    let addr = portcullis_test_support::on_own_thread(control_plane);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resolver = ControlPlaneResolver::with_policy(
        ControlPlane::new(&format!("http://{addr}"), "s").unwrap(),
        CachePolicy {
            positive_ttl: Duration::ZERO,
            ..CachePolicy::default()
        },
    )
    .unwrap();
    let raw: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let principal = Principal::Bearer(BearerDigest::of_token(KEY));
    let uri: http::Uri = format!(
        "http://{addr}/internal/keys/resolve?sha256={}",
        BearerDigest::of_token(KEY).to_hex()
    )
    .parse()
    .unwrap();
    portcullis_test_support::paired_rounds(
        "control-plane miss path: raw hyper client -> ControlPlaneResolver (zero TTL)",
        24,
        2_000,
        |candidate, n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    if candidate {
                        let resolution = resolver.resolve(&principal).await.unwrap();
                        assert!(resolution.tenant().is_some());
                    } else {
                        let req = Request::get(uri.clone())
                            .header("x-internal-secret", "s")
                            .header(http::header::ACCEPT, "application/json")
                            .body(Empty::new())
                            .unwrap();
                        let res = raw.request(req).await.unwrap();
                        let body = http_body_util::BodyExt::collect(res.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        black_box(body);
                    }
                }
                start.elapsed()
            })
        },
    );
}

criterion_group!(benches, in_process, misses, requests);
criterion_main!(benches);
