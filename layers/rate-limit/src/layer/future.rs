//! The response future: checking, calling the inner service, or rejected.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use portcullis_identity::observe;
use portcullis_identity::response::{ResponseBody, rejection_response};
use tower_service::Service;

use super::decision::Applied;
use super::layer::Shared;
use super::rejection::{RateLimitRejection, RateLimitRejectionKind};
use crate::limiter::Checking;

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        pub(super) state: State<S, ReqBody, S::Future>,
    }
}

/// A request waiting for the store's answer.
pub(super) struct Waiting<S, B> {
    pub(super) checking: Checking,
    pub(super) applied: Applied,
    pub(super) request: Option<Request<B>>,
    pub(super) inner: Option<S>,
    pub(super) shared: Arc<Shared>,
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<S, B, F> {
        Checking { waiting: Box<Waiting<S, B>> },
        Calling { #[pin] future: F, headers: Vec<(HeaderName, HeaderValue)> },
        Rejected { rejection: RateLimitRejection },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn calling(future: S::Future, headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        ResponseFuture {
            state: State::Calling { future, headers },
        }
    }

    pub(super) fn rejected(rejection: RateLimitRejection) -> Self {
        ResponseFuture {
            state: State::Rejected { rejection },
        }
    }

    pub(super) fn concluded(concluded: Concluded<S::Future>) -> Self {
        ResponseFuture {
            state: State::concluded(concluded),
        }
    }
}

/// The inner call and the headers for its answer, or a rejection.
pub(super) type Concluded<F> = Result<(F, Vec<(HeaderName, HeaderValue)>), RateLimitRejection>;

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
