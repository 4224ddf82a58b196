//! A service that reports what the application saw.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{MemoryStore, Principal, TenantLayer, TenantRejection};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) tenant: Option<Tenant>,
    pub(crate) headers: HeaderMap,
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) seen: Option<Seen>,
    pub(crate) rejection: Option<TenantRejection>,
}

impl Outcome {
    pub(crate) fn seen(&self) -> &Seen {
        self.seen
            .as_ref()
            .unwrap_or_else(|| panic!("app did not run: {} {}", self.status, self.body))
    }

    pub(crate) fn stamped(&self, name: &str) -> Vec<String> {
        self.seen()
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A request with `headers`.
pub(crate) fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::get("/v1/chat");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// Runs `req` through `layer` and an app that records what it saw.
pub(crate) async fn run(layer: &TenantLayer, req: Request<()>) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(move |req: Request<()>| {
            let tx = tx.clone();
            async move {
                tx.send(Seen {
                    tenant: req.extensions().get::<Tenant>().cloned(),
                    headers: req.headers().clone(),
                })
                .unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        }));
    let res = service.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let rejection = res.extensions().get::<TenantRejection>().cloned();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Outcome {
        status,
        headers,
        body,
        seen: rx.try_recv().ok(),
        rejection,
    }
}

/// A store with `sk-acme` (active, caller billing), `sk-off` (inactive) and
/// the certificate principal `client.example.com` (acme).
pub(crate) fn store() -> MemoryStore {
    let store = MemoryStore::new();
    store.insert(
        bearer("sk-acme"),
        Tenant::new("acme", TenantStatus::Active).with_caller("billing"),
    );
    store.insert(
        bearer("sk-off"),
        Tenant::new("initech", TenantStatus::Inactive),
    );
    store.insert(
        Principal::Certificate("client.example.com".into()),
        Tenant::new("acme", TenantStatus::Active).with_caller("cert-client"),
    );
    store.insert(
        Principal::Certificate("spiffe://example.org/ns/prod/sa/api".into()),
        Tenant::new("globex", TenantStatus::Active),
    );
    store
}

pub(crate) fn bearer(token: &str) -> Principal {
    Principal::Bearer(BearerDigest::of_token(token))
}
