//! The Redis store against the raw `redis` crate running the same script,
//! in the same run, on a redis-server started here on loopback:
//!
//! - checks/s through `RedisLimiter` vs a bare `EVALSHA` of `GCRA_SCRIPT`
//!   (one at a time, and 32 in flight);
//! - a refused key answered from the local cache vs that round trip.
//!
//! Run: `cargo bench -p portcullis-rate-limit --features redis --bench redis`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_identity::Quota;
use portcullis_rate_limit::{BucketKey, GCRA_SCRIPT, Limiter, Outcome, RedisOptions};
use portcullis_test_support::{TempDir, free_port, redis_server};
use redis::aio::ConnectionManager;

/// The raw baseline: the same script, the same arguments, no store.
async fn raw_evalsha(connection: &mut ConnectionManager, sha: &str, key: &str) -> Vec<i64> {
    redis::cmd("EVALSHA")
        .arg(sha)
        .arg(1)
        .arg(key)
        .arg(0)
        .arg(1u64) // T: 1 µs
        .arg(1_000_000u64) // capacity: a million
        .arg(1)
        .query_async(connection)
        .await
        .unwrap()
}

fn key(n: u8) -> BucketKey {
    BucketKey([n; 16])
}

fn redis(c: &mut Criterion) {
    let dir = TempDir::new("redis-bench");
    let port = free_port();
    let Some(_server) = redis_server(&dir, port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (store, mut raw, sha) = runtime.block_on(async {
        let store = RedisOptions::default()
            .timeout(Duration::from_secs(1))
            .connect(&url)
            .await
            .unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut raw = ConnectionManager::new(client).await.unwrap();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GCRA_SCRIPT)
            .query_async(&mut raw)
            .await
            .unwrap();
        (store, raw, sha)
    });
    // A million a second, bursts of a million: every check allowed, every
    // check a round trip. The same T and capacity as the raw call.
    let open = Quota::new(1_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let raw_key = store.redis_key(&key(2), &open);

    let mut group = c.benchmark_group("redis check, one at a time");
    group.bench_function("raw EVALSHA (baseline)", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(raw_evalsha(&mut raw, &sha, &raw_key).await) })
        })
    });
    group.bench_function("RedisLimiter", |b| {
        b.iter(|| {
            runtime.block_on(async {
                black_box(store.check(key(1), &open, 1).await.unwrap().is_allowed())
            })
        })
    });
    group.finish();

    const IN_FLIGHT: usize = 32;
    let mut group = c.benchmark_group("redis check, 32 in flight");
    group.throughput(criterion::Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("raw EVALSHA (baseline)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let (mut raw, sha, raw_key) = (raw.clone(), sha.clone(), raw_key.clone());
                    tasks.spawn(async move { raw_evalsha(&mut raw, &sha, &raw_key).await.len() });
                }
                black_box(tasks.join_all().await)
            })
        })
    });
    group.bench_function("RedisLimiter", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let store = store.clone();
                    tasks.spawn(async move { store.check(key(1), &open, 1).await.is_ok() });
                }
                black_box(tasks.join_all().await)
            })
        })
    });
    group.finish();

    // Empty a bucket once; from then on it is refused from the cache.
    let tight = Quota::per_minute(1, 1).unwrap();
    runtime.block_on(async {
        assert!(store.check(key(3), &tight, 1).await.unwrap().is_allowed());
        assert!(matches!(
            store.check(key(3), &tight, 1).await.unwrap(),
            Outcome::Denied { .. }
        ));
    });
    let mut group = c.benchmark_group("refused key");
    group.bench_function("round trip: raw EVALSHA (baseline)", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(raw_evalsha(&mut raw, &sha, &raw_key).await) })
        })
    });
    group.bench_function("RedisLimiter, from the local cache", |b| {
        b.iter(|| {
            // Answered without a future to run: the check is ready at once.
            let answer = store.check(key(3), &tight, 1).now();
            black_box(matches!(answer, Ok(Ok(Outcome::Denied { .. }))))
        })
    });
    group.finish();
}

criterion_group!(benches, redis);
criterion_main!(benches);
