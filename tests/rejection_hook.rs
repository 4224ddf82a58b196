//! One rejection hook for every layer: the whole stack from the
//! environment, served over real sockets, answers its refusals as
//! `application/problem+json` behind `RejectionHookLayer`, keeps the headers
//! the layers set, and leaves the application's own responses alone;
//! without the hook, refusals stay `text/plain`.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use portcullis::identity::BearerDigest;
use portcullis::identity::env::Env;
use portcullis::identity::response::{ProblemJson, Refusal, RejectionHookLayer};
use portcullis_test_support::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceBuilder;

const TOKEN: &str = "sk-hook-acme-0123456789";

async fn app(_req: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("hello\n".to_owned()))
}

/// The stack from the environment (a tenants file knowing [`TOKEN`] with a
/// plan of one request a minute), served on loopback, with the hook when
/// `hook` is set.
async fn serve(dir: &TempDir, hook: bool) -> SocketAddr {
    let digest = BearerDigest::of_token(TOKEN).to_hex();
    let tenants = dir.write(
        "tenants.json",
        format!(
            r#"{{"keys": [{{"sha256": "{digest}", "tenant_id": "acme", "rate_per_min": 1, "burst": 1}}]}}"#
        ),
    );
    let env = Env::from_pairs([
        ("TENANTS_FILE", tenants.as_str()),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    let stack = portcullis::from_env(&env).await.unwrap();
    let listening = stack.bind().await.unwrap();
    let addr = listening.local_addr();
    if hook {
        let service = ServiceBuilder::new()
            .layer(RejectionHookLayer::new(ProblemJson))
            .layer(stack.layer())
            .service_fn(app);
        tokio::spawn(listening.serve(service, std::future::pending()));
    } else {
        let service = ServiceBuilder::new().layer(stack.layer()).service_fn(app);
        tokio::spawn(listening.serve(service, std::future::pending()));
    }
    addr
}

/// One HTTP/1.1 request over a fresh connection: the response head, lower
/// case, and the body.
async fn get(addr: SocketAddr, authorization: Option<&str>) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn every_layer_refuses_through_one_hook() {
    let dir = TempDir::new("rejection-hook");
    let addr = serve(&dir, true).await;

    // The tenant layer: no bearer.
    let (head, body) = get(addr, None).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(
        body.starts_with(r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"#),
        "{body}"
    );
    assert!(
        body.ends_with(r#","layer":"tenant","reason":"unauthenticated"}"#),
        "{body}"
    );

    // The application's own response passes untouched.
    let bearer = format!("Bearer {TOKEN}");
    let (head, body) = get(addr, Some(&bearer)).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "hello\n");

    // The rate limiter: over the plan, its headers kept.
    let (head, body) = get(addr, Some(&bearer)).await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("\r\nretry-after: "), "{head}");
    assert!(head.contains("\r\nratelimit: "), "{head}");
    assert!(
        body.ends_with(r#","layer":"rate_limit","reason":"rate_limited"}"#),
        "{body}"
    );
}

#[tokio::test]
async fn without_the_hook_refusals_stay_text() {
    let dir = TempDir::new("rejection-no-hook");
    let addr = serve(&dir, false).await;
    let (head, body) = get(addr, None).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(!body.starts_with('{'), "{body}");
}

#[tokio::test]
async fn a_hook_may_be_a_closure_and_sees_the_typed_reason() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let dir = TempDir::new("rejection-closure");
    let digest = BearerDigest::of_token(TOKEN).to_hex();
    let tenants = dir.write(
        "tenants.json",
        format!(r#"{{"keys": [{{"sha256": "{digest}", "tenant_id": "acme"}}]}}"#),
    );
    let stack = portcullis::from_env(&Env::from_pairs([("TENANTS_FILE", tenants.as_str())]))
        .await
        .unwrap();
    let teapot = |refusal: &Refusal, parts: &mut http::response::Parts| {
        parts.status = http::StatusCode::IM_A_TEAPOT;
        // The layer's own typed rejection is there too.
        let typed = parts
            .extensions
            .get::<portcullis::tenant::TenantRejection>();
        bytes::Bytes::from(format!(
            "{}/{}/{}",
            refusal.layer(),
            refusal.reason(),
            typed.map_or("-", |r| r.kind().label())
        ))
    };
    let service = ServiceBuilder::new()
        .layer(RejectionHookLayer::new(teapot))
        .layer(stack.layer())
        .service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        });
    let res = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::IM_A_TEAPOT);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "tenant/unauthenticated/unauthenticated");
}
