//! A layer used alone, or layers assembled by hand, report as the whole
//! stack does: the first of them opens the `portcullis` request span, as a
//! child of tower-http's `TraceLayer` request span, and the others record
//! into it, one span per request.
#![cfg(all(
    feature = "tracing",
    feature = "client-cert",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/capture.rs"]
mod capture;

use std::collections::BTreeMap;
use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use portcullis::client_cert::ClientCertLayer;
use portcullis::identity::env::Env;
use portcullis::identity::{BearerDigest, PeerAddr, TrustedProxies};
use portcullis::rate_limit::RateLimitEnv;
use portcullis::tenant::TenantLayer;
use portcullis_test_support::TempDir;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;

use capture::Capture;

const TOKEN: &str = "sk-alone-acme-0123456789";

fn request(bearer: Option<&str>) -> Request<String> {
    let mut req = Request::get("/v1/chat?api_key=should-not-be-logged");
    if let Some(bearer) = bearer {
        req = req.header("authorization", format!("Bearer {bearer}"));
    }
    let mut req = req.body(String::new()).unwrap();
    req.extensions_mut()
        .insert(PeerAddr("192.0.2.7:4000".parse().unwrap()));
    req
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str)
}

#[test]
fn layers_assembled_by_hand_open_one_span_inside_tower_https() {
    let capture = Capture::default();
    let dir = TempDir::new("observe-alone");
    let tenants = dir.write(
        "tenants.json",
        format!(
            r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "rate_per_min": 60, "burst": 1}}]}}"#,
            BearerDigest::of_token(TOKEN).to_hex()
        ),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = tracing::subscriber::with_default(capture.clone(), || {
        runtime.block_on(async {
            let env = Env::from_pairs([("TENANTS_FILE", tenants.as_str())]);
            let tenant = TenantLayer::from_env(&env).unwrap().unwrap();
            let rate_limit = RateLimitEnv::from_env(&env, &TrustedProxies::none())
                .unwrap()
                .layer()
                .await
                .unwrap();
            let handler =
                |_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) };
            // Two layers by hand, without the facade's PortcullisLayer.
            let pair = ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(tenant)
                .layer(rate_limit)
                .service_fn(handler);
            // One layer alone.
            let alone = ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(ClientCertLayer::new().required())
                .service_fn(handler);
            let mut statuses = Vec::new();
            for bearer in [Some(TOKEN), Some(TOKEN), Some("sk-nobody")] {
                let res = pair.clone().oneshot(request(bearer)).await.unwrap();
                statuses.push(res.status());
            }
            statuses.push(alone.oneshot(request(None)).await.unwrap().status());
            statuses
        })
    });
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
        ]
    );
    let spans = capture.request_spans();
    // One span per request, each a child of tower-http's.
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for (parent, fields) in &spans {
        assert_eq!(*parent, Some("request"), "{fields:?}");
        assert_eq!(field(fields, "path"), Some("/v1/chat"), "{fields:?}");
        assert!(
            fields
                .values()
                .all(|v| !v.contains("sk-") && !v.contains("should-not")),
            "{fields:?}"
        );
    }
    let digest = &BearerDigest::of_token(TOKEN).to_hex()[..16];
    let first = &spans[0].1;
    assert_eq!(field(first, "bearer"), Some(digest));
    assert_eq!(field(first, "tenant"), Some("acme"));
    assert_eq!(field(first, "key"), Some("bearer"));
    assert_eq!(field(first, "decision"), Some("allowed"));
    assert_eq!(field(&spans[1].1, "reason"), Some("rate_limited"));
    assert_eq!(field(&spans[2].1, "reason"), Some("unauthenticated"));
    assert_eq!(field(&spans[3].1, "decision"), Some("refused"));
    assert!(field(&spans[3].1, "reason").is_some(), "{:?}", spans[3].1);
}
