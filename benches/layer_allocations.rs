//! Heap allocations per request, the bare service against each layered
//! one of the `layers` bench (same requests, same services), counted by
//! an instrumented system allocator. Apart from `layers` because counting
//! slows every allocation, which would weigh on the timings.
//!
//! Run: `cargo bench -p portcullis --bench layer_allocations`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod layers_common;

use std::alloc::System;
use std::convert::Infallible;

use http::Request;
use layers_common::{Fixture, Measure, bare, request};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: u64 = 1000;

struct Allocations<'a>(&'a Fixture);

impl Allocations<'_> {
    /// Allocations and reallocations per request through `service`.
    fn per_request<S>(&self, service: &S, drive: fn(&Fixture, &S, u64)) -> f64
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        // Warm: first-use allocations (caches, lazily built values) aside.
        drive(self.0, service, 10);
        let region = Region::new(GLOBAL);
        drive(self.0, service, REQUESTS);
        let stats = region.change();
        (stats.allocations + stats.reallocations) as f64 / REQUESTS as f64
    }
}

// Two functions, never inlined, so that under
// `valgrind --tool=callgrind` each side's instructions are counted apart
// (the command is in BENCHMARKS.md).

#[inline(never)]
fn bare_side<S>(fixture: &Fixture, service: &S, n: u64)
where
    S: Service<Request<()>, Error = Infallible> + Clone,
{
    fixture.drive(service, n);
}

#[inline(never)]
fn layered_side<S>(fixture: &Fixture, service: &S, n: u64)
where
    S: Service<Request<()>, Error = Infallible> + Clone,
{
    fixture.drive(service, n);
}

impl Measure for Allocations<'_> {
    fn measure<S>(&mut self, name: &str, layered: S)
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        let future_size =
            |mut service: S| std::mem::size_of_val(&service.call(request(&self.0.connection)));
        let bare_future = std::mem::size_of_val(&bare().call(request(&self.0.connection)));
        let layered_future = future_size(layered.clone());
        let bare = self.per_request(&bare(), bare_side);
        let layered = self.per_request(&layered, layered_side);
        println!(
            "{name}: {bare:.1} -> {layered:.1} allocations per request ({:+.1}); response future {bare_future} -> {layered_future} bytes",
            layered - bare
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
        &mut Allocations(&fixture),
    );
}
