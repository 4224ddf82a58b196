//! [`RateLimitLayer`]: one bucket per request key, the quota from the
//! tenant's plan or the default, `429` from `call`, RateLimit headers on
//! every answer.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use portcullis_identity::Tenant;
use portcullis_identity::response::{Rejection, ResponseBody, rejection_response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{BucketKey, Clock, KeyChain, MemoryStore, Outcome, Quota};

/// Checks a bucket; implemented by the stores.
pub trait Limiter: Send + Sync + 'static {
    /// Charges `cost` to `key` under `quota`, if it fits.
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Outcome;
}

impl<C: Clock> Limiter for MemoryStore<C> {
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Outcome {
        MemoryStore::check(self, key, quota, cost)
    }
}

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

/// Rate limits requests; see the [crate docs](crate).
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    limiter: Arc<dyn Limiter>,
    keys: KeyChain,
    default_quota: Option<Quota>,
    missing_key: MissingKey,
    legacy_headers: bool,
    shadow: bool,
    /// Built once: the default policy's header never changes.
    default_policy_header: Option<HeaderValue>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("keys", &self.shared.keys)
            .field("default_quota", &self.shared.default_quota)
            .field("missing_key", &self.shared.missing_key)
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

    /// Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset`.
    #[must_use]
    pub fn legacy_headers(self, on: bool) -> Self {
        self.edit(|s| s.legacy_headers = on)
    }

    /// Count and report, never deny: for trying a quota on live traffic.
    #[must_use]
    pub fn shadow(self, on: bool) -> Self {
        self.edit(|s| s.shadow = on)
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

/// The service [`RateLimitLayer`] makes.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Why [`RateLimit`] turned a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRejection {
    kind: RateLimitRejectionKind,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The kind of a [`RateLimitRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitRejectionKind {
    /// Over quota: `429` with `Retry-After`.
    TooManyRequests,
    /// No key source named a bucket: `401`.
    NoKey,
}

impl RateLimitRejection {
    /// What went wrong.
    pub fn kind(&self) -> RateLimitRejectionKind {
        self.kind
    }
}

impl Rejection for RateLimitRejection {
    fn status(&self) -> StatusCode {
        match self.kind {
            RateLimitRejectionKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            RateLimitRejectionKind::NoKey => StatusCode::UNAUTHORIZED,
        }
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self.kind {
            RateLimitRejectionKind::TooManyRequests => {
                "rate limit exceeded; retry after the Retry-After seconds\n"
            }
            RateLimitRejectionKind::NoKey => {
                "no rate-limit key: the request carries no credential or address to count it by\n"
            }
        })
    }

    fn headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A decision, the headers that report it, and the wait when denied.
type Verdict = (
    RateLimitDecision,
    Vec<(HeaderName, HeaderValue)>,
    Option<Duration>,
);

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Shared {
    /// The decision and the headers that report it.
    fn decide(
        &self,
        source: &'static str,
        key: BucketKey,
        tenant: Option<&Tenant>,
    ) -> Option<Verdict> {
        let (policy, quota) = match tenant
            .and_then(Tenant::quota)
            .and_then(|q| Quota::per_minute(q.rate_per_min, q.burst).ok())
        {
            Some(plan) => ("tenant", plan),
            None => ("default", self.default_quota?),
        };
        let outcome = self.limiter.check(key, &quota, 1);
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
        let mut headers = vec![
            (HeaderName::from_static("ratelimit-policy"), policy_value),
            (
                HeaderName::from_static("ratelimit"),
                header_value(format!("\"{policy}\";r={remaining};t={}", ceil_secs(reset))),
            ),
        ];
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
        if let Some(wait) = retry_after {
            headers.push((
                http::header::RETRY_AFTER,
                HeaderValue::from(ceil_secs(wait).max(1)),
            ));
        }
        Some((decision, headers, retry_after))
    }
}

/// `RateLimit-Policy` for `quota` under `policy`.
fn policy_header(policy: &str, quota: &Quota) -> HeaderValue {
    header_value(format!(
        "\"{policy}\";q={};w={}",
        quota.rate(),
        quota.period().as_secs().max(1)
    ))
}

/// Header values made here are digits, letters and quotes.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    /// Only the inner service's readiness: quota is answered in `call`,
    /// never by making callers wait.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let (mut parts, body) = req.into_parts();
        let Some((source, key)) = shared.keys.key(&parts) else {
            return match shared.missing_key {
                MissingKey::Allow => ResponseFuture::inner(
                    self.inner.call(Request::from_parts(parts, body)),
                    Vec::new(),
                ),
                MissingKey::Reject => ResponseFuture::rejected(RateLimitRejection {
                    kind: RateLimitRejectionKind::NoKey,
                    headers: Vec::new(),
                }),
            };
        };
        let Some((decision, headers, retry_after)) =
            shared.decide(source, key, parts.extensions.get::<Tenant>())
        else {
            // No quota applies: unlimited.
            return ResponseFuture::inner(
                self.inner.call(Request::from_parts(parts, body)),
                Vec::new(),
            );
        };
        if retry_after.is_some() && !shared.shadow {
            #[cfg(feature = "tracing")]
            tracing::debug!(key_source = source, "rate limit exceeded");
            return ResponseFuture::rejected(RateLimitRejection {
                kind: RateLimitRejectionKind::TooManyRequests,
                headers,
            });
        }
        #[cfg(feature = "tracing")]
        if retry_after.is_some() {
            tracing::info!(key_source = source, "shadow rate limit: would have denied");
        }
        parts.extensions.insert(decision);
        // The headers of an allowed answer carry no Retry-After.
        let headers = headers
            .into_iter()
            .filter(|(name, _)| name != http::header::RETRY_AFTER)
            .collect();
        ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)), headers)
    }
}

pin_project! {
    /// Response future of [`RateLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F, headers: Vec<(HeaderName, HeaderValue)> },
        Rejected { rejection: RateLimitRejection },
    }
}

impl<F> ResponseFuture<F> {
    fn inner(future: F, headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future, headers },
        }
    }

    fn rejected(rejection: RateLimitRejection) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { rejection },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, headers } => {
                let mut res = ready!(future.poll(cx))?;
                for (name, value) in headers.drain(..) {
                    res.headers_mut().insert(name, value);
                }
                Poll::Ready(Ok(res.map(ResponseBody::inner)))
            }
            KindProj::Rejected { rejection } => Poll::Ready(Ok(rejection_response(rejection))),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
