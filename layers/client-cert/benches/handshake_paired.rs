//! New mTLS handshakes: `TlsListener` vs a bare tokio-rustls accept loop,
//! measured in alternating rounds so that the machine's drift (±10% from
//! one run to the next here) falls on both sides alike. Prints each
//! round's ratio and the median; ratio > 1 means the listener is faster.
//!
//! Run: `cargo bench -p portcullis-client-cert --bench handshake_paired`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const ROUNDS: usize = 16;
const PER_ROUND: u64 = 400;

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args;
    // only measure under `cargo bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = server_config();
    let bare = rt.block_on(spawn_bare_accept_loop(config.clone()));
    let listener = rt.block_on(spawn_listener_greeter(config));
    // Warm both.
    rt.block_on(drive_handshakes(bare, 200));
    rt.block_on(drive_handshakes(listener, 200));

    let mut ratios = Vec::new();
    let (mut bare_total, mut listener_total) = (0.0, 0.0);
    for round in 0..ROUNDS {
        // Alternate which goes first, too.
        let (b, l) = if round % 2 == 0 {
            let b = rt.block_on(drive_handshakes(bare, PER_ROUND));
            (b, rt.block_on(drive_handshakes(listener, PER_ROUND)))
        } else {
            let l = rt.block_on(drive_handshakes(listener, PER_ROUND));
            (rt.block_on(drive_handshakes(bare, PER_ROUND)), l)
        };
        bare_total += b.as_secs_f64();
        listener_total += l.as_secs_f64();
        let ratio = b.as_secs_f64() / l.as_secs_f64();
        println!(
            "round {round:2}: bare {:7.0}/s  listener {:7.0}/s  ratio {ratio:.3}",
            PER_ROUND as f64 / b.as_secs_f64(),
            PER_ROUND as f64 / l.as_secs_f64()
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "handshakes/s: bare tokio-rustls {:.0}, TlsListener {:.0}; ratio of totals {:.3}, median round ratio {:.3} (min {:.3}, max {:.3})",
        PER_ROUND as f64 * ROUNDS as f64 / bare_total,
        PER_ROUND as f64 * ROUNDS as f64 / listener_total,
        bare_total / listener_total,
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1]
    );
}
