use portcullis_identity::response::Rejection;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_identity::{ClientIdentity, TlsConnectInfo, observe};
use tower_service::Service;

use super::{
    ClientCertFuture, ClientCertLayer, ClientCertRejection, ClientCertRejectionKind, ResponseBody,
};

/// The service [`ClientCertLayer`] makes. See [`ClientCertLayer`]
/// for an example.
#[derive(Debug, Clone)]
pub struct ClientCert<S> {
    inner: S,
    policy: ClientCertLayer,
}

impl<S> ClientCert<S> {
    pub(crate) fn new(inner: S, policy: ClientCertLayer) -> Self {
        ClientCert { inner, policy }
    }

    /// A [`ClientCertLayer`] with the default policy.
    pub fn layer() -> ClientCertLayer {
        ClientCertLayer::new()
    }

    portcullis_identity::define_inner_service_accessors!();

    fn check(
        &self,
        info: Option<&TlsConnectInfo>,
    ) -> Result<Option<ClientIdentity>, ClientCertRejection> {
        let identity = info.and_then(TlsConnectInfo::client_identity);
        match identity {
            Some(identity) if self.policy.allow.allows(identity) => Ok(Some(identity.clone())),
            Some(_) => Err(ClientCertRejection::new(
                ClientCertRejectionKind::NotAllowed,
            )),
            None if !self.policy.required => Ok(None),
            None if info.is_some_and(|i| i.client_identity_error().is_some()) => Err(
                ClientCertRejection::new(ClientCertRejectionKind::Unreadable),
            ),
            None => Err(ClientCertRejection::new(ClientCertRejectionKind::Missing)),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientCert<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = observe::InSpan<ClientCertFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        observe::in_request_span(req, |req| self.respond(req))
    }
}

impl<S> ClientCert<S> {
    /// The layer's work on `req`, inside the request span.
    fn respond<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
    ) -> ClientCertFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        match self.check(req.extensions().get::<TlsConnectInfo>()) {
            Ok(identity) => {
                if let Some(identity) = identity {
                    observe::identity(&identity);
                    req.extensions_mut().insert(identity);
                }
                ClientCertFuture::future(self.inner.call(req))
            }
            Err(rejection) => {
                observe::rejected(Rejection::layer(&rejection), Rejection::reason(&rejection));
                #[cfg(feature = "tracing")]
                tracing::debug!(reason = %rejection, "client certificate check refused the request");
                ClientCertFuture::rejected(rejection)
            }
        }
    }
}
