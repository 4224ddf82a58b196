//! Redis as operators run it: a real `redis-server` serving TLS only, and
//! a real three-node Redis Cluster, each started from redis-server's own
//! flags. Two instances share one quota on each (through the real layer,
//! configured from the environment); a request's policies are checked in
//! one script on a Cluster (one slot); a node killed mid-load holds the
//! chosen fail policy, without a panic, and the limits come back with it.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_identity::env::Env;
use portcullis_identity::{BearerDigest, Quota, TrustedProxies};
use portcullis_rate_limit::{
    KeyChain, KeySource, OnStoreError, Policy, RateLimitEnv, RateLimitLayer, RedisOptions,
};
use portcullis_test_support::{RedisCluster, TempDir, free_port, pki, redis_tls_server};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Svc = tower::util::BoxCloneService<Request<()>, StatusCode, Infallible>;

/// A service behind `layer` that answers 200; the status is what counts.
fn service(layer: RateLimitLayer) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    tower::util::BoxCloneService::new(svc.map_response(|res: Response<_>| res.status()))
}

/// A request whose bearer a tenant layer authenticated.
fn request(token: &str) -> Request<()> {
    let mut req = Request::get("/").body(()).unwrap();
    req.extensions_mut().insert(BearerDigest::of_token(token));
    req
}

async fn status(svc: &Svc, token: &str) -> StatusCode {
    svc.clone().oneshot(request(token)).await.unwrap()
}

/// The layer `vars` describe, as the stack builds it.
async fn from_env(vars: &[(&str, &str)]) -> RateLimitLayer {
    let env = Env::from_pairs(vars.iter().copied());
    RateLimitEnv::from_env(&env, &TrustedProxies::none())
        .unwrap()
        .layer()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_two_instances_share_one_quota() {
    let dir = TempDir::new("redis-tls");
    let port = free_port();
    let Some(_redis) = redis_tls_server(&dir, port) else {
        return;
    };
    let url = format!("rediss://localhost:{port}");
    let ca = dir.write("ca-for-clients.pem", pki().ca().cert_pem());
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("PORTCULLIS_CA_CERTIFICATE", ca.as_str()),
        ("RATE_LIMIT_POLICIES", "minute:4/m"),
        ("RATE_LIMIT_KEY", "bearer"),
    ];
    let (a, b) = (
        service(from_env(&vars).await),
        service(from_env(&vars).await),
    );
    for (turn, svc) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            status(svc, "sk-tls").await,
            StatusCode::OK,
            "request {turn}"
        );
    }
    assert_eq!(status(&b, "sk-tls").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&a, "sk-tls").await, StatusCode::TOO_MANY_REQUESTS);

    // The platform's roots alone do not know the test CA: refused at
    // start-up, saying why, never quoting the URL.
    let error = RedisOptions::default().connect(&url).await.unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("localhost:"), "{text}");
    // And a bundle that cannot be read is a start-up problem naming it.
    let env = Env::from_pairs([
        ("REDIS_URL", url.as_str()),
        ("PORTCULLIS_CA_CERTIFICATE", "/nonexistent/ca.pem"),
    ]);
    let problem = RateLimitEnv::from_env(&env, &TrustedProxies::none())
        .unwrap_err()
        .to_string();
    assert!(
        problem.starts_with("PORTCULLIS_CA_CERTIFICATE=\"/nonexistent/ca.pem\": cannot be read"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_two_instances_share_every_policy_in_one_script() {
    let dir = TempDir::new("redis-cluster");
    let Some(cluster) = RedisCluster::start(&dir) else {
        return;
    };
    let url = cluster.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        // Two buckets per key, checked together: one slot, or CROSSSLOT.
        ("RATE_LIMIT_POLICIES", "second:100/s,minute:4/m"),
        ("RATE_LIMIT_KEY", "bearer"),
    ];
    let (a, b) = (
        service(from_env(&vars).await),
        service(from_env(&vars).await),
    );
    // Keys spread over the three nodes' slots.
    for key in 0..12 {
        let token = format!("sk-cluster-{key}");
        for (turn, svc) in [&a, &b, &a, &b].into_iter().enumerate() {
            assert_eq!(
                status(svc, &token).await,
                StatusCode::OK,
                "{token} request {turn}"
            );
        }
        assert_eq!(
            status(&a, &token).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{token}"
        );
    }
}

/// Requests for `keys` through `svc`: how many got each status.
async fn spread(svc: &Svc, keys: &[String]) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for key in keys {
        *counts.entry(status(svc, key).await.as_u16()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_killed_mid_load_holds_the_fail_policy_then_recovers() {
    let dir = TempDir::new("redis-cluster-kill");
    let Some(mut cluster) = RedisCluster::start(&dir) else {
        return;
    };
    let layer = |policy: OnStoreError| {
        let url = cluster.url();
        async move {
            let store = RedisOptions::default()
                .timeout(Duration::from_millis(300))
                .connect(&url)
                .await
                .unwrap();
            RateLimitLayer::new(
                std::sync::Arc::new(store),
                KeyChain::new([KeySource::Bearer]),
            )
            .policies([Policy::new("minute", Quota::per_minute(1000, 1000).unwrap()).unwrap()])
            .unwrap()
            .on_store_error(policy)
        }
    };
    let closed = service(layer(OnStoreError::FailClosed).await);
    let open = service(layer(OnStoreError::FailOpen).await);
    let keys: Vec<String> = (0..30).map(|k| format!("sk-load-{k}")).collect();
    assert_eq!(spread(&closed, &keys).await.get(&200), Some(&30));

    cluster.kill(0);
    // Closed: the dead node's slots answer 503, the others 200; nothing
    // else, and no panic.
    let during = spread(&closed, &keys).await;
    assert!(during.keys().all(|s| *s == 200 || *s == 503), "{during:?}");
    assert!(during.get(&503).copied().unwrap_or(0) > 0, "{during:?}");
    assert!(during.get(&200).copied().unwrap_or(0) > 0, "{during:?}");
    // Open: every request passes (the dead node's uncounted).
    assert_eq!(spread(&open, &keys).await.get(&200), Some(&30));

    cluster.restart(0);
    // Back: every key is counted again (the client reconnects on its own).
    let mut recovered = std::collections::BTreeMap::new();
    for _ in 0..100 {
        recovered = spread(&closed, &keys).await;
        if recovered.get(&200) == Some(&30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered.get(&200), Some(&30), "{recovered:?}");
}
