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
use axum::extract::{ConnectInfo, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use portcullis::identity::{ClientIdentity, ClientIp, ClientIpLayer, PeerAddr};
use portcullis::xfcc::XfccLayer;
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// The `/whoami` contract: identity, client IP, tenant, rate limit, and
/// every header exactly as the application received it.
async fn whoami(req: Request) -> impl IntoResponse {
    let identity = req.extensions().get::<ClientIdentity>().map(|id| {
        json!({
            "source": id.source().as_str(),
            "subject": id.subject(),
            "common_name": id.common_name(),
            "spiffe_id": id.spiffe_id().map(|s| s.as_str()),
            "fingerprint_sha256": id.fingerprint_sha256_hex(),
            "dns_names": id.dns_names(),
            "uris": id.uris(),
        })
    });
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let body = json!({
        "identity": identity,
        "client_ip": req.extensions().get::<ClientIp>().map(|ip| ip.0.to_string()),
        "tenant": null,
        "rate_limit": null,
        "headers": headers,
    });
    ([(CONTENT_TYPE, "application/json")], format!("{body}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let xfcc = XfccLayer::from_env().map_err(|e| format!("configuration: {e}"))?;
    let proxies = xfcc.proxies().clone();
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

    let app = Router::new().route("/whoami", get(whoami)).layer(
        ServiceBuilder::new()
            // axum records the TCP peer as ConnectInfo; the layers read PeerAddr.
            .map_request(|mut req: Request| {
                if let Some(ConnectInfo(peer)) =
                    req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
                {
                    req.extensions_mut().insert(PeerAddr(peer));
                }
                req
            })
            .layer(xfcc)
            .layer(ClientIpLayer::new(proxies.clone())),
    );

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR={addr}: {e}"))?;
    println!("listening on http://{addr}; trusting {:?}", proxies.nets());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
