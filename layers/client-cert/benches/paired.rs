//! The three listener comparisons, measured in alternating rounds so that
//! the machine's drift (±10% from one run to the next here) falls on both
//! sides alike:
//!
//! - new mTLS handshakes/s: `TlsListener` vs a bare tokio-rustls accept
//!   loop (target ≥ 0.95×);
//! - keep-alive mTLS requests/s: the portcullis listener + `serve` vs
//!   axum-server with the same rustls config (target ≥ 1.0×);
//! - keep-alive mTLS requests/s: with `ClientCertLayer` vs without
//!   (target ≥ 0.98×);
//! - new mTLS handshakes/s with a PROXY v2 header read first, vs the same
//!   listener without (target ≥ 0.97×).
//!
//! Prints each comparison's ratio of totals and the median round ratio
//! (> 1: portcullis, or the layered stack, is faster).
//!
//! Run: `cargo bench -p portcullis-client-cert --bench paired`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::runtime::Runtime;

const ROUNDS: usize = 16;

/// Alternates `baseline` and `candidate` for `ROUNDS` rounds of `per_round`
/// operations each and prints the comparison.
fn compare<F, Fut>(
    rt: &Runtime,
    name: &str,
    per_round: u64,
    baseline: SocketAddr,
    candidate: SocketAddr,
    drive: F,
) where
    F: Fn(SocketAddr, u64) -> Fut,
    Fut: Future<Output = Duration>,
{
    portcullis_test_support::paired_rounds(name, ROUNDS, per_round, |candidate_side, n| {
        rt.block_on(drive(if candidate_side { candidate } else { baseline }, n))
    });
}

fn main() {
    // Only measure under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rt = Runtime::new().unwrap();
    let config = server_config();
    let bare = rt.block_on(spawn_bare_accept_loop(config.clone()));
    let greeter = rt.block_on(spawn_listener_greeter(config.clone()));
    let axum_server = rt.block_on(spawn_axum_server(config.clone()));
    let listener = rt.block_on(spawn_portcullis(config.clone(), false));
    let layered = rt.block_on(spawn_portcullis(config.clone(), true));
    let proxied = rt.block_on(spawn_listener_greeter_with(
        config,
        portcullis_client_cert::ProxyProtocol::new(
            portcullis_client_cert::ProxyProtocolVersions::V2,
            "127.0.0.1/32".parse().unwrap(),
        ),
    ));

    compare(
        &rt,
        "new mTLS handshakes: bare tokio-rustls -> TlsListener",
        400,
        bare,
        greeter,
        drive_handshakes,
    );
    compare(
        &rt,
        "keep-alive requests: axum-server -> portcullis listener",
        20_000,
        axum_server,
        listener,
        drive_requests,
    );
    compare(
        &rt,
        "keep-alive requests: no layer -> ClientCertLayer",
        20_000,
        listener,
        layered,
        drive_requests,
    );
    compare(
        &rt,
        "new mTLS handshakes: TlsListener -> TlsListener reading PROXY v2 first",
        400,
        greeter,
        proxied,
        move |addr, n| {
            drive_handshakes_after(addr, n, if addr == proxied { PROXY_V2 } else { &[] })
        },
    );
}
