//! What the stack reports: the `portcullis` request span's fields (as each
//! layer records them) and the `metrics` counters, captured by a real
//! subscriber and a real recorder, for allowed and refused requests. No
//! secret appears in either.
#![cfg(all(
    feature = "tracing",
    feature = "metrics",
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis::identity::env::Env;
#[path = "support/capture.rs"]
mod capture;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use portcullis::identity::{BearerDigest, PeerAddr, percent};
use portcullis_test_support::{TempDir, pki};
use tower::{ServiceBuilder, ServiceExt};

use capture::Capture;

const TOKEN: &str = "sk-observe-acme-0123456789";

/// Counters by `name{label=value,...}`.
#[derive(Clone, Default)]
struct Counters(Arc<Mutex<BTreeMap<String, u64>>>);

struct Handle(String, Counters);

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self.1.0.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.1.0.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Counter::from_arc(Arc::new(Handle(name, self.clone())))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn the_request_span_and_the_counters_say_who_which_tenant_and_what_was_decided() {
    let spans = Capture::default();
    let counters = Counters::default();
    metrics::set_global_recorder(counters.clone()).unwrap();
    let dir = TempDir::new("observe");
    let tenants = dir.write(
        "tenants.json",
        format!(
            r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "rate_per_min": 60, "burst": 2}}]}}"#,
            BearerDigest::of_token(TOKEN).to_hex()
        ),
    );
    let env = [
        ("TENANTS_FILE", tenants.as_str()),
        ("TRUSTED_PROXY_CIDRS", "10.0.0.0/8"),
        ("FORWARDED_CERT_FORMAT", "nginx"),
        ("FORWARDED_CERT_HEADER", "x-client-cert"),
        // The certificate's CN keys the bucket, the bearer still names the tenant.
        ("USE_CERT_AS_PRINCIPAL", "true"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = tracing::subscriber::with_default(spans.clone(), || {
        runtime.block_on(async {
            let stack = portcullis::from_env(&Env::from_fn(|var| {
                env.iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            }))
            .await
            .unwrap();
            let service = ServiceBuilder::new().layer(stack.layer()).service_fn(
                |_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
            );
            let mut statuses = Vec::new();
            for (peer, headers) in [
                // Through the proxy with the certificate, a forged tenant.
                (
                    "10.0.0.1:4000",
                    vec![
                        ("authorization", format!("Bearer {TOKEN}")),
                        (
                            "x-client-cert",
                            // As nginx forwards it: URL-encoded PEM.
                            percent::encode_component(pki().client().cert_pem()),
                        ),
                        ("x-llm-router-tenant", "someone-else".to_owned()),
                    ],
                ),
                // An unknown key.
                (
                    "192.0.2.7:4000",
                    vec![("authorization", "Bearer sk-nobody".to_owned())],
                ),
                // The bearer's own bucket, until the burst of 2 is spent.
                (
                    "192.0.2.7:4000",
                    vec![("authorization", format!("Bearer {TOKEN}"))],
                ),
                (
                    "192.0.2.7:4000",
                    vec![("authorization", format!("Bearer {TOKEN}"))],
                ),
                (
                    "192.0.2.7:4000",
                    vec![("authorization", format!("Bearer {TOKEN}"))],
                ),
            ] {
                let mut req = Request::get("/v1/chat?api_key=should-not-be-logged");
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                let mut req = req.body(String::new()).unwrap();
                req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
                statuses.push(service.clone().oneshot(req).await.unwrap().status());
            }
            statuses
        })
    });
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    let recorded = spans.request_spans();
    let requests: Vec<&BTreeMap<String, String>> =
        recorded.iter().map(|(_, fields)| fields).collect();
    let digest = &BearerDigest::of_token(TOKEN).to_hex()[..16];
    let span = |i: usize| -> Vec<(&str, &str)> {
        requests[i]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    assert_eq!(requests.len(), 5);
    assert_eq!(
        span(0),
        [
            ("bearer", digest),
            ("decision", "allowed"),
            ("key", "cn"),
            ("method", "GET"),
            ("path", "/v1/chat"),
            ("principal", "client.example.com"),
            ("source", "forwarded"),
            ("tenant", "acme"),
        ]
    );
    assert_eq!(
        span(1),
        [
            (
                "bearer",
                &BearerDigest::of_token("sk-nobody").to_hex()[..16]
            ),
            ("decision", "refused"),
            ("method", "GET"),
            ("path", "/v1/chat"),
            ("reason", "unauthenticated"),
        ]
    );
    assert_eq!(span(3)[..2], [("bearer", digest), ("decision", "allowed")]);
    assert!(span(3).contains(&("key", "bearer")), "{:?}", span(3));
    assert!(
        span(4).contains(&("reason", "rate_limited")),
        "{:?}",
        span(4)
    );
    for (id, span) in spans.spans.lock().unwrap().iter() {
        for value in span.fields.values() {
            assert!(
                !value.contains("sk-") && !value.contains("should-not-be-logged"),
                "span {id} leaks {value}"
            );
        }
    }

    let counters = counters.0.lock().unwrap();
    let count = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(count("portcullis_headers_stripped_total{layer=tenant}"), 1);
    assert_eq!(
        count("portcullis_rejections_total{layer=tenant,reason=unauthenticated}"),
        1
    );
    assert_eq!(
        count("portcullis_rejections_total{layer=rate_limit,reason=rate_limited}"),
        1
    );
    assert_eq!(count("portcullis_rate_limit_total{decision=allowed}"), 3);
    assert_eq!(count("portcullis_rate_limit_total{decision=limited}"), 1);
    assert!(counters.keys().all(|k| !k.contains("sk-")), "{counters:#?}");
}
