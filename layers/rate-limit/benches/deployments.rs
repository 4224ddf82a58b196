//! Rate limits as deployments run them, each against its baseline in the
//! same run, in paired rounds (> 1: the candidate is faster):
//!
//! - two policies checked together (one lock, one round trip) against the
//!   same two checked one after the other, in memory and in Redis (one
//!   request at a time: the round trip is the cost);
//! - the store on a three-node Redis Cluster against redis-rs's own
//!   cluster client sending the same script, 32 in flight;
//! - the store over TLS against plaintext, on one redis-server.
//!
//! Run: `cargo bench -p portcullis-rate-limit --features redis --bench deployments`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_identity::Quota;
use portcullis_rate_limit::{
    BucketKey, GCRA_SCRIPT, Limiter, MemoryLimiter, RedisLimiter, RedisOptions, SystemClock,
    WhenFull,
};
use portcullis_test_support::{
    RedisCluster, TempDir, free_port, paired_rounds, pki, redis_server, redis_tls_and_plain_server,
};

const IN_FLIGHT: usize = 32;

/// Whether `name` runs: every bench, or those a filter argument names
/// (`cargo bench --bench deployments -- cluster`).
fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

fn key(n: u64) -> BucketKey {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    BucketKey(bytes)
}

/// Never refuses: every check does the whole work.
fn open(per: Duration) -> Quota {
    Quota::new(1_000_000, per, 1_000_000).unwrap()
}

/// The two policies the two-policy benches check: a second and an hour.
fn second_and_hour() -> (Quota, Quota) {
    (
        open(Duration::from_secs(1)),
        open(Duration::from_secs(3600)),
    )
}

/// The store on `url` with a timeout no round trip here reaches.
async fn connect(url: &str, options: RedisOptions) -> RedisLimiter {
    options
        .timeout(Duration::from_secs(1))
        .connect(url)
        .await
        .unwrap()
}

fn two_policies_in_memory(_: &mut Criterion) {
    if !selected("two_policies_in_memory") {
        return;
    }
    let store = MemoryLimiter::new(1 << 20, WhenFull::default(), SystemClock::new());
    let (second, hour) = second_and_hour();
    paired_rounds(
        "two policies, in memory: two checks in sequence -> check_all of both",
        24,
        1_000_000,
        |together, n| {
            let start = Instant::now();
            for i in 0..n {
                let k = key(i % 16);
                if together {
                    black_box(store.check_all(&[(k, second, 1), (k, hour, 1)]));
                } else {
                    black_box(store.check(k, &second, 1));
                    black_box(store.check(k, &hour, 1));
                }
            }
            start.elapsed()
        },
    );
}

/// The same two policies through the layer: one layer with both, against
/// two layers stacked, one policy each (what a deployment without
/// several policies per layer would do).
fn two_policies_through_the_layer(_: &mut Criterion) {
    use portcullis_identity::BearerDigest;
    use portcullis_rate_limit::{KeyChain, KeySource, Policy, RateLimitLayer};
    use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
    if !selected("two_policies_through_the_layer") {
        return;
    }
    let store = Arc::new(MemoryLimiter::new(
        1 << 20,
        WhenFull::default(),
        SystemClock::new(),
    ));
    let (second, hour) = second_and_hour();
    let (second, hour) = (
        Policy::new("second", second).unwrap(),
        Policy::new("hour", hour).unwrap(),
    );
    let layer = |policies: Vec<Policy>| {
        RateLimitLayer::new(store.clone(), KeyChain::new([KeySource::Bearer]))
            .policies(policies)
            .unwrap()
    };
    let app = service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut stacked = ServiceBuilder::new()
        .layer(layer(vec![second.clone()]))
        .layer(layer(vec![hour.clone()]))
        .service(app);
    let mut together = ServiceBuilder::new()
        .layer(layer(vec![second, hour]))
        .service(app);
    let digests: Vec<BearerDigest> = (0..16)
        .map(|i| BearerDigest::of_token(format!("sk-{i}")))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    paired_rounds(
        "two policies through the layer: two layers stacked -> one layer with both",
        24,
        200_000,
        |one_layer, n| {
            let start = Instant::now();
            runtime.block_on(async {
                for i in 0..n {
                    let mut req = http::Request::new(());
                    req.extensions_mut().insert(digests[(i % 16) as usize]);
                    let status = if one_layer {
                        together
                            .ready()
                            .await
                            .unwrap()
                            .call(req)
                            .await
                            .unwrap()
                            .status()
                    } else {
                        stacked
                            .ready()
                            .await
                            .unwrap()
                            .call(req)
                            .await
                            .unwrap()
                            .status()
                    };
                    black_box(status);
                }
            });
            start.elapsed()
        },
    );
}

