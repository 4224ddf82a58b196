//! [`ResolveTenant`]: strip, read the principals, decide now or wait.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_identity::response::ResponseBody;
use portcullis_identity::{ClientIdentity, observe};
use tower_service::Service;

use super::decide::{decide, decide_now, each, stamp};
use super::future::{ResolveTenantFuture, ResolvingTenant};
use super::layer::Config;
use super::rejection::{TenantRejection, TenantRejectionKind};
use crate::resolver::Principal;

/// The service [`TenantLayer`](crate::TenantLayer) makes.
#[derive(Clone)]
pub struct ResolveTenant<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for ResolveTenant<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveTenant")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ResolveTenant<S> {
    portcullis_identity::define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResolveTenant<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = observe::InSpan<ResolveTenantFuture<S, ReqBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        observe::in_request_span(req, |req| self.respond(req))
    }
}

impl<S> ResolveTenant<S> {
    /// The layer's work on `req`, inside the request span.
    fn respond<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
    ) -> ResolveTenantFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        let config = &self.config;
        // Strip before anything else, on every request.
        let nominated = config.protected.nominated_by_connection(req.headers());
        observe::stripped(
            "tenant",
            config.protected.strip(req.headers_mut(), |_| false),
        );
        let principals = match nominated {
            Some(token) => Err(TenantRejection::new(
                TenantRejectionKind::BadRequest,
                format!("Connection header nominates the protected header {token:?}"),
            )),
            None if !config.resolve => {
                return ResolveTenantFuture::calling(self.inner.call(req), Vec::new());
            }
            None => config.principals(req.headers(), req.extensions().get::<ClientIdentity>()),
        };
        let principals = match principals {
            Ok(principals) => principals,
            Err(rejection) => return ResolveTenantFuture::rejected(rejection),
        };
        // The span names the key (a digest prefix) even when it is refused.
        if let Some(Principal::Bearer(digest)) = each(&principals).find(|p| !p.is_certificate()) {
            observe::bearer(digest);
        }
        // Every answer at hand: decide now, no future to box.
        match decide_now(config, &principals) {
            Some(Ok(decided)) => {
                stamp(
                    &mut req,
                    decided,
                    &config.tenant_header,
                    &config.caller_header,
                );
                return ResolveTenantFuture::calling(self.inner.call(req), Vec::new());
            }
            Some(Err(rejection)) => return ResolveTenantFuture::rejected(rejection),
            None => {}
        }
        // The service that was polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let resolving = ResolvingTenant {
            decided: Box::pin(decide(config.clone(), principals)),
            config: config.clone(),
        };
        ResolveTenantFuture::deciding(resolving, req, inner)
    }
}
