//! Keep-alive HTTP/1.1 requests/s over loopback through `XfccLayer` with a
//! trusted proxy's 1-element header, against the same server with no layer
//! (target ≥ 0.95×), in the same run. Every variant receives the same
//! header bytes, so only the layer's work differs. A second group times
//! the layer's work alone, in process.
//!
//! Run: `cargo bench -p portcullis-xfcc --bench layer`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use portcullis_identity::response::ResponseBody;
use portcullis_identity::{ClientIdentity, PeerAddr, TrustedProxies};
use portcullis_test_support::pki;
use portcullis_xfcc::{CertFormat, XfccLayer};
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// What Istio's sidecar sends: By, Hash, Subject, URI.
const ISTIO: &str = r#"By=spiffe://cluster.local/ns/default/sa/api;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=web,O=Acme";URI=spiffe://cluster.local/ns/default/sa/web"#;

fn with_cert() -> String {
    let der = pki().client().der();
    let hash = ClientIdentity::from_der(der)
        .unwrap()
        .fingerprint_sha256_hex();
    format!(
        "By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Cert=\"{}\"",
        CertFormat::Nginx.encode(&[der])
    )
}

fn trusted() -> TrustedProxies {
    TrustedProxies::new(["127.0.0.1/32".parse().unwrap()])
}

async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read what a handler would, so the layer's identity is not dead work.
    let cn_len = req
        .extensions()
        .get::<ClientIdentity>()
        .and_then(|id| id.common_name().map(str::len))
        .unwrap_or(0);
    Ok(Response::new(Full::new(Bytes::from(cn_len.to_string()))))
}

async fn server(layer: Option<XfccLayer>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            // Both variants box their response body alike.
            let base = ServiceBuilder::new().map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            });
            let service: BoxCloneService<
                Request<Incoming>,
                Response<BoxBody<Bytes, Infallible>>,
                Infallible,
            > = match &layer {
                None => BoxCloneService::new(
                    base.map_response(|res: Response<Full<Bytes>>| res.map(BodyExt::boxed))
                        .service_fn(app),
                ),
                Some(layer) => BoxCloneService::new(
                    base.map_response(|res: Response<ResponseBody<Full<Bytes>>>| {
                        res.map(BodyExt::boxed)
                    })
                    .layer(layer.clone())
                    .service_fn(app),
                ),
            };
            tokio::spawn(async move {
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await
            });
        }
    });
    addr
}

/// `n` requests on one keep-alive connection carrying `xfcc`.
async fn drive(addr: SocketAddr, xfcc: &str, n: u64) -> Duration {
    portcullis_test_support::keep_alive_requests(addr, n, || {
        Request::get("/")
            .header("host", "bench")
            .header("x-forwarded-client-cert", xfcc)
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await
}

fn requests(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let cert = with_cert();
    let plain = rt.block_on(server(None));
    let layered = rt.block_on(server(Some(XfccLayer::new(trusted()))));
    let mut group = c.benchmark_group("keep-alive requests over loopback, trusted 1-element XFCC");
    group.throughput(Throughput::Elements(1));
    for (name, header) in [("Hash+Subject+URI", ISTIO), ("Hash+Cert", cert.as_str())] {
        group.bench_function(format!("no layer (baseline), {name}"), |b| {
            b.iter_custom(|n| rt.block_on(drive(plain, header, n)))
        });
        group.bench_function(format!("XfccLayer, {name}"), |b| {
            b.iter_custom(|n| rt.block_on(drive(layered, header, n)))
        });
    }
    group.finish();
}

fn in_process(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let cert = with_cert();
    let peer = PeerAddr("127.0.0.1:40000".parse().unwrap());
    let noop = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let layer = XfccLayer::new(trusted());
    let mut group = c.benchmark_group("XfccLayer work per request, in process");
    for (name, header) in [("Hash+Subject+URI", ISTIO), ("Hash+Cert", cert.as_str())] {
        let request = || {
            let mut req = Request::get("/")
                .header("x-forwarded-client-cert", header)
                .body(())
                .unwrap();
            req.extensions_mut().insert(peer);
            req
        };
        group.bench_function(format!("no layer (baseline), {name}"), |b| {
            let mut svc = noop;
            b.iter(|| {
                rt.block_on(async { svc.ready().await.unwrap().call(request()).await })
                    .unwrap()
            })
        });
        group.bench_function(format!("XfccLayer, {name}"), |b| {
            let mut svc = ServiceBuilder::new().layer(layer.clone()).service(noop);
            b.iter(|| {
                rt.block_on(async { svc.ready().await.unwrap().call(request()).await })
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// The same loopback comparison in alternating rounds, whose ratio is the
/// one to trust on a noisy machine (criterion's samples of each side are
/// taken minutes apart).
fn paired(_: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let cert = with_cert();
    let plain = rt.block_on(server(None));
    let layered = rt.block_on(server(Some(XfccLayer::new(trusted()))));
    for (name, header) in [("Hash+Subject+URI", ISTIO), ("Hash+Cert", cert.as_str())] {
        portcullis_test_support::paired_rounds(
            &format!("keep-alive requests, trusted 1-element XFCC ({name}): no layer -> XfccLayer"),
            24,
            10_000,
            |candidate, n| rt.block_on(drive(if candidate { layered } else { plain }, header, n)),
        );
    }
}

criterion_group!(benches, requests, in_process, paired);
criterion_main!(benches);
