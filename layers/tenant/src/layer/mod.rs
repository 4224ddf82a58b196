//! [`TenantLayer`]: strip every protected header, authenticate, resolve the
//! tenant, stamp it. See the [crate docs](crate) for an example.
//!
//! One file per concern: the layer and its builder (`layer.rs`), the
//! service (`service.rs`), the decision from principals to a stamp
//! (`decide.rs`), the response future (`future.rs`) and the rejection
//! (`rejection.rs`); the environment reader is the crate's `env.rs`.

mod decide;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod rejection;
mod service;

pub use future::{ResolveTenantFuture, ResolvingTenant};
pub use layer::{
    AuthPolicy, CertificatePrincipal, DEFAULT_CALLER_HEADER, DEFAULT_TENANT_HEADER, TenantLayer,
    UnknownAuthPolicy,
};
pub use rejection::{TenantRejection, TenantRejectionKind};
pub use service::ResolveTenant;
