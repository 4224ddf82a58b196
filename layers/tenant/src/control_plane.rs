//! The control plane: resolves keys the local stores do not know, over
//! HTTP(S), behind a [cache](CachePolicy).
//!
//! # The contract
//!
//! Any service can be the control plane by answering two requests, each
//! carrying the shared secret in `x-internal-secret`:
//!
//! - `GET {CONTROL_PLANE_URL}/internal/keys/resolve?sha256=<64 hex digits>`
//!   resolves an API key by the SHA-256 of the key (the key itself never
//!   leaves the service). `200` with
//!   `{"active": true, "consumer": "billing", "tenant_id": "acme", "rate_per_min": 600, "burst": 20}`
//!   (`consumer`, `rate_per_min` and `burst` optional); `404` or `410`: no
//!   such key. Certificate principals are asked as
//!   `?principal=<percent-encoded CN, SPIFFE ID or fingerprint>`.
//! - `GET {CONTROL_PLANE_URL}/internal/tenants/<tenant id>/provider-env`
//!   answers `{"env": {"NAME": "value"}}`: per-tenant settings, of which
//!   only allow-listed names are kept.
//!
//! `200`, `404` and `410` are definitive and always replace a cached
//! answer. Anything else (a transport error, a timeout, a `5xx`, a `403`
//! for a wrong secret) is a failure: the last answer may stand in for up to
//! the stale grace, and the control plane is asked again only after a
//! back-off. `examples/control_plane.rs` is a complete implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use portcullis_identity::percent::encode_component;
use portcullis_identity::{Quota, Tenant, TenantStatus};
use serde::Deserialize;

use crate::cache::{Cache, CachePolicy, Fetched, Outcome};
use crate::resolver::{BoxFuture, Principal, Resolution, ResolveError, TenantResolver};

/// The header the shared secret travels in, to the control plane and to
/// internal routes.
pub const INTERNAL_SECRET_HEADER: &str = "x-internal-secret";

/// Largest control-plane answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A control plane that cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneError(String);

impl fmt::Display for ControlPlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ControlPlaneError {}

/// Where the control plane is and how to reach it.
#[derive(Clone)]
pub struct ControlPlane {
    scheme_https: bool,
    authority: http::uri::Authority,
    host: String,
    port: u16,
    base_path: String,
    secret: Arc<str>,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    call_timeout: Duration,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field(
                "url",
                &format_args!(
                    "{}://{}{}",
                    if self.scheme_https { "https" } else { "http" },
                    self.authority,
                    self.base_path
                ),
            )
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl ControlPlane {
    /// The control plane at `url` (`http://` or `https://`), authenticated
    /// by `secret`. An `https` URL needs [`with_tls`](Self::with_tls).
    pub fn new(url: &str, secret: &str) -> Result<Self, ControlPlaneError> {
        let bad = |why: &str| {
            ControlPlaneError(format!(
                "CONTROL_PLANE_URL={url:?}: {why}; write an http:// or https:// URL such as https://control-plane.internal:8443"
            ))
        };
        let uri: Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
        let scheme_https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if uri.query().is_some() {
            return Err(bad("a query does not belong in the base URL"));
        }
        if secret.trim().is_empty() {
            return Err(ControlPlaneError(
                "CONTROL_PLANE_INTERNAL_SECRET is empty; set it to the secret the control plane expects".into(),
            ));
        }
        Ok(ControlPlane {
            scheme_https,
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority
                .port_u16()
                .unwrap_or(if scheme_https { 443 } else { 80 }),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            secret: secret.into(),
            tls: None,
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
        })
    }

    /// Reads `CONTROL_PLANE_URL` and `CONTROL_PLANE_INTERNAL_SECRET`.
    /// `Ok(None)` when neither is set (no control plane); one without the
    /// other is an error naming both.
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ControlPlaneError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        match (get("CONTROL_PLANE_URL"), get("CONTROL_PLANE_INTERNAL_SECRET")) {
            (None, None) => Ok(None),
            (Some(url), Some(secret)) => ControlPlane::new(&url, &secret).map(Some),
            (Some(_), None) => Err(ControlPlaneError(
                "CONTROL_PLANE_URL is set but CONTROL_PLANE_INTERNAL_SECRET is not: set both to use a control plane, or neither".into(),
            )),
            (None, Some(_)) => Err(ControlPlaneError(
                "CONTROL_PLANE_INTERNAL_SECRET is set but CONTROL_PLANE_URL is not: set both to use a control plane, or neither".into(),
            )),
        }
    }

