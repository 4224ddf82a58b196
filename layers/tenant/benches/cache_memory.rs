//! Heap per cached key of the control-plane resolver at a million keys
//! (target ≤ 200 B), against the least any map of the same answers takes:
//! a `HashMap<Principal, Resolution>` holding the same keys, each tenant
//! once.
//!
//! The cache is filled the way a deployment fills it: every key resolved
//! once through a control plane on loopback (64 lookups in flight), which
//! answers one of 4,096 tenants by the key's digest (about 244 keys per
//! tenant at a million keys). Bytes are counted by an instrumented system
//! allocator (allocated minus freed, from the resolver's construction to
//! the last answer), so neither page rounding nor the allocator's arenas
//! blur them.
//!
//! Run: `cargo bench -p portcullis-tenant --bench cache_memory`
//! (`CACHE_BENCH_KEYS` sets the key count, default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::System;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{
    CachePolicy, ControlPlane, ControlPlaneResolver, Principal, Resolution, TenantResolver,
};
use portcullis_test_support::{bench_service, serve_loopback};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::service_fn;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const IN_FLIGHT: usize = 64;

/// The tenant a key belongs to: one of 4,096, by its digest's first
/// three hex digits.
fn tenant_of(query: &str) -> &str {
    query
        .split_once("sha256=")
        .map_or("none", |(_, hex)| &hex[..3])
}

/// A control plane that knows every key: tenant `t-<xyz>` by
/// [`tenant_of`], caller `billing`.
async fn control_plane() -> SocketAddr {
    serve_loopback(bench_service(service_fn(
        |req: Request<Incoming>| async move {
            let tenant = tenant_of(req.uri().query().unwrap_or(""));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                r#"{{"active": true, "consumer": "billing", "tenant_id": "t-{tenant}"}}"#
            )))))
        },
    )))
    .await
}

fn digest(i: usize) -> BearerDigest {
    BearerDigest::of_token(format!("sk-cache-bench-{i}"))
}

fn key(i: usize) -> Principal {
    Principal::Bearer(digest(i))
}

/// Net heap bytes `work` leaves allocated.
fn retained<T>(work: impl FnOnce() -> T) -> (T, i64) {
    let region = Region::new(GLOBAL);
    let value = work();
    let stats = region.change();
    // A reallocation's growth is in `bytes_allocated` already (and its
    // shrinking in `bytes_deallocated`).
    let net = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
    (value, net)
}

fn main() {
    // Only measure under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let keys: usize = std::env::var("CACHE_BENCH_KEYS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let addr = portcullis_test_support::on_own_thread(control_plane);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = CachePolicy {
        positive_ttl: Duration::from_secs(3600),
        capacity: keys,
        max_in_flight: IN_FLIGHT,
        ..CachePolicy::default()
    };
    let control_plane = ControlPlane::new(&format!("http://{addr}"), "bench-secret").unwrap();
    let started = Instant::now();
    let (resolver, cache_bytes) = retained(|| {
        let resolver = Arc::new(ControlPlaneResolver::with_policy(control_plane, policy).unwrap());
        rt.block_on(async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|task| {
                    let resolver = resolver.clone();
                    tokio::spawn(async move {
                        for i in (task..keys).step_by(IN_FLIGHT) {
                            let answer = resolver.resolve(&key(i)).await.unwrap();
                            assert!(matches!(answer, Resolution::Active(_)));
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        resolver
    });
    let cached = resolver.cached_entries().unwrap();
    assert!(cached >= keys, "{cached} of {keys} keys cached");

    let (map, map_bytes) = retained(|| {
        let mut tenants = HashMap::new();
        let mut map = HashMap::new();
        for i in 0..keys {
            let digest = digest(i);
            let id = format!("t-{}", tenant_of(&format!("sha256={}", digest.to_hex())));
            let tenant = tenants
                .entry(id.clone())
                .or_insert_with(|| Tenant::new(id, TenantStatus::Active).with_caller("billing"))
                .clone();
            map.insert(Principal::Bearer(digest), Resolution::of(tenant));
        }
        map
    });
    println!(
        "tenant cache at {keys} keys (filled in {:.1} s): {:.0} B per key; \
         HashMap<Principal, Resolution> of the same: {:.0} B per key; ratio {:.2}",
        started.elapsed().as_secs_f64(),
        cache_bytes as f64 / keys as f64,
        map_bytes as f64 / keys as f64,
        cache_bytes as f64 / map_bytes as f64,
    );
    drop((map, resolver));
}
