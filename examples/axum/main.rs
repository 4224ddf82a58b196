//! The whole stack under plain `axum::serve`, configured from the
//! environment (the README's table), with handlers reading the extensions
//! through axum extractors.
//!
//! With TLS (`TLS_CERT`, `TLS_KEY`, and `TLS_CLIENT_CA` for client
//! certificates) it serves on portcullis's `TlsListener`; without, plain
//! HTTP (behind a proxy that terminates TLS, with `TRUSTED_PROXY_CIDRS`).
//!
//! ```text
//! TLS_CERT=server.pem TLS_KEY=server.key TLS_CLIENT_CA=ca.pem \
//! TENANTS_FILE=tenants.json RATE_LIMIT_PER_MIN=60 \
//!     cargo run --example axum --features axum
//! curl --cacert ca.pem --cert client.pem --key client.key \
//!      -H 'authorization: Bearer sk-...' https://127.0.0.1:8443/whoami
//! ```
//!
//! Routes: `GET /whoami` (the JSON every example shares), `GET /me` (the
//! extractors: `ClientIdentity`, `Tenant`, `ClientIp`) and
//! `GET /internal/usage` behind the internal-route guard
//! (`CONTROL_PLANE_INTERNAL_SECRET`; unset, it answers 404).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use portcullis::ServiceBuilderExt;
use portcullis::client_cert::{TlsAcceptor, TlsListener, WithTlsConnectInfo};
use portcullis::identity::{ClientIdentity, ClientIp, ClientIpLayer, PeerAddr, Tenant};
use tower::ServiceBuilder;

#[path = "../common/whoami.rs"]
mod whoami;

/// The extractors: each is absent (`None`) when its layer found nothing.
async fn me(
    identity: Option<ClientIdentity>,
    tenant: Option<Tenant>,
    ClientIp(ip): ClientIp,
) -> String {
    format!(
        "certificate {:?}, tenant {:?}, from {ip}\n",
        identity.as_ref().and_then(ClientIdentity::common_name),
        tenant.as_ref().map(Tenant::id),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let stack = match portcullis::from_env().await {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let public = Router::new()
        .route(
            "/whoami",
            get(|req: Request| async move { whoami::whoami(&req) }),
        )
        .route("/me", get(me))
        .layer(
            ServiceBuilder::new()
                // Plain HTTP: axum records the TCP peer as ConnectInfo; the
                // layers read PeerAddr. (The TLS listener sets both itself.)
                .map_request(|mut req: Request| {
                    if let Some(ConnectInfo(peer)) =
                        req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
                    {
                        req.extensions_mut().insert(PeerAddr(peer));
                    }
                    req
                })
                .portcullis(stack.layer())
                .layer(ClientIpLayer::new(stack.trusted_proxies().clone())),
        );
    // The internal routes beside the stack, behind the guard alone: the
    // stack removes x-internal-secret from everything it handles, so a
    // guard behind it would never see the secret.
    let internal = Router::new()
        .route("/internal/usage", get(|| async { whoami::usage() }))
        .layer(stack.internal_guard());
    let app = public.merge(internal);

    let addr = stack.listen_addr();
    let served = match stack.tls() {
        Some(tls) => {
            let config = match tls.tls.build() {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            let listener = match TlsListener::bind(addr, TlsAcceptor::new(config)).await {
                Ok(listener) => listener,
                Err(error) => {
                    eprintln!("LISTEN_ADDR={addr}: {error}");
                    return ExitCode::FAILURE;
                }
            };
            println!("listening on https://{addr}");
            axum::serve(listener, WithTlsConnectInfo::new(app)).await
        }
        None => {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(error) => {
                    eprintln!("LISTEN_ADDR={addr}: {error}");
                    return ExitCode::FAILURE;
                }
            };
            println!("listening on http://{addr} (no TLS_CERT: plaintext)");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("serving: {error}");
            ExitCode::FAILURE
        }
    }
}
