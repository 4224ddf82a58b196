//! The axum extractor for [`RateLimitDecision`] (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::decision::RateLimitDecision;

/// Extracts what [`RateLimitLayer`](crate::RateLimitLayer) decided: the
/// budget left under every policy. Use `Option<RateLimitDecision>` on
/// routes a request may reach unlimited (no policy, no plan).
impl<S: Send + Sync> FromRequestParts<S> for RateLimitDecision {
    type Rejection = MissingRateLimitDecision;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RateLimitDecision>()
            .cloned()
            .ok_or(MissingRateLimitDecision(()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RateLimitDecision {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<RateLimitDecision>().cloned())
    }
}

/// The handler asked for a [`RateLimitDecision`] and the request has none:
/// `500`, because the layer is not on this route, or no policy applied.
#[derive(Debug, Clone)]
pub struct MissingRateLimitDecision(());

impl MissingRateLimitDecision {
    /// `500 Internal Server Error`.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// What to fix.
    pub fn body_text(&self) -> &'static str {
        "no RateLimitDecision on this request: add portcullis RateLimitLayer before this handler \
         with a policy, or take Option<RateLimitDecision>"
    }
}

impl IntoResponse for MissingRateLimitDecision {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
    }
}
