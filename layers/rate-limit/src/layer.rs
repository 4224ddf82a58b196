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
use portcullis_identity::observe;
use portcullis_identity::response::{Rejection, ResponseBody, rejection_response};
use tower_layer::Layer;
use tower_service::Service;

use crate::limiter::{Checking, Limiter, StoreError};
use crate::{KeyChain, Outcome, Quota};

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
    on_store_error: OnStoreError,
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
    /// The store could not answer and the layer fails closed: `503`.
    StoreUnavailable,
}

impl RateLimitRejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            RateLimitRejectionKind::TooManyRequests => "rate_limited",
            RateLimitRejectionKind::NoKey => "no_rate_limit_key",
            RateLimitRejectionKind::StoreUnavailable => "rate_limit_store_unavailable",
        }
    }
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
            RateLimitRejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            RateLimitRejectionKind::StoreUnavailable => {
                "rate-limit store unavailable; retry after the Retry-After seconds\n"
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

/// The quota a request is counted under, and the policy's name.
#[derive(Clone, Copy)]
struct Applied {
    source: &'static str,
    policy: &'static str,
    quota: Quota,
}

impl Shared {
    /// The tenant's plan, else the default, with the policy's name;
    /// `None`: unlimited.
    fn quota_for(&self, tenant: Option<&Tenant>) -> Option<(&'static str, Quota)> {
        match tenant
            .and_then(Tenant::quota)
            .and_then(|q| Quota::per_minute(q.rate_per_min, q.burst).ok())
        {
            Some(plan) => Some(("tenant", plan)),
            None => Some(("default", self.default_quota?)),
        }
    }

    /// The decision and the headers that report it.
    fn verdict(&self, applied: Applied, outcome: Outcome) -> Verdict {
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
                HeaderValue::from(ceil_secs(wait).max(1)),
            ));
        }
        (decision, headers, retry_after)
    }

    /// What becomes of a request once the store has answered: the inner
    /// service's call, or a rejection.
    fn conclude<S, B>(
        &self,
        applied: Applied,
        answer: Result<Outcome, StoreError>,
        mut req: Request<B>,
        inner: &mut S,
    ) -> Concluded<S::Future>
    where
        S: Service<Request<B>>,
    {
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
                        Ok((inner.call(req), Vec::new()))
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
        Ok((inner.call(req), headers))
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    /// Only the inner service's readiness: quota is answered in `call`,
    /// never by making callers wait.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let (parts, body) = req.into_parts();
        let Some((policy, quota)) = shared.quota_for(parts.extensions.get::<Tenant>()) else {
            // No quota applies (no plan, no default): unlimited, no key
            // needed.
            observe::record("decision", &"allowed");
            return ResponseFuture::calling(
                self.inner.call(Request::from_parts(parts, body)),
                Vec::new(),
            );
        };
        let Some((source, key)) = shared.keys.key(&parts) else {
            return match shared.missing_key {
                MissingKey::Allow => {
                    observe::record("decision", &"allowed");
                    ResponseFuture::calling(
                        self.inner.call(Request::from_parts(parts, body)),
                        Vec::new(),
                    )
                }
                MissingKey::Reject => ResponseFuture::rejected(RateLimitRejection {
                    kind: RateLimitRejectionKind::NoKey,
                    headers: Vec::new(),
                }),
            };
        };
        let applied = Applied {
            source,
            policy,
            quota,
        };
        let req = Request::from_parts(parts, body);
        match shared.limiter.check(key, &applied.quota, 1).now() {
            // The answer at hand (the memory store): no future to box.
            Ok(answer) => {
                ResponseFuture::concluded(shared.conclude(applied, answer, req, &mut self.inner))
            }
            Err(checking) => {
                // The service that was polled ready goes with this request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Checking {
                        waiting: Box::new(Waiting {
                            checking,
                            applied,
                            request: Some(req),
                            inner: Some(inner),
                            shared: shared.clone(),
                        }),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// Response future of [`RateLimit`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
    }
}

/// A request waiting for the store's answer.
struct Waiting<S, B> {
    checking: Checking,
    applied: Applied,
    request: Option<Request<B>>,
    inner: Option<S>,
    shared: Arc<Shared>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        Checking { waiting: Box<Waiting<S, B>> },
        Calling { #[pin] future: F, headers: Vec<(HeaderName, HeaderValue)> },
        Rejected { rejection: RateLimitRejection },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn calling(future: S::Future, headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        ResponseFuture {
            state: State::Calling { future, headers },
        }
    }

    fn rejected(rejection: RateLimitRejection) -> Self {
        ResponseFuture {
            state: State::Rejected { rejection },
        }
    }

    fn concluded(concluded: Concluded<S::Future>) -> Self {
        ResponseFuture {
            state: State::concluded(concluded),
        }
    }
}

/// The inner call and the headers for its answer, or a rejection.
type Concluded<F> = Result<(F, Vec<(HeaderName, HeaderValue)>), RateLimitRejection>;

impl<S, B, F> State<S, B, F> {
    fn concluded(concluded: Concluded<F>) -> Self {
        match concluded {
            Ok((future, headers)) => State::Calling { future, headers },
            Err(rejection) => State::Rejected { rejection },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Calling { future, headers } => {
                    let mut res = ready!(future.poll(cx))?;
                    for (name, value) in headers.drain(..) {
                        res.headers_mut().insert(name, value);
                    }
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Rejected { rejection } => {
                    // Every refusal, decided at once or after the store
                    // answered, passes here once.
                    observe::rejected("rate_limit", rejection.kind.label());
                    return Poll::Ready(Ok(rejection_response(rejection)));
                }
                StateProj::Checking { waiting } => {
                    let answer = ready!(Pin::new(&mut waiting.checking).poll(cx));
                    match (waiting.request.take(), waiting.inner.take()) {
                        (Some(req), Some(mut inner)) => State::concluded(waiting.shared.conclude(
                            waiting.applied,
                            answer,
                            req,
                            &mut inner,
                        )),
                        // Polled after completion.
                        _ => State::Rejected {
                            rejection: RateLimitRejection {
                                kind: RateLimitRejectionKind::StoreUnavailable,
                                headers: Vec::new(),
                            },
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
