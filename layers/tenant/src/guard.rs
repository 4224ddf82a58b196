//! [`InternalGuardLayer`]: internal routes (`/internal/usage`, ...) behind a
//! shared secret.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use portcullis_identity::observe;
use portcullis_identity::response::{Rejection, ResponseBody, ResponseFuture};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::INTERNAL_SECRET_HEADER;

/// Guards the routes it wraps with the shared secret in
/// `x-internal-secret`.
///
/// With no secret configured the routes are hidden: `404`, as if they did
/// not exist. With one, a missing or wrong secret is `403`. The comparison
/// is of SHA-256 digests in constant time, and the secret header is removed
/// before the route runs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use http::{Request, Response, StatusCode};
/// use portcullis_tenant::InternalGuardLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// let mut usage = ServiceBuilder::new()
///     .layer(InternalGuardLayer::new(Some("s3cret")))
///     .service(service_fn(|_req: Request<()>| async { Ok::<_, std::convert::Infallible>(Response::new(String::from("usage"))) }));
/// let req = Request::get("/internal/usage").header("x-internal-secret", "s3cret").body(())?;
/// assert_eq!(usage.ready().await?.call(req).await?.status(), StatusCode::OK);
/// let req = Request::get("/internal/usage").header("x-internal-secret", "guess").body(())?;
/// assert_eq!(usage.ready().await?.call(req).await?.status(), StatusCode::FORBIDDEN);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct InternalGuardLayer {
    secret: Option<Arc<[u8; 32]>>,
}

impl fmt::Debug for InternalGuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalGuardLayer")
            .field("configured", &self.secret.is_some())
            .finish()
    }
}

impl InternalGuardLayer {
    /// Guards with `secret`, trimmed of surrounding white space as the
    /// control plane's copy is; `None` (or only white space) hides the
    /// routes.
    pub fn new(secret: Option<&str>) -> Self {
        InternalGuardLayer {
            secret: secret
                .and_then(|s| crate::control_plane::internal_secret(s).ok())
                .map(|s| Arc::new(Sha256::digest(s.as_bytes()).into())),
        }
    }
}

impl<S> Layer<S> for InternalGuardLayer {
    type Service = InternalGuard<S>;

    fn layer(&self, inner: S) -> InternalGuard<S> {
        InternalGuard {
            inner,
            secret: self.secret.clone(),
        }
    }
}

/// The service [`InternalGuardLayer`] makes.
#[derive(Clone)]
pub struct InternalGuard<S> {
    inner: S,
    secret: Option<Arc<[u8; 32]>>,
}

impl<S> InternalGuard<S> {
    portcullis_identity::define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for InternalGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalGuard")
            .field("inner", &self.inner)
            .field("configured", &self.secret.is_some())
            .finish()
    }
}

/// Why the guard turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardRejection {
    /// No secret is configured: the route is hidden (`404`).
    Hidden,
    /// The secret is missing or wrong (`403`).
    Forbidden,
}

impl Rejection for GuardRejection {
    fn layer(&self) -> &'static str {
        "internal_guard"
    }

    fn reason(&self) -> &'static str {
        match self {
            GuardRejection::Hidden => "not_found",
            GuardRejection::Forbidden => "internal_secret_wrong",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            GuardRejection::Hidden => StatusCode::NOT_FOUND,
            GuardRejection::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            GuardRejection::Hidden => "not found\n",
            GuardRejection::Forbidden => {
                "internal route: the x-internal-secret header is missing or wrong\n"
            }
        })
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for InternalGuard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, GuardRejection>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(expected) = &self.secret else {
            observe::internal_refused(GuardRejection::Hidden.reason());
            return ResponseFuture::rejected(GuardRejection::Hidden);
        };
        let mut lines = req.headers().get_all(INTERNAL_SECRET_HEADER).iter();
        let allowed = match (lines.next(), lines.next()) {
            (Some(given), None) => {
                let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
                bool::from(digest.ct_eq(expected.as_ref()))
            }
            // None, or two lines: never guess which one counts.
            _ => false,
        };
        if !allowed {
            #[cfg(feature = "tracing")]
            tracing::debug!(path = %req.uri().path(), "internal route refused");
            observe::internal_refused(GuardRejection::Forbidden.reason());
            return ResponseFuture::rejected(GuardRejection::Forbidden);
        }
        req.headers_mut().remove(INTERNAL_SECRET_HEADER);
        ResponseFuture::future(self.inner.call(req))
    }
}
