//! What the limiter decided for one request, and the headers that say so.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use portcullis_identity::Tenant;
use portcullis_identity::observe;
use portcullis_identity::response::{ResponseHeaders, ceil_secs};

use std::sync::Arc;

use super::layer::{OnStoreError, Shared};
use super::rejection::{RateLimitRejection, RateLimitRejectionKind};
use crate::limiter::StoreError;
use crate::{Outcome, Policy};

/// What the limiter decided, for handlers (in the request's extensions;
/// with the `axum` feature, an extractor) and for logs.
///
/// The top-level fields describe the tightest policy (the fewest requests
/// left); [`policies`](Self::policies) has every one, tightest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Which key source named the bucket (`cn`, `bearer`, `ip`, ...).
    pub key_source: &'static str,
    /// The tightest policy's name.
    pub policy: Arc<str>,
    /// Its requests per window.
    pub limit: u32,
    /// Its window, in seconds.
    pub window: u64,
    /// Requests of cost 1 it still allows now.
    pub remaining: u32,
    /// Until its bucket is full again.
    pub reset: Duration,
    /// What this request was charged (in every policy).
    pub cost: u32,
    /// Whether this request was allowed (always `true` in shadow mode's
    /// forwarded requests; see `would_deny`).
    pub allowed: bool,
    /// In shadow mode: whether the request would have been denied.
    pub would_deny: bool,
    /// Every policy applied, tightest first.
    pub policies: Vec<PolicyState>,
}

/// One policy's state after a request (see [`RateLimitDecision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    /// The policy's name.
    pub name: Arc<str>,
    /// Requests per window.
    pub limit: u32,
    /// The window, in seconds.
    pub window: u64,
    /// Requests of cost 1 still allowed now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Whether this policy allowed the request.
    pub allowed: bool,
}

/// The policies a request is counted under: one (no allocation) or
/// several.
#[derive(Clone)]
pub(super) enum PolicySet {
    One(Policy),
    /// The configured ones as they are (shared), or with a plan in.
    Many(Arc<[Policy]>),
}

impl PolicySet {
    pub(super) fn as_slice(&self) -> &[Policy] {
        match self {
            PolicySet::One(policy) => std::slice::from_ref(policy),
            PolicySet::Many(policies) => policies,
        }
    }
}

/// The policies and cost a request is counted under, and the key source.
#[derive(Clone)]
pub(super) struct Applied {
    pub(super) source: &'static str,
    pub(super) policies: PolicySet,
    pub(super) cost: u32,
}

/// What the store answered: one outcome per policy, in order.
pub(super) type Answer<'a> = Result<&'a [Outcome], &'a StoreError>;

/// One policy's answer, as the list [`Shared::judge`] reads.
pub(super) fn one(answer: &Result<Outcome, StoreError>) -> Answer<'_> {
    answer.as_ref().map(std::slice::from_ref)
}

/// Several policies' answer, as [`Shared::judge`] reads it.
pub(super) fn all(answer: &Result<Vec<Outcome>, StoreError>) -> Answer<'_> {
    answer.as_ref().map(Vec::as_slice)
}

impl Shared {
    /// The configured policies, the tenant's plan replacing the one it
    /// names (added when none is configured); `None`: unlimited.
    pub(super) fn policies_for(&self, tenant: Option<&Tenant>) -> Option<PolicySet> {
        // A plan is valid by construction: never silently "no limit".
        let plan = tenant.and_then(Tenant::quota);
        match (&self.policies[..], plan) {
            ([], None) => None,
            ([], Some(plan)) => Some(PolicySet::One(Policy::named(
                self.plan_policy.clone(),
                plan,
            ))),
            ([one], None) => Some(PolicySet::One(one.clone())),
            ([one], Some(plan)) if one.name() == self.plan_policy.as_str() => {
                Some(PolicySet::One(one.with_quota(plan)))
            }
            (_, None) => Some(PolicySet::Many(self.policies.clone())),
            (many, Some(plan)) => {
                let mut policies = many.to_vec();
                match policies
                    .iter_mut()
                    .find(|p| p.name() == self.plan_policy.as_str())
                {
                    Some(named) => *named = named.with_quota(plan),
                    None => policies.push(Policy::named(self.plan_policy.clone(), plan)),
                }
                Some(PolicySet::Many(Arc::from(policies)))
            }
        }
    }

