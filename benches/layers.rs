//! The four layers' own work per request, in process: the stack from
//! `from_env` (in-memory stores, the certificate's CN as the rate key, a
//! bearer resolved by the tenants file) on a request as the TLS listener
//! hands it over, against the bare service, and each layer alone against
//! the same bare service. Where the whole-stack load bench (`stack`) says
//! how much slower, this says which layer it is. (`layer_allocations`
//! counts what each allocates.)
//!
//! Each comparison alternates the bare service and the layered one in
//! rounds (the machine's drift falls on both alike) and prints the ratio
//! of totals and the median round ratio (below 1: the layered service's
//! share of the bare one's speed), then each side's time per request and
//! what the layers add.
//!
//! Run: `cargo bench -p portcullis --bench layers [-- <name filter>]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod layers_common;

use std::convert::Infallible;

use http::Request;
use layers_common::{Fixture, Measure, bare};
use portcullis_test_support::{median, paired_rounds};
use tower::Service;

/// Many short rounds: on a shared host a burst of noise then spoils a
/// few rounds, which the medians set aside, rather than a side.
const ROUNDS: usize = 100;
const PER_ROUND: u64 = 4_000;

/// Each service against the bare one, in alternating rounds.
struct Paired<'a>(&'a Fixture);

impl Measure for Paired<'_> {
    fn measure<S>(&mut self, name: &str, layered: S)
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        let fixture = self.0;
        let bare = bare();
        let (mut bare_rounds, mut layered_rounds) = (Vec::new(), Vec::new());
        paired_rounds(name, ROUNDS, PER_ROUND, |candidate, n| {
            let took = if candidate {
                fixture.drive(&layered, n)
            } else {
                fixture.drive(&bare, n)
            };
            if n == PER_ROUND {
                let each = took.as_secs_f64() / n as f64 * 1e9;
                if candidate {
                    layered_rounds.push(each)
                } else {
                    bare_rounds.push(each)
                }
            }
            took
        });
        let (bare_each, layered_each) = (median(bare_rounds), median(layered_rounds));
        println!(
            "    medians: {bare_each:.0} ns -> {layered_each:.0} ns per request: {:.2}x the time, {:.0} ns added",
            layered_each / bare_each,
            layered_each - bare_each,
        );
    }
}

fn main() {
    // Only measure under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let fixture = Fixture::new();
    fixture.each_layered(
        portcullis_test_support::bench_filter().as_deref(),
        &mut Paired(&fixture),
    );
}
