//! Rate limits per route: a strict policy on `/login`, a looser one on
//! everything, both in one store and keyed by the client address, side
//! by side. A policy's name is part of its buckets, so a login attempt is
//! counted under `login` *and* `api`, and browsing spends only `api`.
//! Handlers read what was decided through the `RateLimitDecision`
//! extractor.
//!
//! ```text
//! cargo run --example per_route --features axum
//! curl -X POST http://127.0.0.1:8080/login      # 3 a minute
//! curl http://127.0.0.1:8080/data               # 100 a minute
//! ```
//!
//! `LISTEN_ADDR` (default `127.0.0.1:8080`), `LOGIN_POLICY` (default
//! `login:3/m`) and `API_POLICY` (default `api:100/m`), in
//! `RATE_LIMIT_POLICIES`' syntax (several, comma-separated, are checked
//! together: all or nothing).

use std::process::ExitCode;

#[path = "common/exit.rs"]
mod exit;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use portcullis::client_cert::{serve_tcp, shutdown_signal};
use portcullis::identity::TrustedProxies;
use portcullis::rate_limit::{
    KeyChain, KeySource, MemoryLimiter, Policy, RateLimitDecision, RateLimitLayer, SystemClock,
    WhenFull,
};

/// The budget left under every policy, tightest first.
fn report(decision: &RateLimitDecision) -> String {
    let mut text = format!("cost {};", decision.cost);
    for policy in &decision.policies {
        text.push_str(&format!(
            " {} remaining={} of {}/{}s;",
            policy.name, policy.remaining, policy.limit, policy.window
        ));
    }
    text.push('\n');
    text
}

async fn login(decision: RateLimitDecision) -> String {
    format!("logged in; {}", report(&decision))
}

async fn data(decision: RateLimitDecision) -> String {
    format!("data; {}", report(&decision))
}

fn policies(var: &str, default: &str) -> Result<Vec<Policy>, String> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    Policy::parse_list(&text).map_err(|e| format!("{var}={text:?}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    exit::code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // One store for both layers; buckets are key and policy.
    let store = Arc::new(MemoryLimiter::new(
        100_000,
        WhenFull::default(),
        SystemClock::new(),
    ));
    let by_address = || KeyChain::new([KeySource::ClientIp(TrustedProxies::none())]);
    let strict = RateLimitLayer::new(store.clone(), by_address())
        .policies(policies("LOGIN_POLICY", "login:3/m")?)?;
    let loose =
        RateLimitLayer::new(store, by_address()).policies(policies("API_POLICY", "api:100/m")?)?;
    let app = Router::new()
        .route("/login", post(login).route_layer(strict))
        .route("/data", get(data))
        .layer(loose);

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR={addr}: {e}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    // Each request carries its TCP peer: the `ip` key.
    serve_tcp(listener, app, shutdown_signal()).await;
    Ok(())
}
