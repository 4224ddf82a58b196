//! Why the tenant layer turned a request away.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use portcullis_identity::response::Rejection;

/// Why a request was turned away; found in the response's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRejection {
    pub(super) kind: TenantRejectionKind,
    pub(super) reason: Cow<'static, str>,
    pub(super) retry_after: Option<Duration>,
}

/// The kind of a [`TenantRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantRejectionKind {
    /// `400`: a malformed `Authorization`, or a `Connection` header naming
    /// a protected header.
    BadRequest,
    /// `401`: no credential, or one no resolver knows.
    Unauthenticated,
    /// `403`: the tenant is inactive, or certificate and key disagree.
    Forbidden,
    /// `503`: resolution is unavailable; `Retry-After` says when to retry.
    Unavailable,
    /// `500`: a resolved tenant id or caller cannot be written as a header.
    Internal,
}

impl TenantRejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            TenantRejectionKind::BadRequest => "bad_request",
            TenantRejectionKind::Unauthenticated => "unauthenticated",
            TenantRejectionKind::Forbidden => "forbidden",
            TenantRejectionKind::Unavailable => "tenant_unavailable",
            TenantRejectionKind::Internal => "internal",
        }
    }
}

impl TenantRejection {
    pub(super) fn new(kind: TenantRejectionKind, reason: impl Into<Cow<'static, str>>) -> Self {
        TenantRejection {
            kind,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TenantRejectionKind {
        self.kind
    }

    /// The reason the body gives.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for TenantRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for TenantRejection {}

impl Rejection for TenantRejection {
    fn layer(&self) -> &'static str {
        "tenant"
    }

    fn reason(&self) -> &'static str {
        self.kind.label()
    }

    fn status(&self) -> StatusCode {
        match self.kind {
            TenantRejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            TenantRejectionKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            TenantRejectionKind::Forbidden => StatusCode::FORBIDDEN,
            TenantRejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            TenantRejectionKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Owned(format!("{}\n", self.reason))
    }

    fn headers(&self, headers: &mut HeaderMap) {
        if let Some(wait) = self.retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                portcullis_identity::response::retry_after(wait),
            );
        }
        if self.kind == TenantRejectionKind::Unauthenticated {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
    }
}
