//! May they call again now: GCRA rate limiting whose quota travels with
//! each check, so one limiter serves every tenant's plan.
//!
//! - the integer GCRA step on a [`Quota`], and [`MemoryLimiter`]: one atomic
//!   theoretical arrival time per fixed-size key, bounded and sharded, with
//!   all-or-nothing checks across several policies. No tower types.
//! - [`KeyChain`]: the bucket from the certificate's CN, SPIFFE ID or
//!   fingerprint, the bearer digest, the tenant, the client address through
//!   trusted proxies, a header or a closure, first that answers wins.
//! - [`RateLimitLayer`]: the store shared by every clone; several named
//!   [`Policy`]s per request, checked all or nothing, each a bucket of its
//!   own (so a strict layer on `/login` and a loose one elsewhere share a
//!   store, not buckets), the tenant's plan replacing the policy it names;
//!   request costs ([`cost`](RateLimitLayer::cost),
//!   [`cost_header`](RateLimitLayer::cost_header)); `429` from `call`
//!   (never a wait in `poll_ready`), IETF `RateLimit-Policy` / `RateLimit`
//!   headers listing every policy (and optionally the legacy trio) on every
//!   answer, `Retry-After` on `429` when some wait lets the request pass, a
//!   [`RateLimitDecision`] for handlers (an axum extractor with the
//!   `axum` feature), and a shadow mode.
//! - [`RateLimitEnv`]: all of it from `RATE_LIMIT_*` and `REDIS_URL`.
//! - [`RedisLimiter`] (feature `redis`): the same buckets in Redis for
//!   services on many instances, over TLS (`rediss://`) and on a Redis
//!   Cluster: one `EVALSHA` of a Lua GCRA on Redis's clock per request,
//!   all its policies in one hash slot, a local cache of refusals, and an
//!   explicit [`OnStoreError`] when Redis cannot answer.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use portcullis_identity::Quota;
//! use portcullis_rate_limit::{BucketKey, ManualClock, MemoryLimiter, WhenFull};
//!
//! let clock = ManualClock::new();
//! let store = MemoryLimiter::new(10_000, WhenFull::default(), clock.clone());
//! let plan = Quota::per_minute(60, 2)?; // one a second, bursts of two
//! let key = BucketKey([7; 16]);
//! assert!(store.check(key, &plan, 1).is_allowed());
//! assert!(store.check(key, &plan, 1).is_allowed());
//! assert!(!store.check(key, &plan, 1).is_allowed());
//! clock.advance(Duration::from_secs(1));
//! assert!(store.check(key, &plan, 1).is_allowed());
//! # Ok::<(), portcullis_identity::QuotaError>(())
//! ```
//!
//! Two policies, and a batch endpoint charging one per item:
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_rate_limit::{KeyChain, KeySource, MemoryLimiter, Policy, RateLimitLayer, SystemClock, WhenFull};
//!
//! let store = Arc::new(MemoryLimiter::new(100_000, WhenFull::default(), SystemClock::new()));
//! let layer = RateLimitLayer::new(store, KeyChain::new([KeySource::Bearer]))
//!     .policies(Policy::parse_list("second:10/s:20, hour:1000/h")?)?
//!     .cost(|parts| {
//!         let items = parts.uri.query().and_then(|q| q.strip_prefix("items="));
//!         items.and_then(|n| n.parse().ok()).unwrap_or(1)
//!     });
//! # let _ = layer;
//! # Ok::<(), portcullis_rate_limit::PolicyError>(())
//! ```
//!
//! Shared by every instance, through Redis (feature `redis`; a Cluster by
//! its nodes, comma-separated; `rediss://` for TLS):
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn shared() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use portcullis_identity::Quota;
//! use portcullis_rate_limit::{KeyChain, KeySource, OnStoreError, RateLimitLayer, RedisLimiter};
//!
//! let store = RedisLimiter::connect("redis://127.0.0.1:6379/").await?;
//! let layer = RateLimitLayer::new(Arc::new(store), KeyChain::new([KeySource::Bearer]))
//!     .default_quota(Quota::per_minute(600, 50)?)
//!     // Redis down or slower than the store's timeout (50 ms): refuse
//!     // with 503 rather than let callers through uncounted.
//!     .on_store_error(OnStoreError::FailClosed);
//! # let _ = layer; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod env;
mod gcra;
mod keys;
mod layer;
mod limiter;
mod memory;
mod policy;
#[cfg(feature = "redis")]
mod redis_store;
mod redis_url;

pub use clock::{Clock, ManualClock, SystemClock};
pub use env::{DEFAULT_MAX_KEYS, RateLimitEnv};
pub use gcra::Outcome;
// The quota is identity's, shared with the tenant plans it checks.
pub use keys::{CustomKey, KeyChain, KeyChainError, KeySource};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use layer::MissingRateLimitDecision;
pub use layer::{
    CheckingBucket, CostFn, MissingKey, OnStoreError, PLAN_POLICY, PolicyState, RateLimit,
    RateLimitDecision, RateLimitFuture, RateLimitLayer, RateLimitRejection, RateLimitRejectionKind,
};
pub use limiter::{Checking, CheckingAll, Limiter, StoreError, StoreErrorKind};
pub use memory::{BucketKey, MemoryLimiter, WhenFull};
pub use policy::{MAX_POLICIES, Policy, PolicyError};
use portcullis_identity::Quota;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::{GCRA_SCRIPT, RedisLimiter, RedisOptions};

#[cfg(test)]
mod properties {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// In any window of one period, no more than `rate + burst` are
        /// allowed (GCRA's bound), whatever the arrival times.
        #[test]
        fn never_more_than_the_quota_in_a_window(
            rate in 1u32..20,
            burst in 1u32..10,
            gaps in prop::collection::vec(0u64..200_000_000, 1..300),
        ) {
            let quota = Quota::new(rate, Duration::from_secs(1), burst).unwrap();
            let clock = ManualClock::new();
            let store = MemoryLimiter::new(16, WhenFull::default(), clock.clone());
            let mut allowed_at = Vec::new();
            for gap in gaps {
                clock.advance(Duration::from_nanos(gap));
                if store.check(BucketKey([1; 16]), &quota, 1).is_allowed() {
                    allowed_at.push(clock.now_ns());
                }
            }
            let period = 1_000_000_000u64;
            for (i, start) in allowed_at.iter().enumerate() {
                let in_window = allowed_at[i..].iter().take_while(|t| **t < start + period).count();
                prop_assert!(in_window as u64 <= u64::from(rate) + u64::from(burst), "{in_window} in one period");
            }
        }
    }
}
