//! [`ResponseFuture`]: the inner call, or a rejection answered at once.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::{Refusal, Rejection, ResponseBody};

pin_project! {
    /// The inner service's future, or a rejection answered without calling
    /// it.
    pub struct ResponseFuture<F, R> {
        #[pin]
        kind: Kind<F, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, R> {
        Future { #[pin] future: F },
        Rejected { rejection: R },
    }
}

impl<F, R> ResponseFuture<F, R> {
    /// Runs the inner service's future.
    pub fn future(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Future { future },
        }
    }

    /// Answers `rejection` at once.
    pub fn rejected(rejection: R) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { rejection },
        }
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: Rejection,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => future
                .poll(cx)
                .map(|result| result.map(|res| res.map(ResponseBody::inner))),
            KindProj::Rejected { rejection } => Poll::Ready(Ok(rejection_response(rejection))),
        }
    }
}

/// The response a layer sends for `rejection`.
pub fn rejection_response<R: Rejection, B>(rejection: &R) -> Response<ResponseBody<B>> {
    let text = match rejection.body_text() {
        Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
        Cow::Owned(text) => Bytes::from(text),
    };
    let mut res = Response::new(ResponseBody::reason(text));
    *res.status_mut() = rejection.status();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rejection.headers(res.headers_mut());
    res.extensions_mut().insert(Refusal {
        layer: rejection.layer(),
        reason: rejection.reason(),
        status: rejection.status(),
        message: text_of(rejection),
    });
    res.extensions_mut().insert(rejection.clone());
    res
}

fn text_of<R: Rejection>(rejection: &R) -> Cow<'static, str> {
    match rejection.body_text() {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_end()),
        Cow::Owned(text) => Cow::Owned(text.trim_end().to_owned()),
    }
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
