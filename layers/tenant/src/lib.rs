//! Which tenant is calling, and making sure no client can claim another.
//!
//! [`TenantLayer`] runs on every request:
//!
//! 1. Every protected header (the tenant and caller headers it stamps, and
//!    `x-internal-secret`) is removed, under every spelling of its name
//!    (`X-LLM-Router-Tenant`, `x_llm_router_tenant`, `x.llm.router.tenant`),
//!    before anything else; a `Connection` header that nominates one is
//!    refused with `400`.
//! 2. The caller is authenticated by the [`AuthPolicy`]: the bearer key's
//!    SHA-256 ([`BearerDigest`](portcullis_identity::BearerDigest): the key
//!    itself is never kept, compared or logged), the client certificate's
//!    [`ClientIdentity`](portcullis_identity::ClientIdentity) (from
//!    `ClientCertLayer` or `XfccLayer`), or both.
//! 3. A [`TenantResolver`] answers: local stores ([`MemoryStore`],
//!    [`FileStore`]) first, the [control plane](ControlPlane) only on a
//!    local miss ([`Chain`]). Unknown → `401`, inactive → `403`, resolution
//!    unavailable → `503` with `Retry-After`.
//! 4. Only then is the request stamped: the [`Tenant`](portcullis_identity::Tenant)
//!    extension, and the tenant and caller headers set with `insert`. The
//!    bearer key's `BearerDigest` is left in the extensions too (only once
//!    the key resolved: a rate limiter keys an authenticated bearer alone), so a rate
//!    limiter keyed by it does not hash the key again.
//!
//! [`InternalGuardLayer`] hides internal routes behind the shared secret.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{Request, Response, StatusCode};
//! use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
//! use portcullis_tenant::{MemoryStore, Principal, TenantLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! let store = MemoryStore::new();
//! store.insert(
//!     Principal::Bearer(BearerDigest::of_token("sk-acme-1")),
//!     Tenant::new("acme", TenantStatus::Active).with_caller("billing"),
//! );
//! let mut app = ServiceBuilder::new()
//!     .layer(TenantLayer::new(store))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let stamped = req.headers()["x-llm-router-tenant"].to_str().unwrap().to_owned();
//!         Ok::<_, std::convert::Infallible>(Response::new(stamped))
//!     }));
//!
//! // The client's own tenant header is gone; the resolved one is stamped.
//! let req = Request::get("/")
//!     .header("authorization", "Bearer sk-acme-1")
//!     .header("x_llm_router_tenant", "globex")
//!     .body(())?;
//! let res = app.ready().await?.call(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let req = Request::get("/").header("authorization", "Bearer sk-unknown").body(())?;
//! assert_eq!(app.ready().await?.call(req).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod chain;
mod connector;
mod control_plane;
mod env;
mod guard;
mod layer;
mod resolver;
mod store;

pub use cache::CachePolicy;
pub use chain::Chain;
pub use control_plane::{
    ControlPlane, ControlPlaneError, ControlPlaneResolver, INTERNAL_SECRET_HEADER,
};
pub use guard::{GuardRejection, InternalGuard, InternalGuardLayer};
pub use layer::{
    AuthPolicy, CertificatePrincipal, DEFAULT_CALLER_HEADER, DEFAULT_TENANT_HEADER, ResolveTenant,
    ResolveTenantFuture, ResolvingTenant, TenantLayer, TenantRejection, TenantRejectionKind,
    UnknownAuthPolicy,
};
pub use resolver::{Principal, Resolution, ResolveError, Resolving, TenantResolver};
pub use store::{FileStore, MemoryStore, TenantsFileError};
