//! The response future: resolving, calling the inner service, or rejected.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_identity::observe;
use portcullis_identity::response::{ResponseBody, rejection_response};
use tower_service::Service;

use super::decide::{Decision, stamp};
use super::layer::Config;
use super::rejection::{TenantRejection, TenantRejectionKind};
use crate::resolver::BoxFuture;

pin_project! {
    /// Response future of [`ResolveTenant`](crate::ResolveTenant).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        pub(super) state: State<S, ReqBody, S::Future>,
    }
}

/// A request waiting for its tenant.
pub(super) struct Waiting<S, B> {
    pub(super) decision: BoxFuture<'static, Decision>,
    pub(super) request: Option<Request<B>>,
    pub(super) inner: Option<S>,
    pub(super) config: Arc<Config>,
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<S, B, F> {
        Resolving { waiting: Box<Waiting<S, B>> },
        Calling { #[pin] future: F },
        Rejected { rejection: TenantRejection },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn rejected(rejection: TenantRejection) -> Self {
        ResponseFuture {
            state: State::Rejected { rejection },
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
                StateProj::Calling { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Rejected { rejection } => {
                    // Here, not where it was decided: decided now or after
                    // resolving, every refusal passes this point once.
                    observe::rejected("tenant", rejection.kind.label());
                    #[cfg(feature = "tracing")]
                    tracing::debug!(reason = %rejection, "tenant layer refused the request");
                    return Poll::Ready(Ok(rejection_response(rejection)));
                }
                StateProj::Resolving { waiting } => {
                    match ready!(waiting.decision.as_mut().poll(cx)) {
                        Err(rejection) => State::Rejected { rejection },
                        Ok(decided) => match (waiting.request.take(), waiting.inner.take()) {
                            (Some(mut req), Some(mut inner)) => {
                                let config = &waiting.config;
                                stamp(
                                    &mut req,
                                    decided,
                                    &config.tenant_header,
                                    &config.caller_header,
                                );
                                State::Calling {
                                    future: inner.call(req),
                                }
                            }
                            _ => State::Rejected {
                                rejection: TenantRejection::new(
                                    TenantRejectionKind::Internal,
                                    "polled after completion",
                                ),
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