    /// The decision and the headers that report it; `Err` when the cost
    /// is over a policy's burst (no wait would let it pass).
    fn verdict(&self, applied: &Applied, outcomes: &[Outcome]) -> Verdict {
        let policies = applied.policies.as_slice();
        // One pass, one allocation: the states become the decision's list.
        let mut states = Vec::with_capacity(policies.len());
        // The longest wait among the policies that refused.
        let mut retry_after: Option<Duration> = None;
        let mut never = None;
        for (policy, outcome) in policies.iter().zip(outcomes) {
            let quota = policy.quota();
            let (remaining, reset, wait) = match *outcome {
                Outcome::Allowed { remaining, reset } => (remaining, reset, None),
                Outcome::Denied { retry_after, reset } => (0, reset, Some(retry_after)),
                Outcome::Never => {
                    never.get_or_insert_with(|| (policy.shared_name().clone(), quota.burst()));
                    (0, Duration::ZERO, Some(Duration::MAX))
                }
            };
            retry_after = retry_after.max(wait);
            states.push(PolicyState {
                name: policy.shared_name().clone(),
                limit: quota.rate(),
                window: quota.period().as_secs().max(1),
                remaining,
                reset,
                allowed: wait.is_none(),
            });
        }
        // Tightest first: the fewest left, then the shortest window.
        if states.len() > 1 {
            states.sort_by_key(|state| (state.remaining, state.window));
        }
        let mut headers = Vec::with_capacity(if self.legacy_headers { 6 } else { 3 });
        let policy_value = match (policies, &self.policies[..]) {
            ([applied], [configured]) if applied == configured => self.policy_headers[0].clone(),
            _ => list_value(
                states
                    .iter()
                    .map(|state| (&*state.name, u64::from(state.limit), state.window)),
                POLICY_KEYS,
            ),
        };
        headers.push((RATELIMIT_POLICY, policy_value));
        let rate_limit = list_value(
            states.iter().map(|state| {
                (
                    &*state.name,
                    u64::from(state.remaining),
                    ceil_secs(state.reset),
                )
            }),
            RATE_LIMIT_KEYS,
        );
        headers.push((RATELIMIT, rate_limit));
        let tightest = &states[0];
        if self.legacy_headers {
            headers.push((X_RATELIMIT_LIMIT, HeaderValue::from(tightest.limit)));
            headers.push((X_RATELIMIT_REMAINING, HeaderValue::from(tightest.remaining)));
            headers.push((
                X_RATELIMIT_RESET,
                HeaderValue::from(ceil_secs(tightest.reset)),
            ));
        }
        // Retry-After only on a refusal some wait can end (a shadow-mode
        // pass carries none, and neither does a cost over a burst).
        if let Some(wait) = retry_after.filter(|_| !self.shadow && never.is_none()) {
            headers.push((
                http::header::RETRY_AFTER,
                portcullis_identity::response::retry_after(wait),
            ));
        }
        let decision = RateLimitDecision {
            key_source: applied.source,
            policy: tightest.name.clone(),
            limit: tightest.limit,
            window: tightest.window,
            remaining: tightest.remaining,
            reset: tightest.reset,
            cost: applied.cost,
            allowed: retry_after.is_none() || self.shadow,
            would_deny: retry_after.is_some(),
            policies: states,
        };
        Verdict {
            decision,
            headers,
            refused: retry_after.is_some(),
            never,
        }
    }

