//! [`RateLimitLayer`], its builder and what it does with a missing key or
//! a failing store.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use tower_layer::Layer;

use super::decision::policy_header;
use super::service::RateLimit;
use crate::limiter::Limiter;
use crate::{KeyChain, Quota};

/// What to do with a request no key source names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `401`: a request that cannot be counted is not let through
    /// unlimited (default).
    #[default]
    Reject,
    /// Let it through uncounted.
    Allow,
}

/// What to do when the store cannot answer (Redis down or slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// `503` with `Retry-After: 1`: nobody goes uncounted (default).
    #[default]
    FailClosed,
    /// Let the request through uncounted, and log it.
    FailOpen,
}

/// Rate limits requests; see the [crate docs](crate).
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(super) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) limiter: Arc<dyn Limiter>,
    pub(super) keys: KeyChain,
    pub(super) default_quota: Option<Quota>,
    pub(super) missing_key: MissingKey,
    pub(super) on_store_error: OnStoreError,
    pub(super) legacy_headers: bool,
    pub(super) shadow: bool,
    /// Built once: the default policy's header never changes.
    pub(super) default_policy_header: Option<HeaderValue>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("keys", &self.shared.keys)
            .field("default_quota", &self.shared.default_quota)
            .field("missing_key", &self.shared.missing_key)
            .field("on_store_error", &self.shared.on_store_error)
            .field("legacy_headers", &self.shared.legacy_headers)
            .field("shadow", &self.shared.shadow)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Limits through `limiter` (shared by every clone of the layer and of
    /// its services), naming buckets by `keys`. Without a
    /// [`default_quota`](Self::default_quota) only requests whose `Tenant`
    /// has a plan are limited.
    pub fn new(limiter: Arc<dyn Limiter>, keys: KeyChain) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                keys,
                default_quota: None,
                missing_key: MissingKey::default(),
                on_store_error: OnStoreError::default(),
                legacy_headers: false,
                shadow: false,
                default_policy_header: None,
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Shared)) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        change(shared);
        shared.default_policy_header = shared
            .default_quota
            .map(|quota| policy_header("default", &quota));
        self
    }

    /// The quota when the request's tenant has no plan.
    #[must_use]
    pub fn default_quota(self, quota: Quota) -> Self {
        self.edit(|s| s.default_quota = Some(quota))
    }

    /// What to do when no key source names a bucket.
    #[must_use]
    pub fn missing_key(self, missing_key: MissingKey) -> Self {
        self.edit(|s| s.missing_key = missing_key)
    }

    /// What to do when the store cannot answer.
    #[must_use]
    pub fn on_store_error(self, policy: OnStoreError) -> Self {
        self.edit(|s| s.on_store_error = policy)
    }

    /// Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset`, beside the IETF `RateLimit` headers.
    #[must_use]
    pub fn with_legacy_headers(self) -> Self {
        self.edit(|s| s.legacy_headers = true)
    }

    /// Count and report, never deny: for trying a quota on live traffic
    /// (a refusal is recorded as `shadow` in the decision and the metrics).
    #[must_use]
    pub fn shadow_mode(self) -> Self {
        self.edit(|s| s.shadow = true)
    }

    /// How many buckets the store holds, when it keeps them in this
    /// process ([`MemoryLimiter`](crate::MemoryLimiter)); `None` for Redis.
    pub fn bucket_count(&self) -> Option<usize> {
        self.shared.limiter.bucket_count()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}
