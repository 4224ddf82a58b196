//! Several policies and request costs, through the real layer: every
//! policy charged or none, the headers listing each (tightest first), the
//! longest wait as `Retry-After`, a tenant's plan replacing the policy it
//! names; costs from a header or a function, `0` allowed, a cost over a
//! burst refused for good.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Request, Response, StatusCode};
use portcullis_identity::response::ResponseBody;
use portcullis_identity::{BearerDigest, Quota, Tenant, TenantStatus};
use portcullis_rate_limit::{
    KeyChain, KeySource, ManualClock, MemoryLimiter, Policy, RateLimitDecision, RateLimitLayer,
    RateLimitRejection, RateLimitRejectionKind, WhenFull,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Answer = Response<String>;

/// The layer in front of a handler that reports the decision.
fn service(
    layer: RateLimitLayer,
) -> impl Service<Request<()>, Response = Response<ResponseBody<String>>, Error = Infallible> + Clone
{
    ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|req: Request<()>| async move {
            let decision = req.extensions().get::<RateLimitDecision>().cloned();
            let text = decision.map_or("none".to_owned(), |d| {
                let each: Vec<String> = d
                    .policies
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.remaining))
                    .collect();
                format!("cost {} {}", d.cost, each.join(" "))
            });
            Ok::<_, Infallible>(Response::new(text))
        }))
}

fn store(clock: &ManualClock) -> Arc<MemoryLimiter<ManualClock>> {
    Arc::new(MemoryLimiter::new(
        10_000,
        WhenFull::default(),
        clock.clone(),
    ))
}

fn policy(name: &str, rate: u32, secs: u64, burst: u32) -> Policy {
    Policy::new(
        name,
        Quota::new(rate, Duration::from_secs(secs), burst).unwrap(),
    )
    .unwrap()
}

fn request(token: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::get("/");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut().insert(BearerDigest::of_token(token));
    req
}

async fn send<S>(svc: &S, req: Request<()>) -> Answer
where
    S: Service<Request<()>, Response = Response<ResponseBody<String>>, Error = Infallible> + Clone,
{
    use http_body_util::BodyExt;
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, String::from_utf8(bytes.to_vec()).unwrap())
}

fn header<'a>(res: &'a Answer, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_policy_is_charged_or_none_and_each_is_reported() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]))
        .policies([policy("second", 2, 1, 2), policy("hour", 3, 3600, 3)])
        .unwrap();
    let svc = service(layer);

    let first = send(&svc, request("k", &[])).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body(), "cost 1 second=1 hour=2");
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some("\"second\";q=2;w=1, \"hour\";q=3;w=3600")
    );
    assert_eq!(
        header(&first, "ratelimit"),
        Some("\"second\";r=1;t=1, \"hour\";r=2;t=1200")
    );
    let second = send(&svc, request("k", &[])).await;
    assert_eq!(second.body(), "cost 1 second=0 hour=1");

    // The second policy refuses; the hour is not charged for it.
    let refused = send(&svc, request("k", &[])).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        header(&refused, "ratelimit")
            .unwrap()
            .starts_with("\"second\";r=0;")
    );
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    clock.advance(Duration::from_secs(1));
    let after = send(&svc, request("k", &[])).await;
    assert_eq!(after.status(), StatusCode::OK);
    // The hour's third and last: the refused request cost it nothing.
    assert_eq!(after.body(), "cost 1 hour=0 second=1");

    // Now the hour refuses: its wait, the longest, is the Retry-After.
    clock.advance(Duration::from_secs(1));
    let refused = send(&svc, request("k", &[])).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1000..=1200).contains(&wait), "{wait}");
    assert!(
        header(&refused, "ratelimit")
            .unwrap()
            .starts_with("\"hour\";r=0;")
    );
    // Another key: buckets of its own.
    assert_eq!(
        send(&svc, request("other", &[])).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_tenants_plan_replaces_the_policy_it_names() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]))
        .policies([policy("second", 10, 1, 10), policy("minute", 60, 60, 60)])
        .unwrap();
    let svc = service(layer);
    let mut req = request("k", &[]);
    req.extensions_mut().insert(
        Tenant::new("acme", TenantStatus::Active).with_quota(Quota::per_minute(600, 2).unwrap()),
    );
    let res = send(&svc, req).await;
    assert_eq!(
        header(&res, "ratelimit-policy"),
        Some("\"minute\";q=600;w=60, \"second\";q=10;w=1")
    );
    assert_eq!(res.body(), "cost 1 minute=1 second=9");
    // Without a minute policy, the plan is added under that name.
    let layer = RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]))
        .policies([policy("second", 10, 1, 10)])
        .unwrap();
    let mut req = request("k", &[]);
    req.extensions_mut().insert(
        Tenant::new("acme", TenantStatus::Active).with_quota(Quota::per_minute(600, 2).unwrap()),
    );
    let res = send(&service(layer), req).await;
    assert_eq!(res.body(), "cost 1 minute=1 second=9");
}

