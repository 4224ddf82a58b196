//! The response future: the shared decide-then-call future, deciding by
//! the tenant's resolution.

use portcullis_identity::response::Rejection;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Request;
use portcullis_identity::observe;
use portcullis_identity::response::{DecideThenCall, Decision, ResponseHeaders};

use super::decide::{Decided, stamp};
use super::layer::Config;
use super::rejection::TenantRejection;
use crate::resolver::BoxFuture;

/// Response future of [`ResolveTenant`](crate::ResolveTenant): resolving
/// the tenant, calling the inner service, or rejected.
pub type ResolveTenantFuture<S, B> = DecideThenCall<S, B, ResolvingTenant>;

/// A request's tenant being resolved by a resolver that answers later
/// (the control plane).
pub struct ResolvingTenant {
    pub(super) decided: BoxFuture<'static, Decided>,
    pub(super) config: Arc<Config>,
}

impl std::fmt::Debug for ResolvingTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvingTenant").finish_non_exhaustive()
    }
}

impl<B> Decision<B> for ResolvingTenant {
    type Rejection = TenantRejection;

    fn poll_decide(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut Request<B>,
    ) -> Poll<Result<ResponseHeaders, TenantRejection>> {
        let decided = match ready!(self.decided.as_mut().poll(cx)) {
            Ok(decided) => decided,
            Err(rejection) => return Poll::Ready(Err(rejection)),
        };
        let config = &self.config;
        stamp(req, decided, &config.tenant_header, &config.caller_header);
        Poll::Ready(Ok(ResponseHeaders::new()))
    }

    fn on_rejection(rejection: &TenantRejection) {
        observe::rejected(Rejection::layer(rejection), Rejection::reason(rejection));
        #[cfg(feature = "tracing")]
        tracing::debug!(reason = %rejection, "tenant layer refused the request");
    }
}
