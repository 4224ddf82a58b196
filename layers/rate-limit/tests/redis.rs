//! The Redis store against a real `redis-server` on a free loopback port.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_identity::Quota;
use portcullis_identity::TrustedProxies;
use portcullis_identity::env::Env;
use portcullis_rate_limit::{
    BucketKey, KeyChain, KeySource, Limiter, ManualClock, MemoryLimiter, OnStoreError, Outcome,
    RateLimitEnv, RateLimitLayer, RedisLimiter, RedisOptions, StoreErrorKind, WhenFull,
};
use portcullis_test_support::{Daemon, TempDir, free_port, redis_server};
use proptest::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A redis-server for one test; `None` when skipped.
struct Redis {
    dir: TempDir,
    port: u16,
    daemon: Option<Daemon>,
}

impl Redis {
    fn start() -> Option<Redis> {
        let dir = TempDir::new("redis");
        let port = free_port();
        let daemon = redis_server(&dir, port)?;
        Some(Redis {
            dir,
            port,
            daemon: Some(daemon),
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        self.daemon = None;
    }

    fn restart(&mut self) {
        self.daemon = redis_server(&self.dir, self.port);
    }

    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

fn key(n: u8) -> BucketKey {
    BucketKey([n; 16])
}

async fn check(store: &impl Limiter, key: BucketKey, quota: &Quota) -> Outcome {
    store.check(key, quota, 1).await.unwrap()
}

#[tokio::test]
async fn two_instances_share_one_quota() {
    let Some(redis) = Redis::start() else { return };
    // Two independent stores: own connections, own local caches.
    let a = RedisLimiter::connect(&redis.url()).await.unwrap();
    let b = RedisLimiter::connect(&redis.url()).await.unwrap();
    let quota = Quota::per_minute(60, 5).unwrap();
    let mut allowed = 0;
    for n in 0..12 {
        let store = if n % 2 == 0 { &a } else { &b };
        if check(store, key(1), &quota).await.is_allowed() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "the burst is shared, not doubled");
    // The refusal carries Redis's wait: one emission interval, 1 s.
    match check(&b, key(1), &quota).await {
        Outcome::Denied { retry_after, reset } => {
            assert!(
                retry_after <= Duration::from_secs(1) && retry_after > Duration::from_millis(900)
            );
            assert!(reset <= Duration::from_secs(5) && reset > Duration::from_secs(4));
        }
        other => panic!("{other:?}"),
    }
    // Another key is another bucket.
    assert!(check(&a, key(2), &quota).await.is_allowed());
    // One bucket, one Redis key, expiring once it is full again; the hash
    // tag is the half a key's policies share (one Cluster slot).
    let name = a.redis_key(&key(1), &quota);
    assert_eq!(
        name,
        "portcullis:rl:{0101010101010101}0101010101010101:60000000"
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    assert!(ttl > 4_000 && ttl <= 5_000, "PTTL {ttl}");
}

#[tokio::test]
async fn two_layers_on_two_instances_share_one_quota() {
    let Some(redis) = Redis::start() else { return };
    let quota = Quota::per_minute(60, 2).unwrap();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisLimiter::connect(&redis.url()).await.unwrap();
        let layer = RateLimitLayer::new(Arc::new(store), KeyChain::new([KeySource::Bearer]))
            .default_quota(quota);
        instances.push(ServiceBuilder::new().layer(layer).service(app()));
    }
    let mut statuses = Vec::new();
    for n in 0..4 {
        let res = instances[n % 2]
            .ready()
            .await
            .unwrap()
            .call(bearer("shared-token"))
            .await
            .unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.headers()["retry-after"], "1");
            assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=2");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn several_policies_all_or_nothing_in_one_script() {
    let Some(redis) = Redis::start() else { return };
    let store = RedisOptions::default()
        .denied_cache(0)
        .connect(&redis.url())
        .await
        .unwrap();
    let per_second = Quota::new(10, Duration::from_secs(1), 10).unwrap();
    let per_minute = Quota::new(3, Duration::from_secs(60), 3).unwrap();
    let checks = [(key(7), per_second, 1), (key(7), per_minute, 1)];
    for _ in 0..3 {
        let outcomes = store.check_all(&checks).await.unwrap();
        assert!(outcomes.iter().all(Outcome::is_allowed), "{outcomes:?}");
    }
    let outcomes = store.check_all(&checks).await.unwrap();
    assert!(outcomes[0].is_allowed() && !outcomes[1].is_allowed());
    // The per-second bucket was not charged by the refused request.
    match check(&store, key(7), &per_second).await {
        Outcome::Allowed { remaining, .. } => assert_eq!(remaining, 6),
        other => panic!("{other:?}"),
    }
    // A cost over the burst is never allowed, and costs no round trip.
    assert_eq!(
        store.check(key(7), &per_minute, 4).await.unwrap(),
        Outcome::Never
    );
}

#[tokio::test]
async fn a_refused_key_is_answered_locally_until_it_could_pass() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let clock = ManualClock::new();
    let store = RedisOptions::default()
        .clock(clock.clone())
        .connect(&redis.url())
        .await
        .unwrap();
    let quota = Quota::per_minute(60, 2).unwrap();
    assert!(check(&store, key(3), &quota).await.is_allowed());
    assert!(check(&store, key(3), &quota).await.is_allowed());
    // Redis is gone: the emptied bucket is still refused, with the right
    // wait, because no round trip is needed to know it.
    redis.stop();
    clock.advance(Duration::from_millis(400));
    match store.check(key(3), &quota, 1).await {
        Ok(Outcome::Denied { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_millis(600));
        }
        other => panic!("{other:?}"),
    }
    // Once it could pass, the cache does not answer: Redis must, and is
    // down.
    clock.advance(Duration::from_millis(600));
    let error = store.check(key(3), &quota, 1).await.unwrap_err();
    assert!(
        matches!(
            error.kind(),
            StoreErrorKind::Unavailable | StoreErrorKind::Timeout
        ),
        "{error}"
    );
}

#[tokio::test]
async fn redis_down_holds_the_chosen_policy_and_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let quota = Quota::per_minute(6000, 100).unwrap();
    let mut closed = stack(redis.url(), quota, OnStoreError::FailClosed).await;
    let mut open = stack(redis.url(), quota, OnStoreError::FailOpen).await;
    assert_eq!(call(&mut closed, "a").await.status(), StatusCode::OK);
    assert_eq!(call(&mut open, "b").await.status(), StatusCode::OK);

    redis.stop();
    for _ in 0..3 {
        let res = call(&mut closed, "a").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
        let res = call(&mut open, "b").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            !res.headers().contains_key("ratelimit"),
            "an uncounted request reports no quota"
        );
    }

