//! The whole stack around an axum `Router`, configured from the
//! environment (the README's table), with handlers reading the extensions
//! through axum extractors.
//!
//! The router is served by portcullis's `serve` (`ServeOptions`), not by
//! `axum::serve`: axum's sets no timer, so hyper's header-read timeout is
//! off under it, and a client sending one header byte every few seconds
//! holds its connection open for as long as it likes.
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

use portcullis::identity::env::Env;
use std::process::ExitCode;

#[path = "../common/exit.rs"]
mod exit;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use portcullis::PortcullisExt;
use portcullis::identity::{ClientIdentity, ClientIp, ClientIpLayer, Tenant};
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
    exit::code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Logs on stderr as RUST_LOG says (default: warnings). With the
    // `tracing` feature and RUST_LOG=debug, each request's `portcullis`
    // span (who, which tenant, what was decided) sits inside tower-http's
    // `request` span.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A line per span as it closes, with every field it recorded.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let stack = portcullis::from_env(&Env::process()).await?;
    for warning in stack.warnings() {
        eprintln!("warning: {warning}");
    }
    let public = Router::new()
        .route(
            "/whoami",
            get(|req: Request| async move { whoami::whoami(&req) }),
        )
        .route("/me", get(me))
        .layer(
            ServiceBuilder::new()
                .layer(tower_http::trace::TraceLayer::new_for_http())
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
