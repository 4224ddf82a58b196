//! A service that reports what the application saw.

use http::{HeaderMap, Request};
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{MemoryStore, Principal, TenantLayer};
use portcullis_test_support::{Recorded, through_layer};

#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) tenant: Option<Tenant>,
    pub(crate) headers: HeaderMap,
}

/// The answer, and what the app saw when it ran.
pub(crate) type Outcome = Recorded<Seen>;

/// Readings of what the app saw.
pub(crate) trait Observed {
    /// Every value of `name` the app received, in order.
    fn stamped(&self, name: &str) -> Vec<String>;
}

impl Observed for Outcome {
    fn stamped(&self, name: &str) -> Vec<String> {
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
    through_layer(layer, req, |req| Seen {
        tenant: req.extensions().get::<Tenant>().cloned(),
        headers: req.headers().clone(),
    })
    .await
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
        Principal::CommonName("client.example.com".into()),
        Tenant::new("acme", TenantStatus::Active).with_caller("cert-client"),
    );
    store.insert(
        Principal::SpiffeId("spiffe://example.org/ns/prod/sa/api".into()),
        Tenant::new("globex", TenantStatus::Active),
    );
    store
}

pub(crate) fn bearer(token: &str) -> Principal {
    Principal::Bearer(BearerDigest::of_token(token))
}