    /// What becomes of a request once the store has answered: on its way
    /// (its decision in its extensions, and the headers for its response),
    /// or a rejection.
    pub(super) fn judge<B>(
        &self,
        applied: &Applied,
        answer: Answer<'_>,
        req: &mut Request<B>,
    ) -> Result<ResponseHeaders, RateLimitRejection> {
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(error) => {
                return match self.on_store_error {
                    OnStoreError::FailOpen => {
                        observe::rate_limit("store_error_open");
                        observe::record("decision", &"allowed");
                        #[cfg(feature = "tracing")]
                        tracing::warn!(%error, key_source = applied.source, "rate limit not counted: failing open");
                        let _ = error;
                        Ok(Vec::new())
                    }
                    OnStoreError::FailClosed => {
                        observe::rate_limit("store_error_closed");
                        #[cfg(feature = "tracing")]
                        tracing::warn!(%error, key_source = applied.source, "rate limit store failed: refusing");
                        let _ = error;
                        Err(RateLimitRejection::new(
                            RateLimitRejectionKind::StoreUnavailable,
                            vec![(http::header::RETRY_AFTER, HeaderValue::from(1u32))],
                        ))
                    }
                };
            }
        };
        let Verdict {
            decision,
            headers,
            refused,
            never,
        } = self.verdict(applied, outcomes);
        observe::record("key", &applied.source);
        if refused && !self.shadow {
            observe::rate_limit("limited");
            #[cfg(feature = "tracing")]
            tracing::debug!(key_source = applied.source, policy = %decision.policy, "rate limit exceeded");
            return Err(match never {
                Some((policy, burst)) => RateLimitRejection::new(
                    RateLimitRejectionKind::CostOverBurst,
                    headers,
                )
                .with_detail(format!(
                    "this request costs {}, more than the burst of {burst} of the rate-limit \
                     policy \"{policy}\": no wait lets it pass; make it smaller\n",
                    applied.cost
                )),
                None => RateLimitRejection::new(RateLimitRejectionKind::TooManyRequests, headers),
            });
        }
        observe::rate_limit(if refused { "shadow_limited" } else { "allowed" });
        observe::record("decision", &"allowed");
        #[cfg(feature = "tracing")]
        if refused {
            tracing::info!(
                key_source = applied.source,
                "shadow rate limit: would have denied"
            );
        }
        req.extensions_mut().insert(decision);
        Ok(headers)
    }
}

/// A decision, the headers that report it, whether it refuses, and the
/// policy a cost over its burst can never pass.
struct Verdict {
    decision: RateLimitDecision,
    headers: ResponseHeaders,
    refused: bool,
    never: Option<(Arc<str>, u32)>,
}

/// The headers' names, built at compile time (`from_static` at run time
/// would check each name's bytes on every request).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The parameters of a `RateLimit-Policy` item: quota and window.
const POLICY_KEYS: (&[u8], &[u8]) = (b";q=", b";w=");
/// The parameters of a `RateLimit` item: remaining and reset.
const RATE_LIMIT_KEYS: (&[u8], &[u8]) = (b";r=", b";t=");

/// `RateLimit-Policy` for one policy (built once, when configured).
pub(super) fn policy_header(policy: &Policy) -> HeaderValue {
    let quota = policy.quota();
    list_value(
        [(
            policy.name(),
            u64::from(quota.rate()),
            quota.period().as_secs().max(1),
        )],
        POLICY_KEYS,
    )
}

/// A `RateLimit` or `RateLimit-Policy` list: `"<name>";<k>=<a>;<k>=<b>`
/// per item, comma-separated. Written without `format!`, into a vector of
/// exactly its length (which `Bytes` then owns without a second
/// allocation): it is built on every request. Policy names are letters,
/// digits, `-` and `_`.
fn list_value<'a>(
    items: impl IntoIterator<Item = (&'a str, u64, u64), IntoIter: Clone>,
    (first, second): (&[u8], &[u8]),
) -> HeaderValue {
    let items = items.into_iter();
    let width = |n: u64| n.checked_ilog10().map_or(1, |log| log as usize + 1);
    let length: usize = items
        .clone()
        .enumerate()
        .map(|(index, (name, a, b))| {
            usize::from(index > 0) * 2
                + name.len()
                + 2
                + first.len()
                + width(a)
                + second.len()
                + width(b)
        })
        .sum();
    let mut scratch = [0; 20];
    let mut out = Vec::with_capacity(length);
    for (index, (name, a, b)) in items.enumerate() {
        if index > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
        out.extend_from_slice(first);
        out.extend_from_slice(digits(a, &mut scratch));
        out.extend_from_slice(second);
        out.extend_from_slice(digits(b, &mut scratch));
    }
    debug_assert_eq!(out.len(), length);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `n` in decimal, in the end of `buf`.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}