/// `n` rounds of 32 checks in flight through `run`.
fn in_flight<F, Fut>(runtime: &tokio::runtime::Runtime, n: u64, run: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let start = Instant::now();
    runtime.block_on(async {
        for round in 0..n {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..IN_FLIGHT as u64 {
                tasks.spawn(run(round * IN_FLIGHT as u64 + i));
            }
            assert!(tasks.join_all().await.into_iter().all(|ok| ok));
        }
    });
    start.elapsed()
}

fn two_policies_in_redis(_: &mut Criterion) {
    if !selected("two_policies_in_redis") {
        return;
    }
    let dir = TempDir::new("bench-redis-policies");
    let port = free_port();
    let Some(_server) = redis_server(&dir, port) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(connect(
        &format!("redis://127.0.0.1:{port}/"),
        RedisOptions::default(),
    ));
    let (second, hour) = second_and_hour();
    paired_rounds(
        "two policies, Redis, one request at a time: two round trips in sequence -> one check_all",
        12,
        2_000,
        |together, n| {
            let start = Instant::now();
            runtime.block_on(async {
                for i in 0..n {
                    let k = key(i % 64);
                    let ok = if together {
                        store
                            .check_all(&[(k, second, 1), (k, hour, 1)])
                            .await
                            .is_ok()
                    } else {
                        store.check(k, &second, 1).await.is_ok()
                            && store.check(k, &hour, 1).await.is_ok()
                    };
                    assert!(ok);
                }
            });
            start.elapsed()
        },
    );
}

fn cluster(_: &mut Criterion) {
    if !selected("cluster") {
        return;
    }
    let dir = TempDir::new("bench-redis-cluster");
    let Some(cluster) = RedisCluster::start(&dir) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes: Vec<String> = cluster.url().split(',').map(str::to_owned).collect();
    let (store, raw, sha) = runtime.block_on(async {
        let store = connect(&cluster.url(), RedisOptions::default()).await;
        let client = redis::cluster::ClusterClient::new(nodes).unwrap();
        let raw = client.get_async_connection().await.unwrap();
        let sha = redis::Script::new(GCRA_SCRIPT).get_hash().to_owned();
        (store, raw, sha)
    });
    let quota = open(Duration::from_secs(1));
    let names: Arc<Vec<String>> =
        Arc::new((0..64).map(|i| store.redis_key(&key(i), &quota)).collect());
    paired_rounds(
        "Redis Cluster (3 nodes), 32 in flight: redis-rs cluster EVALSHA -> RedisLimiter",
        24,
        300,
        |ours, n| {
            in_flight(&runtime, n, |i| {
                let (store, mut raw, sha, names) =
                    (store.clone(), raw.clone(), sha.clone(), names.clone());
                async move {
                    if ours {
                        store.check(key(i % 64), &quota, 1).await.is_ok()
                    } else {
                        // The same script and arguments as the store sends.
                        let reply: Result<Vec<i64>, _> = redis::cmd("EVALSHA")
                            .arg(&sha)
                            .arg(1)
                            .arg(&names[(i % 64) as usize])
                            .arg(0)
                            .arg(1u64)
                            .arg(1_000_000u64)
                            .arg(1)
                            .query_async(&mut raw)
                            .await;
                        reply.is_ok()
                    }
                }
            })
        },
    );
}

fn tls(_: &mut Criterion) {
    if !selected("tls") {
        return;
    }
    let dir = TempDir::new("bench-redis-tls");
    let (tls_port, plain_port) = (free_port(), free_port());
    let Some(_server) = redis_tls_and_plain_server(&dir, tls_port, plain_port) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let with_roots = |url: String| {
        runtime.block_on(connect(
            &url,
            RedisOptions::default().tls_roots_pem(pki().ca().cert_pem()),
        ))
    };
    let plain: RedisLimiter = with_roots(format!("redis://127.0.0.1:{plain_port}/"));
    let over_tls: RedisLimiter = with_roots(format!("rediss://localhost:{tls_port}/"));
    let quota = open(Duration::from_secs(1));
    paired_rounds(
        "Redis, 32 in flight: plaintext -> TLS, one server",
        24,
        300,
        |tls, n| {
            in_flight(&runtime, n, |i| {
                let store = if tls { over_tls.clone() } else { plain.clone() };
                async move { store.check(key(i % 64), &quota, 1).await.is_ok() }
            })
        },
    );
}

criterion_group!(
    benches,
    two_policies_in_memory,
    two_policies_through_the_layer,
    two_policies_in_redis,
    cluster,
    tls
);
criterion_main!(benches);
