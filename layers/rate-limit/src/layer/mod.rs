//! [`RateLimitLayer`]: one bucket per request key, the quota from the
//! tenant's plan or the default, `429` from `call`, RateLimit headers on
//! every answer.
//!
//! One file per concern: the layer and its builder (`layer.rs`), the
//! service (`service.rs`), the decision and its headers (`decision.rs`),
//! the response future (`future.rs`) and the rejection (`rejection.rs`).

mod decision;
#[cfg(feature = "axum")]
mod extract;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod rejection;
mod service;

pub use decision::{PolicyState, RateLimitDecision};
#[cfg(feature = "axum")]
pub use extract::MissingRateLimitDecision;
pub use future::{CheckingBucket, RateLimitFuture};
pub use layer::{CostFn, MissingKey, OnStoreError, PLAN_POLICY, RateLimitLayer};
pub use rejection::{RateLimitRejection, RateLimitRejectionKind};
pub use service::RateLimit;
