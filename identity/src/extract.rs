//! axum extractors for the identity extensions (on axum-core only).

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{ClientIdentity, ClientIp, Tenant};

/// Extracts the identity `ClientCertLayer` or `XfccLayer` stored.
///
/// Use `Option<ClientIdentity>` where anonymous callers are welcome.
impl<S: Send + Sync> FromRequestParts<S> for ClientIdentity {
    type Rejection = MissingClientIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientIdentity>()
            .cloned()
            .ok_or(MissingClientIdentity(()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIdentity>().cloned())
    }
}

/// Extracts the address `ClientIpLayer` resolved.
impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = MissingClientIp;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or(MissingClientIp(()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied())
    }
}

/// Extracts the tenant `TenantLayer` resolved.
impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = MissingTenant;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or(MissingTenant(()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Tenant {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Tenant>().cloned())
    }
}

/// The handler asked for a [`Tenant`] and the request has none: `500`,
/// because `TenantLayer` refuses unresolved requests before any handler, so
/// a missing tenant means the layer is not installed on this route.
#[derive(Debug, Clone)]
pub struct MissingTenant(());

impl MissingTenant {
    /// `500 Internal Server Error`.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// What to fix.
    pub fn body_text(&self) -> &'static str {
        "no Tenant on this request: add portcullis TenantLayer before this handler"
    }
}

/// Rejection when a handler requires a [`ClientIdentity`] and the request
/// has none: `401 Unauthorized`.
#[derive(Debug, Clone)]
pub struct MissingClientIdentity(());

impl MissingClientIdentity {
    /// `401 Unauthorized`.
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The response body.
    pub fn body_text(&self) -> &'static str {
        "client certificate required: no ClientIdentity on this request \
         (the client sent no certificate, or neither ClientCertLayer nor XfccLayer runs before this handler)"
    }
}

/// Rejection when a handler requires a [`ClientIp`] and the request has
/// none: `500 Internal Server Error`, because that is a wiring mistake.
#[derive(Debug, Clone)]
pub struct MissingClientIp(());

impl MissingClientIp {
    /// `500 Internal Server Error`.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The response body.
    pub fn body_text(&self) -> &'static str {
        "no ClientIp on this request: add portcullis ClientIpLayer, and serve with a PeerAddr or \
         TlsConnectInfo extension so the peer address is known"
    }
}

macro_rules! rejection_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.body_text())
            }
        }

        impl std::error::Error for $name {}

        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                (self.status(), self.body_text()).into_response()
            }
        }
    };
}

rejection_impls!(MissingClientIdentity);
rejection_impls!(MissingClientIp);
rejection_impls!(MissingTenant);

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        http::Request::new(()).into_parts().0
    }

    #[tokio::test]
    async fn missing_identity_is_401_and_names_the_layers() {
        let mut parts = parts();
        let err = <ClientIdentity as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert!(err.to_string().contains("ClientCertLayer nor XfccLayer"));
        assert_eq!(err.into_response().status(), StatusCode::UNAUTHORIZED);
        let none =
            <ClientIdentity as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
                .await;
        assert!(matches!(none, Ok(None)));
    }

    #[tokio::test]
    async fn client_ip_is_read_from_the_extension() {
        let mut parts = parts();
        let err = <ClientIp as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(
            err.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let ip = ClientIp("192.0.2.1".parse().unwrap());
        parts.extensions.insert(ip);
        let got = <ClientIp as FromRequestParts<()>>::from_request_parts(&mut parts, &()).await;
        assert_eq!(got.unwrap(), ip);
    }
}
