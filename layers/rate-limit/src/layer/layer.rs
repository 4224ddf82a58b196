//! [`RateLimitLayer`], its builder and what it does with a missing key or
//! a failing store.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower_layer::Layer;

use super::decision::policy_header;
use super::rejection::{RateLimitRejection, RateLimitRejectionKind};
use super::service::RateLimit;
use crate::limiter::Limiter;
use crate::policy::PolicyName;
use crate::{KeyChain, Policy, PolicyError, Quota};

/// The name of the policy a tenant's plan replaces unless told otherwise:
/// a plan is `rate_per_min` and `burst`.
pub const PLAN_POLICY: &str = "minute";

/// A request's cost from its head (see [`RateLimitLayer::cost`]).
pub type CostFn = Arc<dyn Fn(&Parts) -> u32 + Send + Sync>;

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
    /// Every request's policies, before a tenant's plan.
    pub(super) policies: Arc<[Policy]>,
    /// What a tenant's plan is called, and replaces.
    pub(super) plan_policy: PolicyName,
    pub(super) cost_header: Option<HeaderName>,
    pub(super) cost_fn: Option<CostFn>,
    pub(super) missing_key: MissingKey,
    pub(super) on_store_error: OnStoreError,
    pub(super) legacy_headers: bool,
    pub(super) shadow: bool,
    /// Built once: each configured policy's `RateLimit-Policy` item.
    pub(super) policy_headers: Vec<HeaderValue>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("keys", &self.shared.keys)
            .field("policies", &self.shared.policies)
            .field("plan_policy", &self.shared.plan_policy.as_str())
            .field("cost_header", &self.shared.cost_header)
            .field("cost_fn", &self.shared.cost_fn.is_some())
            .field("missing_key", &self.shared.missing_key)
            .field("on_store_error", &self.shared.on_store_error)
            .field("legacy_headers", &self.shared.legacy_headers)
            .field("shadow", &self.shared.shadow)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Limits through `limiter` (shared by every clone of the layer and of
    /// its services), naming buckets by `keys`. Without
    /// [`policies`](Self::policies) (or a
    /// [`default_quota`](Self::default_quota)) only requests whose
    /// `Tenant` has a plan are limited.
    pub fn new(limiter: Arc<dyn Limiter>, keys: KeyChain) -> Self {
        let plan_policy = PolicyName::known(PLAN_POLICY);
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                keys,
                policies: Arc::from([]),
                plan_policy,
                cost_header: None,
                cost_fn: None,
                missing_key: MissingKey::default(),
                on_store_error: OnStoreError::default(),
                legacy_headers: false,
                shadow: false,
                policy_headers: Vec::new(),
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Shared)) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        change(shared);
        shared.policy_headers = shared.policies.iter().map(policy_header).collect();
        self
    }

    /// One quota for every request, a policy named `default`, which a
    /// tenant's plan replaces. The same as
    /// `.policies([Policy::new("default", quota)]).plan_replaces("default")`.
    #[must_use]
    pub fn default_quota(self, quota: Quota) -> Self {
        let name = PolicyName::known("default");
        self.edit(|s| {
            s.policies = Arc::from([Policy::named(name.clone(), quota)]);
            s.plan_policy = name;
        })
    }

    /// Every request is counted under each of `policies`, all or nothing:
    /// a request is charged in every bucket, or in none, and goes on only
    /// if each allows it. A tenant's plan replaces the policy
    /// [`plan_replaces`](Self::plan_replaces) names (`minute` unless told
    /// otherwise), or is added under that name. Refused: no policy, two
    /// with one name, or more than [`MAX_POLICIES`](crate::MAX_POLICIES).
    pub fn policies(self, policies: impl IntoIterator<Item = Policy>) -> Result<Self, PolicyError> {
        let policies: Vec<Policy> = policies.into_iter().collect();
        if policies.is_empty() {
            return Err(PolicyError::Empty);
        }
        if policies.len() > crate::MAX_POLICIES {
            return Err(PolicyError::TooMany(policies.len()));
        }
        for (index, policy) in policies.iter().enumerate() {
            if policies[..index].iter().any(|p| p.name() == policy.name()) {
                return Err(PolicyError::Duplicate(policy.name().to_owned()));
            }
        }
        Ok(self.edit(|s| s.policies = Arc::from(policies)))
    }

    /// The policy a tenant's plan replaces (default `minute`).
    pub fn plan_replaces(self, name: &str) -> Result<Self, PolicyError> {
        let name = PolicyName::new(name)?;
        Ok(self.edit(|s| s.plan_policy = name))
    }

    /// What a request costs, from its head (tokens asked for, items in a
    /// batch): charged in every policy. `0` is allowed (counted, nothing
    /// charged); a cost over a policy's burst is `429` without
    /// `Retry-After`, since no wait would let it pass. A
    /// [`cost_header`](Self::cost_header), when present, wins.
    #[must_use]
    pub fn cost(self, cost: impl Fn(&Parts) -> u32 + Send + Sync + 'static) -> Self {
        let cost: CostFn = Arc::new(cost);
        self.edit(|s| s.cost_fn = Some(cost))
    }

    /// Reads the request's cost from `header`, set by a layer between the
    /// tenant layer and this one (`RATE_LIMIT_COST_HEADER`). Clients must
    /// not set it: the whole stack removes it from every request (the
    /// tenant layer protects it), so only a layer after that strip can.
    /// A value that is not one whole number is `400`; no header: the
    /// [`cost`](Self::cost) function, else 1.
    #[must_use]
    pub fn cost_header(self, header: HeaderName) -> Self {
        self.edit(|s| s.cost_header = Some(header))
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

impl Shared {
    /// The request's cost: the cost header, else the cost function, else 1.
    pub(super) fn cost_of(&self, parts: &Parts) -> Result<u32, RateLimitRejection> {
        if let Some(header) = &self.cost_header {
            let mut lines = parts.headers.get_all(header).iter();
            match (lines.next(), lines.next()) {
                (Some(value), None) => {
                    return value
                        .to_str()
                        .ok()
                        .and_then(|text| text.trim().parse::<u32>().ok())
                        .ok_or_else(|| {
                            RateLimitRejection::new(RateLimitRejectionKind::BadCost, Vec::new())
                        });
                }
                (None, _) => {}
                // Two lines: never guess which one counts.
                (Some(_), Some(_)) => {
                    return Err(RateLimitRejection::new(
                        RateLimitRejectionKind::BadCost,
                        Vec::new(),
                    ));
                }
            }
        }
        Ok(self.cost_fn.as_ref().map_or(1, |cost| cost(parts)))
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
