//! The response plumbing every portcullis layer shares: a body that is
//! either the inner service's or a rejection's short reason, and a future
//! that is either the inner call or a rejection answered at once.
//!
//! Layers turn requests away with a built response (status, a
//! `text/plain` reason, and the rejection value in the response's
//! extensions), never with an `Err`: the service's error type stays the
//! inner service's, so layers stack in any order.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// A duration in whole seconds, rounded up (`Retry-After`, the IETF
/// `RateLimit` header's `t`).
pub fn ceil_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1 (a
/// client told 0 retries at once, into the same refusal).
///
/// ```
/// use std::time::Duration;
/// use portcullis_identity::response::retry_after;
///
/// assert_eq!(retry_after(Duration::ZERO), "1");
/// assert_eq!(retry_after(Duration::from_millis(1)), "1");
/// assert_eq!(retry_after(Duration::from_millis(2001)), "3");
/// ```
pub fn retry_after(wait: std::time::Duration) -> HeaderValue {
    HeaderValue::from(ceil_secs(wait).max(1))
}

/// Why a layer turned a request away.
///
/// The value is cloned into the response's extensions, so callers (and
/// tests) can read the typed reason behind the status.
pub trait Rejection: Clone + Send + Sync + 'static {
    /// The response status.
    fn status(&self) -> StatusCode;
    /// The response body: one line, ending in `\n`, that says what was
    /// wrong and never repeats a secret.
    fn body_text(&self) -> Cow<'static, str>;

    /// Headers the response carries besides `content-type` (e.g.
    /// `retry-after`). None by default.
    fn headers(&self, headers: &mut http::HeaderMap) {
        let _ = headers;
    }
}

pin_project! {
    /// The inner service's body, or the short text of a rejection.
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Reason { text: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// The inner service's body.
    pub fn inner(body: B) -> Self {
        ResponseBody {
            kind: BodyKind::Inner { body },
        }
    }

    /// A rejection's text.
    pub fn reason(text: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: BodyKind::Reason {
                text: Some(text.into()),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            BodyProj::Inner { body } => body.poll_frame(cx),
            BodyProj::Reason { text } => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Reason { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Reason { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

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
    res.extensions_mut().insert(rejection.clone());
    res
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