#[tokio::test]
async fn the_cost_header_is_charged_zero_is_free_and_over_the_burst_never_passes() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]))
        .policies([policy("tokens", 10, 60, 5)])
        .unwrap()
        .cost_header(HeaderName::from_static("x-request-cost"));
    let svc = service(layer);

    let res = send(&svc, request("k", &[("x-request-cost", "3")])).await;
    assert_eq!(res.body(), "cost 3 tokens=2");
    let res = send(&svc, request("k", &[("x-request-cost", "0")])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "cost 0 tokens=2");
    // No header: cost 1.
    let res = send(&svc, request("k", &[])).await;
    assert_eq!(res.body(), "cost 1 tokens=1");

    // Over the burst: refused, and no Retry-After would ever let it pass.
    let res = send(&svc, request("fresh", &[("x-request-cost", "6")])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), None);
    assert!(
        res.body()
            .contains("costs 6, more than the burst of 5 of the rate-limit policy \"tokens\""),
        "{}",
        res.body()
    );
    assert_eq!(
        res.extensions()
            .get::<RateLimitRejection>()
            .map(RateLimitRejection::kind),
        Some(RateLimitRejectionKind::CostOverBurst)
    );
    // And it charged nothing.
    let res = send(&svc, request("fresh", &[("x-request-cost", "5")])).await;
    assert_eq!(res.body(), "cost 5 tokens=0");

    // Not a whole number, or two lines: 400, nothing charged.
    for bad in [
        vec![("x-request-cost", "lots")],
        vec![("x-request-cost", "-1")],
        vec![("x-request-cost", "1"), ("x-request-cost", "2")],
    ] {
        let res = send(&svc, request("k", &bad)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(
        send(&svc, request("k", &[])).await.body(),
        "cost 1 tokens=0"
    );
}

#[tokio::test]
async fn a_cost_function_weighs_each_request() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]))
        .policies([policy("items", 100, 60, 100)])
        .unwrap()
        // A batch endpoint: one per item, from the query.
        .cost(|parts| {
            parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("items="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        });
    let svc = service(layer);
    let mut req = Request::get("/batch?items=40").body(()).unwrap();
    req.extensions_mut().insert(BearerDigest::of_token("k"));
    assert_eq!(send(&svc, req).await.body(), "cost 40 items=60");
    assert_eq!(
        send(&svc, request("k", &[])).await.body(),
        "cost 1 items=59"
    );
}

#[test]
fn policies_are_refused_when_they_cannot_work() {
    let clock = ManualClock::new();
    let layer = || RateLimitLayer::new(store(&clock), KeyChain::new([KeySource::Bearer]));
    assert!(layer().policies([]).is_err());
    assert!(
        layer()
            .policies([policy("a", 1, 1, 1), policy("a", 2, 2, 2)])
            .is_err()
    );
    assert!(layer().plan_replaces("Not a name").is_err());
}
