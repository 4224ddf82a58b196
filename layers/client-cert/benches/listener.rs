//! The TLS listener and ClientCertLayer against their baselines, in the
//! same run, on loopback, with a load driver that presents a client
//! certificate (wrk cannot):
//!
//! - keep-alive requests (16 HTTP/1.1 connections, mTLS): axum-server with
//!   the same rustls `ServerConfig` and no layers (baseline), the portcullis
//!   listener with no layer, and with `ClientCertLayer::new().required()`;
//!   targets: listener ≥ 1.0× axum-server, layer on ≥ 0.98× layer off.
//! - new mTLS handshakes (8 concurrent clients, no resumption): a bare
//!   tokio-rustls accept loop (baseline) vs `TlsListener`; target ≥ 0.95×.
//!
//! Criterion reports time per request or handshake; throughput ratios are
//! the inverse of time ratios. Run: `cargo bench -p portcullis-client-cert`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    drive_handshakes, drive_requests, server_config, spawn_axum_server, spawn_bare_accept_loop,
    spawn_listener_greeter, spawn_portcullis,
};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

fn requests(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let config = server_config();
    let axum_server = rt.block_on(spawn_axum_server(config.clone()));
    let bare = rt.block_on(spawn_portcullis(config.clone(), false));
    let layered = rt.block_on(spawn_portcullis(config, true));

    let mut group = c.benchmark_group("keep-alive mTLS request");
    group.bench_function(
        "axum-server 0.9, same rustls config, no layers (baseline)",
        |b| b.iter_custom(|iters| rt.block_on(drive_requests(axum_server, iters))),
    );
    group.bench_function("portcullis TlsListener + serve, no layer", |b| {
        b.iter_custom(|iters| rt.block_on(drive_requests(bare, iters)))
    });
    group.bench_function("portcullis TlsListener + serve + ClientCertLayer", |b| {
        b.iter_custom(|iters| rt.block_on(drive_requests(layered, iters)))
    });
    group.finish();
}

fn handshakes(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let config = server_config();
    let bare = rt.block_on(spawn_bare_accept_loop(config.clone()));
    let listener = rt.block_on(spawn_listener_greeter(config));

    let mut group = c.benchmark_group("new mTLS handshake");
    group.bench_function("tokio-rustls bare accept loop (baseline)", |b| {
        b.iter_custom(|iters| rt.block_on(drive_handshakes(bare, iters)))
    });
    group.bench_function("portcullis TlsListener", |b| {
        b.iter_custom(|iters| rt.block_on(drive_handshakes(listener, iters)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(8));
    targets = requests, handshakes
}
criterion_main!(benches);
