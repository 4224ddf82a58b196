//! Keep-alive requests/s over loopback through `RateLimitLayer` (bearer
//! key, a quota never exhausted) against the same server with no layer
//! (target ≥ 0.95×), in alternating rounds; server and client each on a
//! single-threaded runtime of their own thread.
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
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use portcullis_identity::response::ResponseBody;
use portcullis_rate_limit::{
    KeyChain, KeySource, MemoryStore, Quota, RateLimitLayer, SystemClock, WhenFull,
};
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

async fn app(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

type Boxed = BoxCloneService<Request<Incoming>, Response<BoxBody<Bytes, Infallible>>, Infallible>;

async fn server(layer: Option<RateLimitLayer>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service: Boxed = match layer {
        None => BoxCloneService::new(
            ServiceBuilder::new()
                .map_response(|res: Response<Full<Bytes>>| res.map(BodyExt::boxed))
                .service_fn(app),
        ),
        Some(layer) => BoxCloneService::new(
            ServiceBuilder::new()
                .map_response(|res: Response<ResponseBody<Full<Bytes>>>| res.map(BodyExt::boxed))
                .layer(layer)
                .service_fn(app),
        ),
    };
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            });
        }
    });
    addr
}

fn requests(_: &mut Criterion) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = Arc::new(MemoryStore::new(
                100_000,
                WhenFull::default(),
                SystemClock::new(),
            ));
            let layer = RateLimitLayer::new(store, KeyChain::new([KeySource::Bearer]))
                .default_quota(
                    Quota::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap(),
                );
            tx.send((server(None).await, server(Some(layer)).await))
                .unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (plain, layered) = rx.recv().unwrap();
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
                        .header(
                            "authorization",
                            "Bearer sk-live-0123456789abcdef0123456789abcdef",
                        )
                        .body(Empty::<Bytes>::new())
                        .unwrap()
                },
            ))
        },
    );
}

criterion_group!(benches, requests);
criterion_main!(benches);
