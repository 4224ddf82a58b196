//! [`RateLimit`]: key the request, check its bucket now or later.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_identity::Tenant;
use portcullis_identity::observe;
use portcullis_identity::response::ResponseBody;
use tower_service::Service;

use super::decision::Applied;
use super::future::{CheckingBucket, RateLimitFuture};
use super::layer::{MissingKey, Shared};
use super::rejection::{RateLimitRejection, RateLimitRejectionKind};

/// The service [`RateLimitLayer`](crate::RateLimitLayer) makes.
#[derive(Clone)]
pub struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S> RateLimit<S> {
    portcullis_identity::define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = observe::InSpan<RateLimitFuture<S, ReqBody>>;

    /// Only the inner service's readiness: quota is answered in `call`,
    /// never by making callers wait.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        observe::in_request_span(req, |req| self.respond(req))
    }
}

impl<S> RateLimit<S> {
    /// The layer's work on `req`, inside the request span.
    fn respond<ReqBody, ResBody>(&mut self, req: Request<ReqBody>) -> RateLimitFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        let shared = &self.shared;
        let (parts, body) = req.into_parts();
        let Some((policy, quota)) = shared.quota_for(parts.extensions.get::<Tenant>()) else {
            // No quota applies (no plan, no default): unlimited, no key
            // needed.
            observe::record("decision", &"allowed");
            return RateLimitFuture::calling(
                self.inner.call(Request::from_parts(parts, body)),
                Vec::new(),
            );
        };
        let Some((source, key)) = shared.keys.key(&parts) else {
            return match shared.missing_key {
                MissingKey::Allow => {
                    observe::record("decision", &"allowed");
                    RateLimitFuture::calling(
                        self.inner.call(Request::from_parts(parts, body)),
                        Vec::new(),
                    )
                }
                MissingKey::Reject => RateLimitFuture::rejected(RateLimitRejection {
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
        let mut req = req;
        match shared.limiter.check(key, &applied.quota, 1).now() {
            // The answer at hand (the memory store): no future to box.
            Ok(answer) => match shared.judge(applied, answer, &mut req) {
                Ok(headers) => RateLimitFuture::calling(self.inner.call(req), headers),
                Err(rejection) => RateLimitFuture::rejected(rejection),
            },
            Err(checking) => {
                // The service that was polled ready goes with this request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let bucket = CheckingBucket {
                    checking,
                    applied,
                    shared: shared.clone(),
                };
                RateLimitFuture::deciding(bucket, req, inner)
            }
        }
    }
}
