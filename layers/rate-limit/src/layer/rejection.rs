//! Why the limiter turned a request away.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use portcullis_identity::response::Rejection;

/// Why [`RateLimit`](crate::RateLimit) turned a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRejection {
    kind: RateLimitRejectionKind,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, when it says more than the kind.
    detail: Option<String>,
}

/// The kind of a [`RateLimitRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitRejectionKind {
    /// Over quota: `429` with `Retry-After`.
    TooManyRequests,
    /// The request costs more than a policy's burst: `429` without
    /// `Retry-After`, since no wait lets it pass.
    CostOverBurst,
    /// The cost header is not a whole number (or is sent twice): `400`.
    BadCost,
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
            RateLimitRejectionKind::CostOverBurst => "cost_over_burst",
            RateLimitRejectionKind::BadCost => "bad_cost",
            RateLimitRejectionKind::NoKey => "no_rate_limit_key",
            RateLimitRejectionKind::StoreUnavailable => "rate_limit_store_unavailable",
        }
    }
}

impl RateLimitRejection {
    pub(super) fn new(
        kind: RateLimitRejectionKind,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
        RateLimitRejection {
            kind,
            headers,
            detail: None,
        }
    }

    pub(super) fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(detail);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> RateLimitRejectionKind {
        self.kind
    }
}

impl Rejection for RateLimitRejection {
    fn layer(&self) -> &'static str {
        "rate_limit"
    }

    fn reason(&self) -> &'static str {
        self.kind.label()
    }

    fn status(&self) -> StatusCode {
        match self.kind {
            RateLimitRejectionKind::TooManyRequests | RateLimitRejectionKind::CostOverBurst => {
                StatusCode::TOO_MANY_REQUESTS
            }
            RateLimitRejectionKind::BadCost => StatusCode::BAD_REQUEST,
            RateLimitRejectionKind::NoKey => StatusCode::UNAUTHORIZED,
            RateLimitRejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body_text(&self) -> Cow<'static, str> {
        if let Some(detail) = &self.detail {
            return Cow::Owned(detail.clone());
        }
        Cow::Borrowed(match self.kind {
            RateLimitRejectionKind::TooManyRequests => {
                "rate limit exceeded; retry after the Retry-After seconds\n"
            }
            RateLimitRejectionKind::CostOverBurst => {
                "this request costs more than a rate-limit policy's burst: no wait lets it pass\n"
            }
            RateLimitRejectionKind::BadCost => "the request-cost header is not one whole number\n",
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
