//! [`DecideThenCall`]: decide (perhaps later), then call the inner service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::{Rejection, ResponseBody, rejection_response};

/// Headers a layer adds to the inner service's response (e.g. the IETF
/// `RateLimit` headers).
pub type ResponseHeaders = Vec<(http::HeaderName, HeaderValue)>;

/// A layer's decision about one request that could not be made at once
/// (a control-plane lookup, a Redis round trip): the "decide" half of
/// [`DecideThenCall`], in the spirit of tower-http's
/// `AsyncRequireAuthorization`.
pub trait Decision<B> {
    /// Why a request is refused.
    type Rejection: Rejection;

    /// Polls the decision. `Ready(Ok(headers))`: the request goes on to the
    /// inner service, with whatever the decision established written into
    /// `req` (extensions, stamped headers), and `headers` are added to the
    /// response. `Ready(Err(rejection))`: it is answered with `rejection`.
    fn poll_decide(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut http::Request<B>,
    ) -> Poll<Result<ResponseHeaders, Self::Rejection>>;

    /// Called once for every refusal this future answers, decided at once
    /// or later (counters, logs).
    fn on_rejection(rejection: &Self::Rejection);
}

pin_project! {
    /// The response future of a layer that decides, perhaps later, then
    /// calls the inner service: deciding (`D`), calling, or rejected.
    pub struct DecideThenCall<S, B, D>
    where
        S: tower_service::Service<http::Request<B>>,
        D: Decision<B>,
    {
        #[pin]
        state: DecideState<S, B, D, D::Rejection, S::Future>,
    }
}

/// A request waiting for its decision, with the inner service that was
/// polled ready for it.
struct Waiting<S, B, D> {
    decision: D,
    request: http::Request<B>,
    inner: S,
}

pin_project! {
    #[project = DecideStateProj]
    enum DecideState<S, B, D, R, F> {
        // Boxed: the common case (decided at once) keeps the future small.
        Deciding { waiting: Option<Box<Waiting<S, B, D>>> },
        Calling { #[pin] future: F, headers: ResponseHeaders },
        Rejected { rejection: R },
    }
}

impl<S, B, D> DecideThenCall<S, B, D>
where
    S: tower_service::Service<http::Request<B>>,
    D: Decision<B>,
{
    /// Decided at once: the inner call, and `headers` for its response.
    pub fn calling(future: S::Future, headers: ResponseHeaders) -> Self {
        DecideThenCall {
            state: DecideState::Calling { future, headers },
        }
    }

    /// Decided at once: refused.
    pub fn rejected(rejection: D::Rejection) -> Self {
        DecideThenCall {
            state: DecideState::Rejected { rejection },
        }
    }

    /// To be decided: `request` waits for `decision`, then goes to `inner`
    /// (the service that was polled ready for it, never a fresh clone).
    pub fn deciding(decision: D, request: http::Request<B>, inner: S) -> Self {
        DecideThenCall {
            state: DecideState::Deciding {
                waiting: Some(Box::new(Waiting {
                    decision,
                    request,
                    inner,
                })),
            },
        }
    }

    /// Decided at once, either way.
    pub fn decided(decided: Result<(S::Future, ResponseHeaders), D::Rejection>) -> Self {
        match decided {
            Ok((future, headers)) => Self::calling(future, headers),
            Err(rejection) => Self::rejected(rejection),
        }
    }
}

impl<S, B, D, ResBody> Future for DecideThenCall<S, B, D>
where
    S: tower_service::Service<http::Request<B>, Response = Response<ResBody>>,
    D: Decision<B>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                DecideStateProj::Calling { future, headers } => {
                    let mut res = std::task::ready!(future.poll(cx))?;
                    for (name, value) in headers.drain(..) {
                        super::merge_header(res.headers_mut(), name, value);
                    }
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                DecideStateProj::Rejected { rejection } => {
                    // Every refusal, decided at once or later, passes here once.
                    D::on_rejection(rejection);
                    return Poll::Ready(Ok(rejection_response(rejection)));
                }
                DecideStateProj::Deciding { waiting } => {
                    let Some(pending) = waiting.as_mut() else {
                        panic!("DecideThenCall polled after it completed");
                    };
                    let decided =
                        std::task::ready!(pending.decision.poll_decide(cx, &mut pending.request));
                    let Some(pending) = waiting.take() else {
                        panic!("DecideThenCall polled after it completed");
                    };
                    let Waiting {
                        request, mut inner, ..
                    } = *pending;
                    match decided {
                        Ok(headers) => DecideState::Calling {
                            future: inner.call(request),
                            headers,
                        },
                        Err(rejection) => DecideState::Rejected { rejection },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S, B, D> std::fmt::Debug for DecideThenCall<S, B, D>
where
    S: tower_service::Service<http::Request<B>>,
    D: Decision<B>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecideThenCall").finish_non_exhaustive()
    }
}
