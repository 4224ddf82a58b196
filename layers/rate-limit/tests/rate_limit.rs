//! RateLimitLayer end to end, in process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_identity::Quota;
use portcullis_identity::{
    BearerDigest, ClientIdentity, PeerAddr, Tenant, TenantStatus, TrustedProxies,
};
use portcullis_rate_limit::{
    KeyChain, KeyChainError, KeySource, ManualClock, MemoryLimiter, MissingKey, RateLimitDecision,
    RateLimitLayer, RateLimitRejection, RateLimitRejectionKind, WhenFull,
};
use portcullis_test_support::pki;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn app()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    service_fn(|req: Request<()>| async move {
        let decision = req.extensions().get::<RateLimitDecision>().cloned();
        let text = decision.map_or("none".to_owned(), |d| {
            format!("{} {} {}", d.key_source, d.remaining, d.would_deny)
        });
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    })
}

fn layer(clock: &ManualClock) -> RateLimitLayer {
    let store = Arc::new(MemoryLimiter::new(
        10_000,
        WhenFull::default(),
        clock.clone(),
    ));
    RateLimitLayer::new(store, KeyChain::new([KeySource::Bearer]))
        .default_quota(Quota::new(2, Duration::from_secs(1), 2).unwrap())
}

/// A request whose bearer key a layer before this one authenticated (as
/// `TenantLayer` leaves it: the digest in the extensions).
fn bearer(token: &str) -> Request<()> {
    let mut req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    req.extensions_mut().insert(BearerDigest::of_token(token));
    req
}

/// `req` through `svc`.
async fn send<S, B>(svc: &mut S, req: Request<()>) -> Response<B>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

/// The status of `req` through `svc`.
async fn status<S, B>(svc: &mut S, req: Request<()>) -> StatusCode
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    send(svc, req).await.status()
}

