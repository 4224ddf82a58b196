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

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use portcullis::client_cert::ClientCertLayer;
use portcullis::identity::env::Env;
use portcullis::identity::{BearerDigest, PeerAddr, TrustedProxies};
use portcullis::rate_limit::RateLimitEnv;
use portcullis::tenant::TenantLayer;
use portcullis_test_support::TempDir;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

const TOKEN: &str = "sk-alone-acme-0123456789";

/// One span as recorded: its name, parent and fields.
#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

thread_local! {
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Default)]
struct Capture {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<HashMap<u64, SpanRecord>>>,
    meta: Arc<Mutex<HashMap<u64, &'static Metadata<'static>>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = match attrs.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if attrs.is_contextual() => ENTERED.with(|e| e.borrow().last().copied()),
            None => None,
        };
        self.spans.lock().unwrap().insert(
            id,
            SpanRecord {
                name: attrs.metadata().name(),
                parent,
                fields,
            },
        );
        self.meta.lock().unwrap().insert(id, attrs.metadata());
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let record = spans.get_mut(&span.into_u64()).unwrap();
        values.record(&mut Fields(&mut record.fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        ENTERED.with(|e| e.borrow_mut().pop());
    }
    fn current_span(&self) -> tracing_core::span::Current {
        match ENTERED.with(|e| e.borrow().last().copied()) {
            Some(id) => {
                let meta = self.meta.lock().unwrap()[&id];
                tracing_core::span::Current::new(Id::from_u64(id), meta)
            }
            None => tracing_core::span::Current::none(),
        }
    }
}

impl Capture {
    /// The `portcullis` spans, each with its parent's name.
    fn request_spans(&self) -> Vec<(Option<&'static str>, BTreeMap<String, String>)> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans
            .iter()
            .filter(|(_, s)| s.name == "portcullis")
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| {
                let span = &spans[id];
                let parent = span.parent.map(|p| spans[&p].name);
                (parent, span.fields.clone())
            })
            .collect()
    }
}

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