    // Back (empty: its script cache too, so the first EVALSHA meets
    // NOSCRIPT and reloads): both count again.
    redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let res = call(&mut closed, "a").await;
        if res.status() == StatusCode::OK {
            assert_eq!(res.headers()["ratelimit"], "\"default\";r=99;t=1");
            break;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = call(&mut open, "b").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("ratelimit"), "counted again");
}

#[tokio::test]
async fn noscript_reloads_the_script() {
    let Some(redis) = Redis::start() else { return };
    let store = RedisLimiter::connect(&redis.url()).await.unwrap();
    let quota = Quota::per_minute(60, 5).unwrap();
    assert!(check(&store, key(9), &quota).await.is_allowed());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    match check(&store, key(9), &quota).await {
        Outcome::Allowed { remaining, .. } => assert_eq!(remaining, 3),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn start_up_errors_are_clear_and_never_echo_the_url() {
    let error = RedisLimiter::connect("http://user:hunter2@example/")
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(error.to_string().contains("redis://"), "{error}");
    let port = free_port();
    let error = RedisOptions::default()
        .connect_timeout(Duration::from_millis(200))
        .connect(&format!("redis://:hunter2@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn from_the_environment() {
    let Some(redis) = Redis::start() else { return };
    let dead = format!("redis://:hunter2@127.0.0.1:{}/", free_port());
    let url = redis.url();
    let env = |redis_url: String| {
        RateLimitEnv::from_env(
            &Env::from_pairs([
                ("REDIS_URL", redis_url),
                ("RATE_LIMIT_PER_MIN", "60".to_owned()),
                ("RATE_LIMIT_BURST", "1".to_owned()),
                ("RATE_LIMIT_KEY", "bearer".to_owned()),
            ]),
            &TrustedProxies::none(),
        )
        .unwrap()
    };
    let error = env(dead).layer().await.unwrap_err().to_string();
    assert!(
        error.starts_with("REDIS_URL: rate-limit store unavailable"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    let mut svc = ServiceBuilder::new()
        .layer(env(url).layer().await.unwrap())
        .service(app());
    assert_eq!(call(&mut svc, "t").await.status(), StatusCode::OK);
    assert_eq!(
        call(&mut svc, "t").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[derive(Debug, Clone)]
struct Step {
    key: u8,
    quota: usize,
    cost: u32,
    gap_us: u64,
    /// A second policy checked all-or-nothing with the first.
    with: Option<(u8, usize)>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0u8..3,
            0usize..3,
            1u32..4,
            0u64..400_000,
            prop::option::of((0u8..3, 0usize..3)),
        )
            .prop_map(|(key, quota, cost, gap_us, with)| Step {
                key,
                quota,
                cost,
                gap_us,
                with,
            }),
        1..60,
    )
}

/// Quotas whose emission interval is a whole number of microseconds, the
/// unit Redis counts in.
fn quotas() -> [Quota; 3] {
    [
        Quota::new(10, Duration::from_secs(1), 3).unwrap(),
        Quota::new(4, Duration::from_millis(500), 2).unwrap(),
        Quota::new(60, Duration::from_secs(60), 5).unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same checks at the same times get the same answers from Redis
    /// (with and without its local cache) as from memory.
    #[test]
    fn redis_agrees_with_memory(steps in steps(), cached in any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let Some(redis) = Redis::start() else { return };
            let clock = ManualClock::new();
            let memory = MemoryLimiter::new(1000, WhenFull::default(), clock.clone());
            let shared = RedisOptions::default()
                .clock(clock.clone())
                .denied_cache(if cached { 1000 } else { 0 })
                .connect(&redis.url())
                .await
                .unwrap();
            let quotas = quotas();
            for (n, step) in steps.iter().enumerate() {
                clock.advance(Duration::from_micros(step.gap_us));
                let quota = &quotas[step.quota];
                if let Some((other, other_quota)) = step.with {
                    let checks = [
                        (key(step.key), *quota, step.cost),
                        (key(other), quotas[other_quota], 1),
                    ];
                    let in_memory = memory.check_all(&checks);
                    let in_redis = shared.check_all(&checks).await.unwrap();
                    if cached || in_memory.contains(&Outcome::Never) {
                        // A local refusal (cached, or a cost over the
                        // burst) answers without asking about the others:
                        // the verdict must agree.
                        assert_eq!(
                            in_memory.iter().all(Outcome::is_allowed),
                            in_redis.iter().all(Outcome::is_allowed),
                            "step {n}: {step:?}"
                        );
                    } else {
                        assert_eq!(in_memory, in_redis, "step {n}: {step:?}");
                    }
                    continue;
                }
                let in_memory = memory.check(key(step.key), quota, step.cost);
                let in_redis = shared.check(key(step.key), quota, step.cost).await.unwrap();
                assert_eq!(in_memory, in_redis, "step {n}: {step:?}");
            }
        });
    }
}

fn app()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    service_fn(|_req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

/// A request whose bearer key a layer before the limiter authenticated.
fn bearer(token: &str) -> Request<()> {
    let mut req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(portcullis_identity::BearerDigest::of_token(token));
    req
}

async fn stack(
    url: String,
    quota: Quota,
    policy: OnStoreError,
) -> impl Service<Request<()>, Response = Response<impl http_body::Body>, Error = Infallible> {
    let store = RedisOptions::default()
        .timeout(Duration::from_millis(100))
        .connect(&url)
        .await
        .unwrap();
    let layer = RateLimitLayer::new(Arc::new(store), KeyChain::new([KeySource::Bearer]))
        .default_quota(quota)
        .on_store_error(policy);
    ServiceBuilder::new().layer(layer).service(app())
}

async fn call<S, B>(svc: &mut S, token: &str) -> Response<B>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    svc.ready()
        .await
        .unwrap()
        .call(bearer(token))
        .await
        .unwrap()
}