async fn body(res: Response<impl http_body::Body<Data = Bytes, Error = Infallible>>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn clones_share_one_quota_and_429_carries_the_headers() {
    let clock = ManualClock::new();
    let mut a = ServiceBuilder::new().layer(layer(&clock)).service(app());
    let mut b = a.clone();
    let res = a.ready().await.unwrap().call(bearer("k")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=2;w=1");
    assert_eq!(res.headers()["ratelimit"], "\"default\";r=1;t=1");
    assert!(!res.headers().contains_key("retry-after"));
    assert_eq!(body(res).await, "bearer 1 false");
    assert_eq!(status(&mut b, bearer("k")).await, StatusCode::OK);
    // The third, through either clone: refused from call, with the wait.
    let res = a.ready().await.unwrap().call(bearer("k")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=1");
    assert_eq!(
        res.extensions().get::<RateLimitRejection>().unwrap().kind(),
        RateLimitRejectionKind::TooManyRequests
    );
    // poll_ready never waits for quota.
    tokio::time::timeout(Duration::from_millis(50), b.ready())
        .await
        .unwrap()
        .unwrap();
    // Another key has its own bucket; time refills.
    assert_eq!(status(&mut b, bearer("other")).await, StatusCode::OK);
    clock.advance(Duration::from_millis(500));
    assert_eq!(status(&mut b, bearer("k")).await, StatusCode::OK);
}

#[tokio::test]
async fn the_tenant_plan_wins_over_the_default() {
    let clock = ManualClock::new();
    let mut svc = ServiceBuilder::new().layer(layer(&clock)).service(app());
    let with_plan = || {
        let mut req = bearer("k");
        req.extensions_mut().insert(
            Tenant::new("acme", TenantStatus::Active)
                .with_quota(Quota::per_minute(600, 5).unwrap()),
        );
        req
    };
    for _ in 0..5 {
        let res = svc.ready().await.unwrap().call(with_plan()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // The plan replaces the policy it names: `default_quota`'s.
        assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=600;w=60");
    }
    assert_eq!(
        status(&mut svc, with_plan()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_key_chain_falls_back_and_no_key_is_401_by_default() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryLimiter::new(
        10_000,
        WhenFull::default(),
        clock.clone(),
    ));
    let proxies = TrustedProxies::none();
    let keys = KeyChain::parse("cn,bearer,ip", &proxies).unwrap();
    let limited = RateLimitLayer::new(store, keys)
        .default_quota(Quota::new(100, Duration::from_secs(1), 10).unwrap());
    let mut svc = ServiceBuilder::new().layer(limited.clone()).service(app());
    let mut with_cert = bearer("k");
    with_cert
        .extensions_mut()
        .insert(ClientIdentity::from_der(pki().client().der()).unwrap());
    let seen = body(svc.ready().await.unwrap().call(with_cert).await.unwrap()).await;
    assert!(seen.starts_with("cn "), "{seen}");
    let seen = body(svc.ready().await.unwrap().call(bearer("k")).await.unwrap()).await;
    assert!(seen.starts_with("bearer "), "{seen}");
    let mut from_peer = Request::get("/").body(()).unwrap();
    from_peer
        .extensions_mut()
        .insert(PeerAddr("192.0.2.7:5000".parse().unwrap()));
    let seen = body(svc.ready().await.unwrap().call(from_peer).await.unwrap()).await;
    assert!(seen.starts_with("ip "), "{seen}");
    // Nothing to count by: refused, not waved through.
    let res = send(&mut svc, Request::get("/").body(()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut open = ServiceBuilder::new()
        .layer(limited.missing_key(MissingKey::Allow))
        .service(app());
    let res = send(&mut open, Request::get("/").body(()).unwrap()).await;
    assert_eq!(body(res).await, "none");
    // No quota at all (no default, no plan): nothing to count, so no key is
    // demanded either.
    let store = Arc::new(MemoryLimiter::new(16, WhenFull::default(), clock.clone()));
    let mut unlimited = ServiceBuilder::new()
        .layer(RateLimitLayer::new(
            store,
            KeyChain::parse("cn", &proxies).unwrap(),
        ))
        .service(app());
    let res = send(&mut unlimited, Request::get("/").body(()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("ratelimit"));
    assert_eq!(
        KeyChain::parse("cn,token", &proxies).unwrap_err(),
        KeyChainError::UnknownKey("token".to_owned())
    );
    assert_eq!(
        KeyChain::parse(" , ", &proxies).unwrap_err(),
        KeyChainError::Empty
    );
}

#[tokio::test]
async fn shadow_mode_counts_but_never_denies_and_legacy_headers_on_request() {
    let clock = ManualClock::new();
    let mut svc = ServiceBuilder::new()
        .layer(layer(&clock).shadow_mode().with_legacy_headers())
        .service(app());
    let mut last = String::new();
    for _ in 0..4 {
        let res = svc.ready().await.unwrap().call(bearer("k")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-limit"], "2");
        last = body(res).await;
    }
    assert_eq!(last, "bearer 0 true");
}

#[test]
fn a_key_spray_stays_under_the_cap() {
    let clock = ManualClock::new();
    let cap = 50_000;
    let store = MemoryLimiter::new(cap, WhenFull::EvictSoonestFull, clock.clone());
    let quota = Quota::new(1, Duration::from_secs(60), 1).unwrap();
    let chain = KeyChain::new([KeySource::Header(http::HeaderName::from_static("x-key"))]);
    let mut peak = 0;
    for n in 0..400_000u32 {
        // Distinct keys as the key chain makes them (SHA-256 of the value).
        let (parts, ()) = Request::get("/")
            .header("x-key", n.to_string())
            .body(())
            .unwrap()
            .into_parts();
        let (_, key) = chain.key(&parts).unwrap();
        store.check(key, &quota, 1);
        if n % 50_000 == 0 {
            peak = peak.max(store.approximate_bytes());
        }
    }
    assert!(store.len() <= cap + 64, "{} keys", store.len());
    // 64 bytes per key of the cap, table slack included.
    assert!(peak <= cap * 64 * 2, "{peak} bytes");
    assert!(store.approximate_bytes() <= cap * 64 * 2);
}

#[test]
fn a_common_name_is_one_bucket_across_certificates_and_no_other_source_meets_it() {
    let parts = |identity: Option<ClientIdentity>, headers: &[(&str, &str)]| {
        let mut req = Request::get("/");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let mut req = req.body(()).unwrap();
        if let Some(identity) = identity {
            req.extensions_mut().insert(identity);
        }
        req.into_parts().0
    };
    let issued = ClientIdentity::from_der(pki().client().der()).unwrap();
    let cn = issued.common_name().unwrap().to_owned();
    // The same CN in a certificate with another fingerprint (rotated).
    let rotated = ClientIdentity::from_forwarded_fields(
        "10.0.0.2".parse().unwrap(),
        http::HeaderName::from_static("x-forwarded-client-cert"),
        portcullis_identity::Fingerprint::Sha256([7; 32]),
        Some(&format!("CN={cn}")),
        Vec::new(),
        Vec::new(),
    );
    let key = |source: &KeySource, identity: &ClientIdentity| {
        source.key(&parts(Some(identity.clone()), &[])).unwrap()
    };
    assert_eq!(
        key(&KeySource::CommonName, &issued),
        key(&KeySource::CommonName, &rotated)
    );
    assert_ne!(
        key(&KeySource::Fingerprint, &issued),
        key(&KeySource::Fingerprint, &rotated)
    );
    // The CN's text as a bearer token or a header value is another bucket.
    let mut authenticated = parts(None, &[("authorization", &format!("Bearer {cn}"))]);
    authenticated.extensions.insert(BearerDigest::of_token(&cn));
    let as_bearer = KeySource::Bearer.key(&authenticated).unwrap();
    let as_header = KeySource::Header(http::HeaderName::from_static("x-caller"))
        .key(&parts(None, &[("x-caller", &cn)]))
        .unwrap();
    let by_cn = key(&KeySource::CommonName, &issued);
    assert_ne!(by_cn, as_bearer);
    assert_ne!(by_cn, as_header);
    // A certificate without a SPIFFE ID names no SPIFFE bucket.
    assert!(KeySource::SpiffeId.key(&parts(Some(issued), &[])).is_none());
}

#[tokio::test]
async fn a_bearer_no_layer_authenticated_names_no_bucket() {
    // No tenants: nothing vouches for the token. Eight made-up tokens from
    // one address share the address's bucket instead of getting one each.
    let clock = ManualClock::new();
    let store = Arc::new(MemoryLimiter::new(
        10_000,
        WhenFull::default(),
        clock.clone(),
    ));
    let keys = KeyChain::parse("bearer,ip", &TrustedProxies::none()).unwrap();
    let limited = RateLimitLayer::new(store, keys)
        .default_quota(Quota::new(2, Duration::from_secs(60), 2).unwrap());
    let mut svc = ServiceBuilder::new().layer(limited).service(app());
    let mut statuses = Vec::new();
    for n in 0..8 {
        let mut req = Request::get("/")
            .header("authorization", format!("Bearer made-up-{n}"))
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr("192.0.2.7:5000".parse().unwrap()));
        let res = send(&mut svc, req).await;
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::OK {
            assert!(body(res).await.starts_with("ip "));
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429, 429, 429]);
}
