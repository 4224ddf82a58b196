//! An app behind a reverse proxy that terminates mTLS: nginx (with
//! `examples/behind_proxy/nginx.conf`), HAProxy, Caddy, Envoy or a cloud
//! load balancer forwards the client certificate in a header, and
//! `XfccLayer` turns it into the same `ClientIdentity` a directly
//! terminated connection gets, but only from the proxies you trust.
//!
//! ```text
//! TRUSTED_PROXY_CIDRS=127.0.0.1/32 FORWARDED_CERT_FORMAT=nginx \
//! FORWARDED_CERT_HEADER=x-client-cert cargo run --example behind_proxy
//! nginx -p /var/lib/portcullis/nginx -c examples/behind_proxy/nginx.conf -e stderr
//! curl --cacert ca.pem --cert client.pem --key client.key https://localhost:8443/whoami
//! ```
//!
//! `GET /whoami` answers what the application saw, as JSON (the shape every
//! example shares). `LISTEN_ADDR` defaults to `127.0.0.1:8080`, where
//! the nginx configuration sends requests.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use portcullis::client_cert::serve_tcp;
use portcullis::identity::env::Env;
use portcullis::identity::{ClientIpLayer, TrustedProxies};
use portcullis::xfcc::XfccLayer;
use tower::ServiceBuilder;

#[path = "../common/whoami.rs"]
mod whoami;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::process();
    let proxies = TrustedProxies::from_env(&env).map_err(|e| format!("configuration: {e}"))?;
    let xfcc = XfccLayer::from_env(&env, &proxies).map_err(|e| format!("configuration: {e}"))?;
    if proxies.is_empty() {
        eprintln!(
            "TRUSTED_PROXY_CIDRS is empty: no proxy is trusted, so every forwarded \
             certificate header will be removed. Set it to your proxy's address, e.g. 127.0.0.1/32."
        );
    }
    let addr: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".to_owned())
        .parse()
        .map_err(|e| format!("LISTEN_ADDR: {e}; write an address such as 127.0.0.1:8080"))?;

    let app = Router::new()
        .route(
            "/whoami",
            get(|req: Request| async move { whoami::whoami(&req) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(xfcc)
                .layer(ClientIpLayer::new(proxies.clone())),
        );

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR={addr}: {e}"))?;
    println!(
        "listening on http://{}; trusting {:?}",
        listener.local_addr()?,
        proxies.nets()
    );
    // portcullis's serve: each request carries its TCP peer (which the
    // layer trusts or not), and slow clients are cut off (axum::serve sets
    // no header-read timeout).
    serve_tcp(listener, app, std::future::pending()).await;
    Ok(())
}
