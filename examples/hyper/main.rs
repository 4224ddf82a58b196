//! The whole stack with no framework: hyper-util's automatic HTTP/1.1 and
//! h2 server, `TowerToHyperService`, and a `service_fn` for the routes.
//!
//! ```text
//! TLS_CERT=server.pem TLS_KEY=server.key TLS_CLIENT_CA=ca.pem \
//! TENANTS_FILE=tenants.json RATE_LIMIT_PER_MIN=60 cargo run --example hyper
//! curl --cacert ca.pem --cert client.pem --key client.key \
//!      -H 'authorization: Bearer sk-...' https://127.0.0.1:8443/whoami
//! ```
//!
//! Without `TLS_CERT` it serves plain HTTP, each request carrying its TCP
//! peer as `PeerAddr`. Routes: `GET /whoami`, and `GET /internal/usage`
//! behind the internal-route guard; anything else is 404.

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::process::ExitCode;

#[path = "../common/exit.rs"]
mod exit;

use http::{Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use portcullis::PortcullisExt;
use portcullis::identity::ClientIpLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[path = "../common/whoami.rs"]
mod whoami;

async fn route(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(match req.uri().path() {
        "/whoami" => whoami::whoami(&req),
        "/internal/usage" => whoami::usage(),
        _ => {
            let mut res = Response::new("not found\n".to_owned());
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    exit::code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let stack = portcullis::from_env(&Env::process()).await?;
    for warning in stack.warnings() {
        eprintln!("warning: {warning}");
    }
    // /internal/* goes to the guard beside the stack: the stack removes
    // x-internal-secret from everything it handles, so a guard behind it
    // would never see the secret. Everything else goes through the stack.
    let guarded = ServiceBuilder::new()
        .layer(stack.internal_guard())
        .service_fn(route);
    let public = ServiceBuilder::new()
        .portcullis(stack.layer())
        .layer(ClientIpLayer::new(stack.trusted_proxies().clone()))
        .service_fn(route);
    let app = service_fn(move |req: Request<Incoming>| {
        let (guarded, public) = (guarded.clone(), public.clone());
        async move {
            if req.uri().path().starts_with("/internal/") {
                guarded.oneshot(req).await.map(|res| res.map(Either::Left))
            } else {
                public.oneshot(req).await.map(|res| res.map(Either::Right))
            }
        }
    });

    // LISTEN_ADDR, TLS when TLS_CERT and TLS_KEY are set; served by
    // hyper-util with a timer (header-read timeout, h2 pings, a connection
    // cap), each request carrying its PeerAddr (and TlsConnectInfo).
    let listening = stack.bind().await?;
    // METRICS_ADDR (feature metrics): Prometheus's GET /metrics.
    if let Some(url) = listening.metrics_url() {
        println!("metrics on {url}");
    }
    if listening.is_tls() {
        println!("listening on {}", listening.url());
    } else {
        println!("listening on {} (no TLS_CERT: plaintext)", listening.url());
    }
    // SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    // within SHUTDOWN_GRACE_SECS, then exit 0.
    listening
        .serve(app, portcullis::client_cert::shutdown_signal())
        .await;
    println!("stopped");
    Ok(())
}
