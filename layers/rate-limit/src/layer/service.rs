//! [`RateLimit`]: key the request, check its bucket now or later.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_identity::Tenant;
use portcullis_identity::observe;
use portcullis_identity::response::ResponseBody;
use tower_service::Service;

use super::decision::{Answer, Applied, PolicySet, all, one};
use super::future::{CheckingBucket, Pending, RateLimitFuture};
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
        let Some(policies) = shared.policies_for(parts.extensions.get::<Tenant>()) else {
            // No policy applies (no plan, none configured): unlimited, no
            // key needed.
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
                MissingKey::Reject => RateLimitFuture::rejected(RateLimitRejection::new(
                    RateLimitRejectionKind::NoKey,
                    Vec::new(),
                )),
            };
        };
        let cost = match shared.cost_of(&parts) {
            Ok(cost) => cost,
            Err(rejection) => return RateLimitFuture::rejected(rejection),
        };
        let applied = Applied {
            source,
            policies,
            cost,
        };
        let req = Request::from_parts(parts, body);
        let pending = match &applied.policies {
            PolicySet::One(policy) => {
                match shared
                    .limiter
                    .check(policy.bucket(key), &policy.quota(), cost)
                    .now()
                {
                    // The answer at hand (the memory store): no future to
                    // box, no vector.
                    Ok(answer) => {
                        return self.decided(&applied, one(&answer), req);
                    }
                    Err(later) => Pending::One(later),
                }
            }
            PolicySet::Many(policies) => {
                let checks = policies
                    .iter()
                    .map(|policy| (policy.bucket(key), policy.quota(), cost))
                    .collect();
                match shared.limiter.check_all(checks).now() {
                    Ok(answer) => {
                        return self.decided(&applied, all(&answer), req);
                    }
                    Err(later) => Pending::All(later),
                }
            }
        };
        // The service that was polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let bucket = CheckingBucket {
            pending,
            applied,
            shared: shared.clone(),
        };
        RateLimitFuture::deciding(bucket, req, inner)
    }

    /// The store answered at once: call the inner service or refuse.
    fn decided<ReqBody, ResBody>(
        &mut self,
        applied: &Applied,
        answer: Answer<'_>,
        mut req: Request<ReqBody>,
    ) -> RateLimitFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        match self.shared.judge(applied, answer, &mut req) {
            Ok(headers) => RateLimitFuture::calling(self.inner.call(req), headers),
            Err(rejection) => RateLimitFuture::rejected(rejection),
        }
    }
}