    /// The TLS client configuration for an `https` control plane (e.g.
    /// `OutboundTrust::client_config()` from portcullis-client-cert).
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The limit on connecting, TLS included (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit on a whole call (default 5 s).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Checks that an `https` control plane has a TLS configuration.
    fn check(&self) -> Result<(), ControlPlaneError> {
        if self.scheme_https && self.tls.is_none() {
            return Err(ControlPlaneError(
                "CONTROL_PLANE_URL is https but no TLS client configuration was given: pass one with ControlPlane::with_tls (the facade wires OutboundTrust)".into(),
            ));
        }
        Ok(())
    }

    /// `GET {base}{path_and_query}`: the status and body, or why not.
    async fn get(&self, path_and_query: &str) -> Result<(StatusCode, Bytes), String> {
        tokio::time::timeout(self.call_timeout, self.get_inner(path_and_query))
            .await
            .map_err(|_| {
                format!(
                    "control plane did not answer within {:?}",
                    self.call_timeout
                )
            })?
    }

    async fn get_inner(&self, path_and_query: &str) -> Result<(StatusCode, Bytes), String> {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let tcp = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "connecting to the control plane took over {:?}",
                    self.connect_timeout
                )
            })?
            .map_err(|e| {
                format!(
                    "cannot connect to the control plane at {}: {e}",
                    self.authority
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let request = Request::get(format!("{}{path_and_query}", self.base_path))
            .header(http::header::HOST, self.authority.as_str())
            .header(INTERNAL_SECRET_HEADER, &*self.secret)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the control-plane request: {e}"))?;
        match &self.tls {
            Some(tls) if self.scheme_https => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("control-plane host {:?}: {e}", self.host))?;
                let stream = tokio::time::timeout(
                    self.connect_timeout,
                    tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| {
                    format!(
                        "TLS with the control plane took over {:?}",
                        self.connect_timeout
                    )
                })?
                .map_err(|e| {
                    format!(
                        "TLS with the control plane at {} failed: {e}",
                        self.authority
                    )
                })?;
                send(stream, request).await
            }
            _ => send(tcp, request).await,
        }
    }
}

