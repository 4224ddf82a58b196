//! [`RejectionHookLayer`]: one hook for every layer's refusals.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;

use super::ResponseBody;

/// What every layer's refusal says, whatever the layer: in the extensions
/// of each response a portcullis layer answered itself (the layer's own
/// typed rejection sits beside it), and what a [`RejectionHookLayer`]
/// receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub(super) layer: &'static str,
    pub(super) reason: &'static str,
    pub(super) status: StatusCode,
    pub(super) message: Cow<'static, str>,
}

impl Refusal {
    /// The layer that refused (see [`Rejection::layer`](super::Rejection::layer)).
    pub fn layer(&self) -> &'static str {
        self.layer
    }

    /// The fixed reason code (see [`Rejection::reason`](super::Rejection::reason)).
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
