//! What the limiter decided for one request, and the headers that say so.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use portcullis_identity::Tenant;
use portcullis_identity::observe;
use portcullis_identity::response::{ResponseHeaders, ceil_secs};

use super::layer::{OnStoreError, Shared};
use super::rejection::{RateLimitRejection, RateLimitRejectionKind};
use crate::limiter::StoreError;
use crate::{Outcome, Quota};

/// What the limiter decided, for handlers (in the request's extensions)
/// and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Which key source named the bucket (`cn`, `bearer`, `ip`, ...).
    pub key_source: &'static str,
    /// The policy's name in the headers (`tenant` for a plan, else
    /// `default`).
    pub policy: &'static str,
    /// Requests per window.
    pub limit: u32,
    /// The window, in seconds.
    pub window: u64,
    /// Requests of cost 1 still allowed now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Whether this request was allowed (always `true` in shadow mode's
    /// forwarded requests; see `would_deny`).
    pub allowed: bool,
    /// In shadow mode: whether the request would have been denied.
    pub would_deny: bool,
}

/// A decision, the headers that report it, and the wait when denied.
pub(super) type Verdict = (
    RateLimitDecision,
    Vec<(HeaderName, HeaderValue)>,
    Option<Duration>,
);

/// The quota a request is counted under, and the policy's name.
#[derive(Clone, Copy)]
pub(super) struct Applied {
    pub(super) source: &'static str,
    pub(super) policy: &'static str,
    pub(super) quota: Quota,
}

impl Shared {
    /// The tenant's plan, else the default, with the policy's name;
    /// `None`: unlimited.
    pub(super) fn quota_for(&self, tenant: Option<&Tenant>) -> Option<(&'static str, Quota)> {
        // A plan is valid by construction: never silently "no limit".
        match tenant.and_then(Tenant::quota) {
            Some(plan) => Some(("tenant", plan)),
            None => Some(("default", self.default_quota?)),
        }
    }

    /// The decision and the headers that report it.
    pub(super) fn verdict(&self, applied: Applied, outcome: Outcome) -> Verdict {
        let Applied {
            source,
            policy,
            quota,
        } = applied;
        let window = quota.period().as_secs().max(1);
        let (remaining, reset, retry_after) = match outcome {
            Outcome::Allowed { remaining, reset } => (remaining, reset, None),
            Outcome::Denied { retry_after, reset } => (0, reset, Some(retry_after)),
            Outcome::Never => (0, Duration::ZERO, Some(Duration::from_secs(window))),
        };
        let decision = RateLimitDecision {
            key_source: source,
            policy,
            limit: quota.rate(),
            window,
            remaining,
            reset,
            allowed: retry_after.is_none() || self.shadow,
            would_deny: retry_after.is_some(),
        };
        let policy_value = match (&self.default_policy_header, policy) {
            (Some(value), "default") => value.clone(),
            _ => policy_header(policy, &quota),
        };
        let mut headers = Vec::with_capacity(if self.legacy_headers { 6 } else { 3 });
        headers.push((HeaderName::from_static("ratelimit-policy"), policy_value));
        headers.push((
            HeaderName::from_static("ratelimit"),
            rate_limit_value(policy, remaining, ceil_secs(reset)),
        ));
        if self.legacy_headers {
            headers.push((
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderValue::from(quota.rate()),
            ));
            headers.push((
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from(remaining),
            ));
            headers.push((
                HeaderName::from_static("x-ratelimit-reset"),
                HeaderValue::from(ceil_secs(reset)),
            ));
        }
        // Retry-After only on a refusal (a shadow-mode pass carries none).
        if let Some(wait) = retry_after.filter(|_| !self.shadow) {
            headers.push((
                http::header::RETRY_AFTER,
                portcullis_identity::response::retry_after(wait),
            ));
        }
        (decision, headers, retry_after)
    }

    /// What becomes of a request once the store has answered: on its way
    /// (its decision in its extensions, and the headers for its response),
    /// or a rejection.
    pub(super) fn judge<B>(
        &self,
        applied: Applied,
        answer: Result<Outcome, StoreError>,
        req: &mut Request<B>,
    ) -> Result<ResponseHeaders, RateLimitRejection> {
        let outcome = match answer {
            Ok(outcome) => outcome,
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
                        Err(RateLimitRejection {
                            kind: RateLimitRejectionKind::StoreUnavailable,
                            headers: vec![(http::header::RETRY_AFTER, HeaderValue::from(1u32))],
                        })
                    }
                };
            }
        };
        let (decision, headers, retry_after) = self.verdict(applied, outcome);
        observe::record("key", &applied.source);
        if retry_after.is_some() && !self.shadow {
            observe::rate_limit("limited");
            #[cfg(feature = "tracing")]
            tracing::debug!(key_source = applied.source, "rate limit exceeded");
            return Err(RateLimitRejection {
                kind: RateLimitRejectionKind::TooManyRequests,
                headers,
            });
        }
        observe::rate_limit(if retry_after.is_some() {
            "shadow_limited"
        } else {
            "allowed"
        });
        observe::record("decision", &"allowed");
        #[cfg(feature = "tracing")]
        if retry_after.is_some() {
            tracing::info!(
                key_source = applied.source,
                "shadow rate limit: would have denied"
            );
        }
        req.extensions_mut().insert(decision);
        Ok(headers)
    }
}

/// `RateLimit-Policy` for `quota` under `policy`.
pub(super) fn policy_header(policy: &str, quota: &Quota) -> HeaderValue {
    header_value(format!(
        "\"{policy}\";q={};w={}",
        quota.rate(),
        quota.period().as_secs().max(1)
    ))
}

/// `"<policy>";r=<remaining>;t=<reset>`, written without `format!`: it is
/// built on every request.
fn rate_limit_value(policy: &str, remaining: u32, reset_secs: u64) -> HeaderValue {
    let mut text = [0u8; 64];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let end = (len + bytes.len()).min(text.len());
        text[len..end].copy_from_slice(&bytes[..end - len]);
        len = end;
    };
    put(b"\"");
    put(policy.as_bytes());
    put(b"\";r=");
    put(digits(u64::from(remaining), &mut [0; 20]));
    put(b";t=");
    put(digits(reset_secs, &mut [0; 20]));
    HeaderValue::from_bytes(&text[..len]).unwrap_or_else(|_| HeaderValue::from_static(""))
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

/// Header values made here are digits, letters and quotes.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
