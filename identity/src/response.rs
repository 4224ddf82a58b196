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
/// tests) can read the typed reason behind the status, beside a
/// [`Refusal`] that every layer's rejection shares (what a
/// [`RejectionHookLayer`] reads).
pub trait Rejection: Clone + Send + Sync + 'static {
    /// The layer that refused: `client_cert`, `xfcc`, `tenant`,
    /// `rate_limit` or `internal_guard` (the `layer` label of the
    /// rejection counter).
    fn layer(&self) -> &'static str;
    /// A fixed snake_case code for the reason (the `reason` label of the
    /// rejection counter), stable for clients to match on.
    fn reason(&self) -> &'static str;
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
                        res.headers_mut().insert(name, value);
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

/// What every layer's refusal says, whatever the layer: in the extensions
/// of each response a portcullis layer answered itself (the layer's own
/// typed rejection sits beside it), and what a [`RejectionHookLayer`]
/// receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    layer: &'static str,
    reason: &'static str,
    status: StatusCode,
    message: Cow<'static, str>,
}

impl Refusal {
    /// The layer that refused (see [`Rejection::layer`]).
    pub fn layer(&self) -> &'static str {
        self.layer
    }

    /// The fixed reason code (see [`Rejection::reason`]).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The status it was answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The one-line text of the default body, without its line break.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An RFC 9457 problem document: `type` (`about:blank`), `title` (the
    /// status's reason phrase), `status`, `detail` (the message), and the
    /// `layer` and `reason` codes as extension members.
    pub fn problem_json(&self) -> String {
        format!(
            "{{\"type\":\"about:blank\",\"title\":{},\"status\":{},\"detail\":{},\"layer\":{},\"reason\":{}}}",
            json_string(self.status.canonical_reason().unwrap_or("Error")),
            self.status.as_u16(),
            json_string(&self.message),
            json_string(self.layer),
            json_string(self.reason),
        )
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Rewrites refusals: given the [`Refusal`] and the response's parts (its
/// status, the headers the layer set such as `Retry-After` and the
/// `RateLimit` headers, and in its extensions the layer's own typed
/// rejection), it may change the status and headers and returns the new
/// body.
pub trait OnRejection: Clone + Send + Sync + 'static {
    /// The new body for `refusal`; `parts` may be changed too.
    fn on_rejection(&self, refusal: &Refusal, parts: &mut http::response::Parts) -> Bytes;
}

impl<F> OnRejection for F
where
    F: Fn(&Refusal, &mut http::response::Parts) -> Bytes + Clone + Send + Sync + 'static,
{
    fn on_rejection(&self, refusal: &Refusal, parts: &mut http::response::Parts) -> Bytes {
        self(refusal, parts)
    }
}

/// [`OnRejection`] that answers `application/problem+json`
/// ([`Refusal::problem_json`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemJson;

impl OnRejection for ProblemJson {
    fn on_rejection(&self, refusal: &Refusal, parts: &mut http::response::Parts) -> Bytes {
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        Bytes::from(refusal.problem_json())
    }
}

/// One hook for every refusal of every portcullis layer it wraps: put it
/// outside the layers (or the whole stack) and each response a layer
/// answered itself is passed to the hook, which may rewrite its body,
/// status and headers. Responses of the application pass untouched.
/// Without it, refusals stay `text/plain`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use http::{Request, Response, StatusCode};
/// use http_body_util::BodyExt;
/// use portcullis_identity::response::{ProblemJson, RejectionHookLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
/// # use portcullis_identity::response::{Rejection, ResponseFuture};
/// # #[derive(Clone)]
/// # struct Closed;
/// # impl Rejection for Closed {
/// #     fn layer(&self) -> &'static str { "example" }
/// #     fn reason(&self) -> &'static str { "closed" }
/// #     fn status(&self) -> StatusCode { StatusCode::FORBIDDEN }
/// #     fn body_text(&self) -> std::borrow::Cow<'static, str> { "closed for the day\n".into() }
/// # }
/// # let refusing = service_fn(|_req: Request<()>| {
/// #     ResponseFuture::<std::future::Ready<Result<Response<http_body_util::Empty<bytes::Bytes>>, std::convert::Infallible>>, _>::rejected(Closed)
/// # });
/// // `refusing` stands for any portcullis layer turning the request away.
/// let mut service = ServiceBuilder::new()
///     .layer(RejectionHookLayer::new(ProblemJson))
///     .service(refusing);
/// let res = service.ready().await?.call(Request::new(())).await?;
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// let body = res.into_body().collect().await?.to_bytes();
/// assert_eq!(
///     body,
///     r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"closed for the day","layer":"example","reason":"closed"}"#
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RejectionHookLayer<H> {
    hook: H,
}

impl<H: OnRejection> RejectionHookLayer<H> {
    /// Passes every refusal to `hook`.
    pub fn new(hook: H) -> Self {
        RejectionHookLayer { hook }
    }
}

impl<S, H: Clone> tower_layer::Layer<S> for RejectionHookLayer<H> {
    type Service = RejectionHook<S, H>;

    fn layer(&self, inner: S) -> RejectionHook<S, H> {
        RejectionHook {
            inner,
            hook: self.hook.clone(),
        }
    }
}

/// The service [`RejectionHookLayer`] makes.
#[derive(Debug, Clone)]
pub struct RejectionHook<S, H> {
    inner: S,
    hook: H,
}

impl<S, H> RejectionHook<S, H> {
    crate::define_inner_service_accessors!();
}

impl<S, H, Req, B> tower_service::Service<Req> for RejectionHook<S, H>
where
    S: tower_service::Service<Req, Response = Response<B>>,
    H: OnRejection,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = RejectionHookFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        RejectionHookFuture {
            future: self.inner.call(req),
            hook: self.hook.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`RejectionHook`].
    pub struct RejectionHookFuture<F, H> {
        #[pin]
        future: F,
        hook: H,
    }
}

impl<F, H, B, E> Future for RejectionHookFuture<F, H>
where
    F: Future<Output = Result<Response<B>, E>>,
    H: OnRejection,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.future.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let Some(refusal) = res.extensions().get::<Refusal>().cloned() else {
            return Poll::Ready(Ok(res.map(ResponseBody::inner)));
        };
        let (mut parts, _default_body) = res.into_parts();
        let body = this.hook.on_rejection(&refusal, &mut parts);
        // The new body's exact size hint gives the length.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::reason(body))))
    }
}

impl<F, H> std::fmt::Debug for RejectionHookFuture<F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectionHookFuture")
            .finish_non_exhaustive()
    }
}
