//! A service that reports what the application saw.

use http::{HeaderMap, Request, StatusCode};
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{MemoryStore, Principal, TenantLayer, TenantRejection};
use portcullis_test_support::through_layer;

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
    let recorded = through_layer(layer, req, |req| Seen {
        tenant: req.extensions().get::<Tenant>().cloned(),
        headers: req.headers().clone(),
    })
    .await;
    Outcome {
        status: recorded.status,
        rejection: recorded.extensions.get::<TenantRejection>().cloned(),
        headers: recorded.headers,
        body: recorded.body,
        seen: recorded.seen,
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
