//! The control plane: resolves keys the local stores do not know, over
//! HTTP(S), behind a cache; see [`ControlPlane`] for the contract.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use lru::LruCache;
use portcullis_identity::observe;
use portcullis_identity::percent::encode_component;
use portcullis_identity::{Tenant, TenantStatus};
use serde::Deserialize;

use crate::cache::{Cache, CachePolicy, Fetched, Outcome};
use crate::connector::Connector;
use crate::resolver::{Principal, Resolution, ResolveError, Resolving, TenantResolver};

/// The header the shared secret travels in, to the control plane and to
/// internal routes.
pub const INTERNAL_SECRET_HEADER: &str = "x-internal-secret";

/// The internal secret as it is sent and checked: trimmed of surrounding
/// white space once, here, for both; only white space is an error.
pub(crate) fn internal_secret(secret: &str) -> Result<&str, ControlPlaneError> {
    let trimmed = secret.trim();
    if trimmed.is_empty() {
        return Err(ControlPlaneError::BlankSecret);
    }
    if trimmed.bytes().any(|b| b.is_ascii_control()) {
        return Err(ControlPlaneError::SecretNotAHeaderValue);
    }
    Ok(trimmed)
}

/// Largest control-plane answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A control plane that cannot be used as configured. The secret is never
/// part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlPlaneError {
    /// The URL cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URL holds a user name or password (`user:pass@host`); it is
    /// not repeated here, since it may be a password.
    UserInfo,
    /// The secret is empty or only white space.
    BlankSecret,
    /// The secret holds a control character (a line break inside it?).
    SecretNotAHeaderValue,
    /// An `https` control plane without a TLS client configuration.
    NoTls,
}

impl ControlPlaneError {
    /// What is wrong, and the fix.
    pub fn problem_and_fix(&self) -> (&'static str, &'static str) {
        match self {
            ControlPlaneError::InvalidUrl { reason, .. } => (
                reason,
                "write an http:// or https:// URL such as https://control-plane.internal:8443",
            ),
            ControlPlaneError::UserInfo => (
                "holds a user name or password (user:pass@host)",
                "the control plane is authenticated by the internal secret: remove the user part \
                 of the URL",
            ),
            ControlPlaneError::BlankSecret => (
                "the secret is empty or only white space",
                "set it to the secret the control plane expects",
            ),
            ControlPlaneError::SecretNotAHeaderValue => (
                "the secret holds a control character (a line break inside it?)",
                "it must fit in one header value",
            ),
            ControlPlaneError::NoTls => (
                "the URL is https but no TLS client configuration was given",
                "pass one with ControlPlane::with_tls (OutboundTrust::client_config, say)",
            ),
        }
    }
}

impl fmt::Display for ControlPlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (problem, fix) = self.problem_and_fix();
        match self {
            ControlPlaneError::InvalidUrl { url, .. } => {
                write!(f, "control plane URL {url:?}: {problem}; {fix}")
            }
            _ => write!(f, "control plane: {problem}; {fix}"),
        }
    }
}

impl std::error::Error for ControlPlaneError {}

/// Where the control plane is and how to reach it.
///
/// # The contract
///
/// Any service can be the control plane by answering two requests, each
/// carrying the shared secret in `x-internal-secret`:
///
/// - `GET {CONTROL_PLANE_URL}/internal/keys/resolve?sha256=<64 hex digits>`
///   resolves an API key by the SHA-256 of the key (the key itself never
///   leaves the service). `200` with
///   `{"active": true, "consumer": "billing", "tenant_id": "acme", "rate_per_min": 600, "burst": 20}`
///   (`consumer` optional; `rate_per_min` and `burst` together or neither,
///   each at least 1, else the answer is refused as malformed); `404` or
///   `410`: no such key. Certificate principals are asked by their kind,
///   each a parameter of its own so a control plane cannot confuse them:
///   `?spiffe_id=<SPIFFE ID>`, `?cn=<common name>` or
///   `?fingerprint_sha256=<64 hex digits>`, percent-encoded.
/// - `GET {CONTROL_PLANE_URL}/internal/tenants/<tenant id>/provider-env`
///   answers `{"env": {"NAME": "value"}}`: per-tenant settings, of which
///   only allow-listed names are kept.
///
/// `200`, `404` and `410` are definitive and always replace a cached
/// answer. Anything else (a transport error, a timeout, a `5xx`, a `403`
/// for a wrong secret) is a failure: the last answer may stand in for up to
/// the stale grace, and the control plane is asked again only after a
/// back-off. `examples/control_plane.rs` is a complete implementation.
///
/// Calls go through one pooled client: HTTP/1.1 connections are kept alive
/// and reused, and over `https` the protocol is the one ALPN agreed
/// (`h2`, one multiplexed connection, as Go, Envoy and nginx control planes
/// pick; or `http/1.1`).
#[derive(Clone)]
pub struct ControlPlane {
    scheme_https: bool,
    authority: http::uri::Authority,
    host: String,
    port: u16,
    /// Marked sensitive: never indexed by HPACK, never in a debug print.
    secret: http::HeaderValue,
    /// `scheme://authority/base`: every call's URI starts with it.
    prefix: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    call_timeout: Duration,
    /// Built on first use, once every setting is known; shared by clones.
    client: Arc<std::sync::OnceLock<PooledClient>>,
}

