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
use layers_common::{Fixture, Measure, bare, filter};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: u64 = 1000;

struct Allocations<'a>(&'a Fixture);

impl Allocations<'_> {
    /// Allocations and reallocations per request through `service`.
    fn per_request<S>(&self, service: &S) -> f64
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        // Warm: first-use allocations (caches, lazily built values) aside.
        self.0.drive(service, 10);
        let region = Region::new(GLOBAL);
        self.0.drive(service, REQUESTS);
        let stats = region.change();
        (stats.allocations + stats.reallocations) as f64 / REQUESTS as f64
    }
}

impl Measure for Allocations<'_> {
    fn measure<S>(&mut self, name: &str, layered: S)
    where
        S: Service<Request<()>, Error = Infallible> + Clone,
    {
        let bare = self.per_request(&bare());
        let layered = self.per_request(&layered);
        println!(
            "{name}: {bare:.1} -> {layered:.1} allocations per request ({:+.1})",
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
    fixture.each_layered(filter().as_deref(), &mut Allocations(&fixture));
}