async fn send<T>(stream: T, request: Request<Empty<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("control-plane HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("control-plane request: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("control-plane answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The resolve answer.
#[derive(Debug, Deserialize)]
struct KeyAnswer {
    active: bool,
    tenant_id: String,
    consumer: Option<String>,
    rate_per_min: Option<u32>,
    burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct EnvAnswer {
    env: HashMap<String, String>,
}

/// Resolves principals through a [`ControlPlane`], cached.
///
/// Use it as the remote resolver of a [`Chain`](crate::Chain), behind the
/// local stores. Cloning shares the cache.
#[derive(Clone)]
pub struct ControlPlaneResolver {
    control_plane: Arc<ControlPlane>,
    keys: Cache<Principal, Resolution>,
    envs: Cache<Arc<str>, Arc<HashMap<String, String>>>,
    env_allowlist: Arc<[String]>,
}

impl fmt::Debug for ControlPlaneResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneResolver")
            .field("control_plane", &self.control_plane)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneResolver {
    /// Resolves through `control_plane` with the default [`CachePolicy`].
    pub fn new(control_plane: ControlPlane) -> Result<Self, ControlPlaneError> {
        Self::with_policy(control_plane, CachePolicy::default())
    }

    /// Resolves through `control_plane`, caching by `policy`.
    pub fn with_policy(
        control_plane: ControlPlane,
        policy: CachePolicy,
    ) -> Result<Self, ControlPlaneError> {
        control_plane.check()?;
        Ok(ControlPlaneResolver {
            control_plane: Arc::new(control_plane),
            keys: Cache::new(policy),
            envs: Cache::new(policy),
            env_allowlist: Arc::from(Vec::new()),
        })
    }

    /// The per-tenant setting names [`provider_env`](Self::provider_env)
    /// keeps; every other name the control plane sends is dropped.
    #[must_use]
    pub fn with_env_allowlist<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.env_allowlist = names.into_iter().map(Into::into).collect();
        self
    }

    /// A tenant's allow-listed settings from the control plane, cached like
    /// resolutions. Fails soft: when the control plane cannot answer (and
    /// no recent answer may stand in), the answer is `defaults`.
    pub async fn provider_env(
        &self,
        tenant_id: &str,
        defaults: &HashMap<String, String>,
    ) -> Arc<HashMap<String, String>> {
        let control_plane = self.control_plane.clone();
        let allow = self.env_allowlist.clone();
        let path = format!(
            "/internal/tenants/{}/provider-env",
            encode_component(tenant_id)
        );
        let outcome = self
            .envs
            .get(&Arc::from(tenant_id), move || async move {
                match control_plane.get(&path).await {
                    Ok((StatusCode::OK, body)) => {
                        match serde_json::from_slice::<EnvAnswer>(&body) {
                            Ok(answer) => Fetched::Answer {
                                value: Arc::new(
                                    answer
                                        .env
                                        .into_iter()
                                        .filter(|(name, _)| allow.iter().any(|a| a == name))
                                        .collect(),
                                ),
                                positive: true,
                            },
                            Err(e) => Fetched::Failed(format!(
                                "control plane sent a bad provider-env answer: {e}"
                            )),
                        }
                    }
                    Ok((StatusCode::NOT_FOUND | StatusCode::GONE, _)) => Fetched::Answer {
                        value: Arc::new(HashMap::new()),
                        positive: false,
                    },
                    Ok((status, _)) => Fetched::Failed(status_failure(status)),
                    Err(reason) => Fetched::Failed(reason),
                }
            })
            .await;
        match outcome {
            Outcome::Value(env) if !env.is_empty() => env,
            _ => Arc::new(defaults.clone()),
        }
    }

    async fn fetch(control_plane: Arc<ControlPlane>, principal: Principal) -> Fetched<Resolution> {
        let query = match &principal {
            Principal::Bearer(digest) => format!("sha256={}", digest.to_hex()),
            Principal::Certificate(name) => format!("principal={}", encode_component(name)),
        };
        match control_plane
            .get(&format!("/internal/keys/resolve?{query}"))
            .await
        {
            Ok((StatusCode::OK, body)) => match serde_json::from_slice::<KeyAnswer>(&body) {
                Ok(answer) if !answer.tenant_id.trim().is_empty() => {
                    let status = if answer.active {
                        TenantStatus::Active
                    } else {
                        TenantStatus::Inactive
                    };
                    let mut tenant = Tenant::new(answer.tenant_id.trim(), status);
                    if let Some(consumer) = answer.consumer.filter(|c| !c.is_empty()) {
                        tenant = tenant.with_caller(consumer);
                    }
                    if let (Some(rate_per_min), Some(burst)) = (answer.rate_per_min, answer.burst)
                        && rate_per_min > 0
                        && burst > 0
                    {
                        tenant = tenant.with_quota(Quota {
                            rate_per_min,
                            burst,
                        });
                    }
                    Fetched::Answer {
                        value: Resolution::of(tenant),
                        positive: true,
                    }
                }
                Ok(_) => {
                    Fetched::Failed("control plane answered 200 with an empty tenant_id".into())
                }
                Err(e) => Fetched::Failed(format!("control plane sent a bad resolve answer: {e}")),
            },
            Ok((StatusCode::NOT_FOUND | StatusCode::GONE, _)) => Fetched::Answer {
                value: Resolution::Unknown,
                positive: false,
            },
            Ok((status, _)) => Fetched::Failed(status_failure(status)),
            Err(reason) => Fetched::Failed(reason),
        }
    }
}

fn status_failure(status: StatusCode) -> String {
    match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => format!(
            "control plane refused the internal secret ({status}): check CONTROL_PLANE_INTERNAL_SECRET"
        ),
        _ => format!("control plane answered {status}"),
    }
}

impl TenantResolver for ControlPlaneResolver {
    fn resolve_now(&self, principal: &Principal) -> Option<Result<Resolution, ResolveError>> {
        self.keys.peek(principal).map(Ok)
    }

    fn resolve<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move {
            let control_plane = self.control_plane.clone();
            let key = principal.clone();
            match self
                .keys
                .get(principal, move || Self::fetch(control_plane, key))
                .await
            {
                Outcome::Value(resolution) => Ok(resolution),
                Outcome::Unavailable {
                    reason,
                    retry_after,
                } => {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(%reason, "tenant resolution unavailable");
                    Err(ResolveError::unavailable(reason, retry_after))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_name_the_variables() {
        let env = |pairs: Vec<(&'static str, &'static str)>| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(ControlPlane::from_env_with(env(vec![])).unwrap().is_none());
        let err =
            ControlPlane::from_env_with(env(vec![("CONTROL_PLANE_URL", "http://cp")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("CONTROL_PLANE_INTERNAL_SECRET is not"),
            "{err}"
        );
        let err = ControlPlane::from_env_with(env(vec![("CONTROL_PLANE_INTERNAL_SECRET", "s")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("CONTROL_PLANE_URL is not"),
            "{err}"
        );
        let err = ControlPlane::new("ftp://cp", "s").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CONTROL_PLANE_URL=\"ftp://cp\": the scheme"),
            "{err}"
        );
        let https = ControlPlane::new("https://cp:8443/base/", "s").unwrap();
        assert_eq!((https.port, https.base_path.as_str()), (8443, "/base"));
        assert!(!format!("{https:?}").contains("\"s\""));
        let err = ControlPlaneResolver::new(https).unwrap_err();
        assert!(err.to_string().contains("with_tls"), "{err}");
    }
}