type PooledClient = hyper_util::client::legacy::Client<Connector, Empty<Bytes>>;

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.prefix)
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
        let url = url.trim();
        let bad = |reason| ControlPlaneError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| {
            // A URL that does not parse may still hold a password: say
            // where, not what.
            if url.contains('@') {
                ControlPlaneError::UserInfo
            } else {
                bad("not a URL")
            }
        })?;
        let scheme_https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(ControlPlaneError::UserInfo);
        }
        if uri.query().is_some() {
            return Err(bad("a query does not belong in the base URL"));
        }
        let mut secret = http::HeaderValue::from_bytes(internal_secret(secret)?.as_bytes())
            .map_err(|_| ControlPlaneError::SecretNotAHeaderValue)?;
        secret.set_sensitive(true);
        Ok(ControlPlane {
            prefix: format!(
                "{}://{authority}{}",
                if scheme_https { "https" } else { "http" },
                uri.path().trim_end_matches('/')
            ),
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
            secret,
            tls: None,
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            client: Arc::default(),
        })
    }

    /// The TLS client configuration for an `https` control plane (e.g.
    /// [`OutboundTrust::client_config`](portcullis_identity::OutboundTrust::client_config)).
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self.client = Arc::default();
        self
    }

    /// The limit on connecting, TLS included (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.client = Arc::default();
        self
    }

    /// The limit on a whole call (default 5 s).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Checks that an `https` control plane has a TLS configuration.
    pub(crate) fn check(&self) -> Result<(), ControlPlaneError> {
        if self.scheme_https && self.tls.is_none() {
            return Err(ControlPlaneError::NoTls);
        }
        Ok(())
    }

    /// `GET {base}{path_and_query}`: the status and body, or why not.
    async fn get(&self, path_and_query: &str) -> Result<(StatusCode, Bytes), String> {
        let timer = observe::CallTimer::start();
        let answer = tokio::time::timeout(self.call_timeout, self.get_inner(path_and_query))
            .await
            .map_err(|_| {
                format!(
                    "control plane did not answer within {:?}",
                    self.call_timeout
                )
            })
            .and_then(|answer| answer);
        // An answer the control plane meant (200, 404, 410) is a call that
        // worked; anything else did not.
        timer.control_plane(matches!(
            answer,
            Ok((StatusCode::OK | StatusCode::NOT_FOUND | StatusCode::GONE, _))
        ));
        answer
    }

    fn client(&self) -> &PooledClient {
        self.client.get_or_init(|| {
            let connector = Connector {
                host: self.host.clone(),
                port: self.port,
                tls: self.tls.clone().filter(|_| self.scheme_https).map(|tls| {
                    // Offer only what the client speaks, h2 first.
                    let mut config = (*tls).clone();
                    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                    Arc::new(config)
                }),
                connect_timeout: self.connect_timeout,
            };
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector)
        })
    }

    async fn get_inner(&self, path_and_query: &str) -> Result<(StatusCode, Bytes), String> {
        let mut uri = String::with_capacity(self.prefix.len() + path_and_query.len());
        uri.push_str(&self.prefix);
        uri.push_str(path_and_query);
        let request = Request::get(uri)
            .header(INTERNAL_SECRET_HEADER, self.secret.clone())
            .header(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json"),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the control-plane request: {e}"))?;
        let response = self.client().request(request).await.map_err(|e| {
            // A failed connection says why in the connector's own words.
            let root =
                std::iter::successors(std::error::Error::source(&e), |cause| cause.source()).last();
            match root {
                Some(root) if e.is_connect() => root.to_string(),
                _ => format!("control-plane request to {}: {}", self.authority, chain(&e)),
            }
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("control-plane answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// An error and its sources, one sentence.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    tenants: Tenants,
    envs: Cache<Arc<str>, Arc<HashMap<String, String>>>,
    env_allowlist: Arc<[String]>,
}

/// The tenants answers named lately, so that equal answers share one
/// value: a tenant's many keys then cost the cache a pointer each, not a
/// copy of the tenant. Bounded (least recently named first out); a tenant
/// that falls out is only no longer shared.
#[derive(Clone)]
struct Tenants {
    seen: Arc<Mutex<LruCache<Tenant, ()>>>,
    capacity: NonZeroUsize,
}

impl Tenants {
    fn new(capacity: usize) -> Self {
        Tenants {
            // Grown as tenants are seen, not allocated for the bound.
            seen: Arc::new(Mutex::new(LruCache::unbounded())),
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// `tenant`, or the equal one already held.
    fn share(&self, tenant: Tenant) -> Tenant {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((held, ())) = seen.get_key_value(&tenant) {
            return held.clone();
        }
        if seen.len() >= self.capacity.get() {
            seen.pop_lru();
        }
        seen.put(tenant.clone(), ());
        tenant
    }
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
            tenants: Tenants::new(policy.capacity),
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

    async fn fetch(
        control_plane: Arc<ControlPlane>,
        tenants: Tenants,
        principal: Principal,
    ) -> Fetched<Resolution> {
        let query = match &principal {
            Principal::Bearer(digest) => format!("sha256={}", digest.to_hex()),
            Principal::SpiffeId(name)
            | Principal::CommonName(name)
            | Principal::Fingerprint(name) => {
                format!("{}={}", principal.kind(), encode_component(name))
            }
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
                    match crate::store::plan_quota(answer.rate_per_min, answer.burst) {
                        Ok(Some(quota)) => tenant = tenant.with_quota(quota),
                        Ok(None) => {}
                        Err(problem) => {
                            return Fetched::Failed(format!(
                                "control plane sent a bad resolve answer: {problem}"
                            ));
                        }
                    }
                    Fetched::Answer {
                        value: Resolution::of(tenants.share(tenant)),
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
            "control plane refused the internal secret ({status}): check that both sides hold the same one"
        ),
        _ => format!("control plane answered {status}"),
    }
}

impl TenantResolver for ControlPlaneResolver {
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a> {
        if let Some(resolution) = self.keys.peek(principal) {
            return Resolving::ready(Ok(resolution));
        }
        Resolving::later(async move {
            let control_plane = self.control_plane.clone();
            let tenants = self.tenants.clone();
            let key = principal.clone();
            match self
                .keys
                .get(principal, move || Self::fetch(control_plane, tenants, key))
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

    fn cached_entries(&self) -> Option<usize> {
        Some(self.keys.entries())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_secrets_that_cannot_be_used_are_typed() {
        assert_eq!(
            ControlPlane::new("ftp://cp", "s").unwrap_err(),
            ControlPlaneError::InvalidUrl {
                url: "ftp://cp".to_owned(),
                reason: "the scheme must be http or https"
            }
        );
        let https = ControlPlane::new("https://cp:8443/base/", "s").unwrap();
        assert_eq!(
            (https.port, https.prefix.as_str()),
            (8443, "https://cp:8443/base")
        );
        assert!(!format!("{https:?}").contains("\"s\""));
        assert_eq!(
            ControlPlaneResolver::new(https).unwrap_err(),
            ControlPlaneError::NoTls
        );
        for url in [
            "https://admin:hunter2@cp:8443",
            "http://admin@cp",
            "http://a:b@",
        ] {
            let err = ControlPlane::new(url, "s").unwrap_err();
            assert_eq!(err, ControlPlaneError::UserInfo, "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let cp = ControlPlane::new("http://cp:8080", "s3cret\n").unwrap();
        assert_eq!(cp.secret, "s3cret");
        assert!(cp.secret.is_sensitive());
        for blank in [" ", "\n", " \t\n"] {
            assert_eq!(
                ControlPlane::new("http://cp", blank).unwrap_err(),
                ControlPlaneError::BlankSecret
            );
        }
        let err = ControlPlane::new("http://cp", "a\nb").unwrap_err();
        assert_eq!(err, ControlPlaneError::SecretNotAHeaderValue);
        assert!(!err.to_string().contains("a\nb"), "{err}");
    }

    #[test]
    fn equal_answers_share_one_tenant_and_the_bound_holds() {
        let tenants = Tenants::new(2);
        let acme = || Tenant::new("acme", TenantStatus::Active).with_caller("billing");
        let first = tenants.share(acme());
        let again = tenants.share(acme());
        assert_eq!(first, again);
        assert_eq!(tenants.seen.lock().unwrap().len(), 1);
        // Another caller or status is another tenant value.
        let other = tenants.share(Tenant::new("acme", TenantStatus::Inactive));
        assert_ne!(other, first);
        assert_eq!(tenants.seen.lock().unwrap().len(), 2);
        // Past the bound the least recently named goes; answers stay right.
        let third = tenants.share(Tenant::new("globex", TenantStatus::Active));
        assert_eq!(third.id(), "globex");
        assert_eq!(tenants.seen.lock().unwrap().len(), 2);
        assert_eq!(tenants.share(acme()), acme());
    }
}
