use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::{ClientCertRejection, ResponseBody};

pin_project! {
    /// Response future of [`ClientCert`](super::ClientCert).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Future { #[pin] future: F },
        Rejected { rejection: Option<ClientCertRejection> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn future(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Future { future },
        }
    }

    pub(crate) fn rejected(rejection: ClientCertRejection) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                rejection: Some(rejection),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => future
                .poll(cx)
                .map(|result| result.map(|res| res.map(ResponseBody::inner))),
            KindProj::Rejected { rejection } => {
                // Polled again after Ready: answer the same rejection shape.
                let rejection = rejection
                    .take()
                    .unwrap_or_else(|| ClientCertRejection::new(super::RejectionKind::Missing));
                let mut res = Response::new(ResponseBody::reason(rejection.body_text()));
                *res.status_mut() = rejection.status();
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                res.extensions_mut().insert(rejection);
                Poll::Ready(Ok(res))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
