//! [`TenantLayer`]: strip every protected header, authenticate, resolve the
//! tenant, stamp it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use portcullis_identity::response::{Rejection, ResponseBody, rejection_response};
use portcullis_identity::{
    BearerDigest, ClientIdentity, KnownFields, ProtectedHeaders, Tenant, observe,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::resolver::{BoxFuture, Principal, Resolution, ResolveError, TenantResolver};

/// The header stamped with the tenant id, by default.
pub const DEFAULT_TENANT_HEADER: &str = "x-llm-router-tenant";
/// The header stamped with the caller (consumer) name, by default.
pub const DEFAULT_CALLER_HEADER: &str = "x-llm-router-caller";

/// Which credentials name the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthPolicy {
    /// The bearer key, required even when the client also presented a
    /// certificate (`bearer`, the default).
    #[default]
    Bearer,
    /// The client certificate alone (`cert`).
    Cert,
    /// Both, and they must resolve to the same tenant (`bearer+cert`).
    BearerAndCert,
    /// The bearer key if one was sent, else the certificate
    /// (`bearer-or-cert`).
    BearerOrCert,
}

impl FromStr for AuthPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "bearer" => Ok(AuthPolicy::Bearer),
            "cert" => Ok(AuthPolicy::Cert),
            "bearer+cert" => Ok(AuthPolicy::BearerAndCert),
            "bearer-or-cert" => Ok(AuthPolicy::BearerOrCert),
            _ => Err(format!(
                "AUTH_POLICY={text:?}: expected bearer, cert, bearer+cert or bearer-or-cert"
            )),
        }
    }
}

/// Which name of a client certificate is its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CertificatePrincipal {
    /// The SPIFFE ID when there is one, else the common name (default).
    #[default]
    SpiffeIdOrCommonName,
    /// The subject's common name.
    CommonName,
    /// The SPIFFE ID.
    SpiffeId,
    /// The SHA-256 fingerprint, 64 lower-case hex digits.
    Fingerprint,
}

impl CertificatePrincipal {
    /// The principal of this kind that `identity` names, if any. A SPIFFE
    /// ID comes only from the URI SAN, a common name only from the
    /// subject: each is looked up as its own kind.
    fn of(self, identity: &ClientIdentity) -> Option<Principal> {
        let spiffe = || {
            identity
                .spiffe_id()
                .map(|s| Principal::SpiffeId(Arc::from(s.as_str())))
        };
        let common_name = || {
            identity
                .common_name()
                .map(|cn| Principal::CommonName(Arc::from(cn)))
        };
        match self {
            CertificatePrincipal::SpiffeIdOrCommonName => spiffe().or_else(common_name),
            CertificatePrincipal::CommonName => common_name(),
            CertificatePrincipal::SpiffeId => spiffe(),
            // Only a known SHA-256: a forwarded SHA-1 fingerprint is not one.
            CertificatePrincipal::Fingerprint => identity
                .known_fields()
                .contains(KnownFields::FINGERPRINT)
                .then(|| Principal::Fingerprint(identity.fingerprint_sha256_hex().into())),
        }
    }
}

/// Resolves each request's tenant and stamps it; see the
/// [crate docs](crate).
#[derive(Clone)]
pub struct TenantLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    resolver: Arc<dyn TenantResolver>,
    /// `false`: strip the protected headers and stamp nothing
    /// ([`TenantLayer::strip_only`]).
    resolve: bool,
    policy: AuthPolicy,
    certificate: CertificatePrincipal,
    tenant_header: HeaderName,
    caller_header: HeaderName,
    protected: ProtectedHeaders,
}

impl fmt::Debug for TenantLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantLayer")
            .field("resolve", &self.config.resolve)
            .field("policy", &self.config.policy)
            .field("certificate", &self.config.certificate)
            .field("tenant_header", &self.config.tenant_header)
            .field("caller_header", &self.config.caller_header)
            .field("protected", &self.config.protected)
            .finish_non_exhaustive()
    }
}

impl TenantLayer {
    /// Resolves through `resolver` with [`AuthPolicy::Bearer`], stamping
    /// `x-llm-router-tenant` and `x-llm-router-caller`, and protecting those
    /// and `x-internal-secret`.
    pub fn new(resolver: impl TenantResolver) -> Self {
        let tenant_header = HeaderName::from_static(DEFAULT_TENANT_HEADER);
        let caller_header = HeaderName::from_static(DEFAULT_CALLER_HEADER);
        let protected = ProtectedHeaders::new([
            DEFAULT_TENANT_HEADER,
            DEFAULT_CALLER_HEADER,
            crate::INTERNAL_SECRET_HEADER,
        ]);
        TenantLayer {
            config: Arc::new(Config {
                resolver: Arc::new(resolver),
                resolve: true,
                policy: AuthPolicy::default(),
                certificate: CertificatePrincipal::default(),
                tenant_header,
                caller_header,
                protected,
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// For services with no tenants configured: the protected headers are
    /// still removed from every request (and a `Connection` header naming
    /// one still refused), so a client can never hand the application a
    /// tenant of its own making; nothing is authenticated or stamped.
    pub fn strip_only() -> Self {
        TenantLayer::new(crate::MemoryStore::new()).edit(|c| c.resolve = false)
    }

    /// Which credentials name the caller.
    #[must_use]
    pub fn policy(self, policy: AuthPolicy) -> Self {
        self.edit(|c| c.policy = policy)
    }

    /// Which certificate name is looked up.
    #[must_use]
    pub fn certificate_principal(self, principal: CertificatePrincipal) -> Self {
        self.edit(|c| c.certificate = principal)
    }

    /// The header stamped with the tenant id (it is protected too).
    #[must_use]
    pub fn tenant_header(self, header: HeaderName) -> Self {
        self.edit(|c| {
            c.protected.add(header.as_str());
            c.tenant_header = header;
        })
    }

    /// The header stamped with the caller name (it is protected too).
    #[must_use]
    pub fn caller_header(self, header: HeaderName) -> Self {
        self.edit(|c| {
            c.protected.add(header.as_str());
            c.caller_header = header;
        })
    }

    /// Another header no client may send (removed under every spelling).
    #[must_use]
    pub fn protect(self, header: &str) -> Self {
        self.edit(|c| c.protected.add(header))
    }
}

/// Tenant settings in the environment that cannot be used: every problem
/// found, each naming its variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEnvError(Vec<String>);

impl TenantEnvError {
    /// Each problem, one line each.
    pub fn problems(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for TenantEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for TenantEnvError {}

/// The control-plane cache durations the environment may set, in seconds,
/// and the [`CachePolicy`](crate::CachePolicy) field each one sets.
const CACHE_DURATION_VARS: [&str; 3] = [
    "CONTROL_PLANE_CACHE_TTL_SECS",
    "CONTROL_PLANE_NEGATIVE_TTL_SECS",
    "CONTROL_PLANE_STALE_GRACE_SECS",
];

/// `var`'s value as a duration in seconds (decimals allowed, 0 allowed).
fn seconds(var: &str, value: &str) -> Result<std::time::Duration, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 31_536_000.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("{var}={value:?}: not a number of seconds; write one such as 60 or 0.5")
        })
}

impl TenantLayer {
    /// The layer the environment describes, or `None` when neither
    /// `TENANTS_FILE` nor a control plane is configured.
    ///
    /// Reads `TENANTS_FILE` (a [`FileStore`](crate::FileStore), asked
    /// first and [reloaded](crate::FileStore::watched) whenever it
    /// changes), `CONTROL_PLANE_URL` with `CONTROL_PLANE_INTERNAL_SECRET`
    /// (both or neither; `tls` is used for an `https` URL), the cache
    /// durations `CONTROL_PLANE_CACHE_TTL_SECS` (default 60),
    /// `CONTROL_PLANE_NEGATIVE_TTL_SECS` (15) and
    /// `CONTROL_PLANE_STALE_GRACE_SECS` (300), `AUTH_POLICY`,
    /// `TENANT_HEADER` and `CALLER_HEADER`. Every problem is reported at
    /// once, each naming the variable and what it accepts.
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Option<Self>, TenantEnvError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let control_plane_set = ["CONTROL_PLANE_URL", "CONTROL_PLANE_INTERNAL_SECRET"]
            .iter()
            .any(|var| get(var).is_some());
        if get("TENANTS_FILE").is_none() && !control_plane_set {
            // Whether the other tenant settings make sense without tenants
            // is the caller's call; cache durations without a cache are not.
            problems.extend(CACHE_DURATION_VARS.iter().filter(|var| get(var).is_some()).map(
                |var| format!("{var} is set but CONTROL_PLANE_URL is not: unset {var}, or configure a control plane"),
            ));
            return if problems.is_empty() {
                Ok(None)
            } else {
                Err(TenantEnvError(problems))
            };
        }

        let file = get("TENANTS_FILE").and_then(|path| {
            crate::FileStore::load(path.trim())
                .and_then(crate::FileStore::watched)
                .map_err(|e| problems.push(e.to_string()))
                .ok()
        });
        let mut cache = crate::CachePolicy::default();
        for (var, field) in CACHE_DURATION_VARS.iter().zip([
            &mut cache.positive_ttl,
            &mut cache.negative_ttl,
            &mut cache.stale_grace,
        ]) {
            if let Some(value) = get(var) {
                match seconds(var, &value) {
                    Ok(duration) => *field = duration,
                    Err(problem) => problems.push(problem),
                }
            }
        }
        let remote = match crate::ControlPlane::from_env_with(&lookup) {
            Ok(None) => None,
            Ok(Some(mut control_plane)) => {
                if let Some(tls) = tls {
                    control_plane = control_plane.with_tls(tls);
                }
                crate::ControlPlaneResolver::with_policy(control_plane, cache)
                    .map_err(|e| problems.push(e.to_string()))
                    .ok()
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let policy = get("AUTH_POLICY").and_then(|policy| {
            policy
                .parse::<AuthPolicy>()
                .map_err(|problem| problems.push(problem))
                .ok()
        });
        let [tenant_header, caller_header] = ["TENANT_HEADER", "CALLER_HEADER"].map(|var| {
            let value = get(var)?;
            HeaderName::from_bytes(value.trim().as_bytes())
                .map_err(|_| {
                    problems.push(format!(
                        "{var}={value:?}: not a header name; write one such as x-tenant-id"
                    ));
                })
                .ok()
        });
        if !problems.is_empty() {
            return Err(TenantEnvError(problems));
        }

        let mut chain = match file {
            Some(file) => crate::Chain::new([file]),
            None => crate::Chain::new(Vec::<crate::MemoryStore>::new()),
        };
        if let Some(remote) = remote {
            chain = chain.with_remote(remote);
        }
        let mut layer = TenantLayer::new(chain);
        if let Some(policy) = policy {
            layer = layer.policy(policy);
        }
        if let Some(header) = tenant_header {
            layer = layer.tenant_header(header);
        }
        if let Some(header) = caller_header {
            layer = layer.caller_header(header);
        }
        Ok(Some(layer))
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = ResolveTenant<S>;

    fn layer(&self, inner: S) -> ResolveTenant<S> {
        ResolveTenant {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`TenantLayer`] makes.
#[derive(Clone)]
pub struct ResolveTenant<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for ResolveTenant<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveTenant")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ResolveTenant<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Why a request was turned away; found in the response's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRejection {
    kind: TenantRejectionKind,
    reason: Cow<'static, str>,
    retry_after: Option<Duration>,
}

/// The kind of a [`TenantRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantRejectionKind {
    /// `400`: a malformed `Authorization`, or a `Connection` header naming
    /// a protected header.
    BadRequest,
    /// `401`: no credential, or one no resolver knows.
    Unauthenticated,
    /// `403`: the tenant is inactive, or certificate and key disagree.
    Forbidden,
    /// `503`: resolution is unavailable; `Retry-After` says when to retry.
    Unavailable,
    /// `500`: a resolved tenant id or caller cannot be written as a header.
    Internal,
}

impl TenantRejectionKind {
    /// The fixed label counters and the request span use.
    pub fn label(self) -> &'static str {
        match self {
            TenantRejectionKind::BadRequest => "bad_request",
            TenantRejectionKind::Unauthenticated => "unauthenticated",
            TenantRejectionKind::Forbidden => "forbidden",
            TenantRejectionKind::Unavailable => "tenant_unavailable",
            TenantRejectionKind::Internal => "internal",
        }
    }
}

impl TenantRejection {
    fn new(kind: TenantRejectionKind, reason: impl Into<Cow<'static, str>>) -> Self {
        TenantRejection {
            kind,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TenantRejectionKind {
        self.kind
    }

    /// The reason the body gives.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for TenantRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for TenantRejection {}

impl Rejection for TenantRejection {
    fn status(&self) -> StatusCode {
        match self.kind {
            TenantRejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            TenantRejectionKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            TenantRejectionKind::Forbidden => StatusCode::FORBIDDEN,
            TenantRejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            TenantRejectionKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body_text(&self) -> Cow<'static, str> {
        Cow::Owned(format!("{}\n", self.reason))
    }

    fn headers(&self, headers: &mut HeaderMap) {
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up, at least 1.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.kind == TenantRejectionKind::Unauthenticated {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
    }
}

/// What a successful resolution stamps.
struct Stamp {
    tenant: Tenant,
    /// The bearer key that authenticated the caller, for the layers after
    /// this one (a rate limiter keys only an authenticated bearer).
    bearer: Option<BearerDigest>,
    tenant_value: HeaderValue,
    caller_value: Option<HeaderValue>,
}

type Decision = Result<Stamp, TenantRejection>;

impl Config {
    /// The principals the policy reads from this request.
    fn principals(
        &self,
        headers: &HeaderMap,
        identity: Option<&ClientIdentity>,
    ) -> Result<Principals, TenantRejection> {
        let bearer = BearerDigest::from_headers(headers).map_err(|e| {
            TenantRejection::new(
                TenantRejectionKind::BadRequest,
                format!("malformed Authorization header: {e}"),
            )
        })?;
        let bearer = bearer.map(Principal::Bearer);
        let certificate = identity.and_then(|id| self.certificate.of(id));
        let missing = |what: &'static str| {
            Err(TenantRejection::new(
                TenantRejectionKind::Unauthenticated,
                what,
            ))
        };
        match (self.policy, bearer, certificate) {
            (AuthPolicy::Bearer, Some(b), _) => Ok((b, None)),
            (AuthPolicy::Bearer, None, _) => missing("a bearer API key is required"),
            (AuthPolicy::Cert, _, Some(c)) => Ok((c, None)),
            (AuthPolicy::Cert, _, None) => missing("a client certificate is required"),
            (AuthPolicy::BearerAndCert, Some(b), Some(c)) => Ok((b, Some(c))),
            (AuthPolicy::BearerAndCert, _, _) => {
                missing("a bearer API key and a client certificate are required")
            }
            (AuthPolicy::BearerOrCert, Some(b), _) => Ok((b, None)),
            (AuthPolicy::BearerOrCert, None, Some(c)) => Ok((c, None)),
            (AuthPolicy::BearerOrCert, None, None) => {
                missing("a bearer API key or a client certificate is required")
            }
        }
    }
}

/// The one or two principals a request names.
type Principals = (Principal, Option<Principal>);

fn each(principals: &Principals) -> impl Iterator<Item = &Principal> {
    std::iter::once(&principals.0).chain(principals.1.as_ref())
}

/// Folds one principal's resolution into the tenant found so far.
fn judge(
    principal: &Principal,
    resolution: Result<Resolution, ResolveError>,
    tenant: &mut Option<Tenant>,
) -> Result<(), TenantRejection> {
    let resolution = resolution.map_err(|e| TenantRejection {
        kind: TenantRejectionKind::Unavailable,
        reason: Cow::Borrowed("tenant resolution is unavailable; retry later"),
        retry_after: Some(e.retry_after()),
    })?;
    let found = match resolution {
        Resolution::Active(t) => t,
        Resolution::Inactive(_) => {
            return Err(TenantRejection::new(
                TenantRejectionKind::Forbidden,
                "the tenant is inactive",
            ));
        }
        Resolution::Unknown => {
            let what = if principal.is_certificate() {
                "unknown client certificate"
            } else {
                "unknown API key"
            };
            #[cfg(feature = "tracing")]
            tracing::debug!(%principal, "unknown principal");
            return Err(TenantRejection::new(
                TenantRejectionKind::Unauthenticated,
                what,
            ));
        }
    };
    if let Some(first) = tenant.as_ref()
        && first.id() != found.id()
    {
        return Err(TenantRejection::new(
            TenantRejectionKind::Forbidden,
            "the client certificate and the API key belong to different tenants",
        ));
    }
    *tenant = Some(found);
    Ok(())
}

/// What the resolved tenant stamps.
fn finish(tenant: Option<Tenant>, principals: &Principals) -> Decision {
    let tenant = tenant.ok_or_else(|| {
        TenantRejection::new(TenantRejectionKind::Unauthenticated, "no credential")
    })?;
    let unwritable = || {
        TenantRejection::new(
            TenantRejectionKind::Internal,
            "the resolved tenant cannot be written as a header",
        )
    };
    let tenant_value = tenant.id_header_value().ok_or_else(unwritable)?;
    let caller_value = match tenant.caller() {
        None => None,
        Some(_) => Some(tenant.caller_header_value().ok_or_else(unwritable)?),
    };
    let bearer = each(principals).find_map(|p| match p {
        Principal::Bearer(digest) => Some(*digest),
        _ => None,
    });
    Ok(Stamp {
        tenant,
        bearer,
        tenant_value,
        caller_value,
    })
}

/// The decision, when every answer is at hand (local stores, fresh cache
/// entries); `None` when one must be waited for.
fn decide_now(config: &Config, principals: &Principals) -> Option<Decision> {
    let mut tenant = None;
    for principal in each(principals) {
        let resolution = config.resolver.resolve_now(principal)?;
        if let Err(rejection) = judge(principal, resolution, &mut tenant) {
            return Some(Err(rejection));
        }
    }
    Some(finish(tenant, principals))
}

async fn decide(config: Arc<Config>, principals: Principals) -> Decision {
    let mut tenant = None;
    for principal in each(&principals) {
        let resolution = config.resolver.resolve(principal).await;
        judge(principal, resolution, &mut tenant)?;
    }
    finish(tenant, &principals)
}

/// Writes the stamp: only ever after authentication and resolution.
fn stamp<B>(
    req: &mut Request<B>,
    stamp: Stamp,
    tenant_header: &HeaderName,
    caller_header: &HeaderName,
) {
    observe::record("tenant", &stamp.tenant.id());
    if let Some(digest) = stamp.bearer {
        req.extensions_mut().insert(digest);
    }
    let headers = req.headers_mut();
    headers.insert(tenant_header.clone(), stamp.tenant_value);
    if let Some(caller) = stamp.caller_value {
        headers.insert(caller_header.clone(), caller);
    }
    req.extensions_mut().insert(stamp.tenant);
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResolveTenant<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        // Strip before anything else, on every request.
        let nominated = config.protected.nominated_by_connection(req.headers());
        observe::stripped(
            "tenant",
            config.protected.strip(req.headers_mut(), |_| false),
        );
        let principals = match nominated {
            Some(token) => Err(TenantRejection::new(
                TenantRejectionKind::BadRequest,
                format!("Connection header nominates the protected header {token:?}"),
            )),
            None if !config.resolve => {
                return ResponseFuture {
                    state: State::Calling {
                        future: self.inner.call(req),
                    },
                };
            }
            None => config.principals(req.headers(), req.extensions().get::<ClientIdentity>()),
        };
        let principals = match principals {
            Ok(principals) => principals,
            Err(rejection) => return ResponseFuture::rejected(rejection),
        };
        // The span names the key (a digest prefix) even when it is refused.
        if let Some(Principal::Bearer(digest)) = each(&principals).find(|p| !p.is_certificate()) {
            observe::bearer(digest);
        }
        // Every answer at hand: decide now, no future to box.
        match decide_now(config, &principals) {
            Some(Ok(decided)) => {
                stamp(
                    &mut req,
                    decided,
                    &config.tenant_header,
                    &config.caller_header,
                );
                return ResponseFuture {
                    state: State::Calling {
                        future: self.inner.call(req),
                    },
                };
            }
            Some(Err(rejection)) => return ResponseFuture::rejected(rejection),
            None => {}
        }
        // The service that was polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Resolving {
                // Boxed: the common case (decided at once) keeps the future small.
                waiting: Box::new(Waiting {
                    decision: Box::pin(decide(config.clone(), principals)),
                    request: Some(req),
                    inner: Some(inner),
                    config: config.clone(),
                }),
            },
        }
    }
}

pin_project! {
    /// Response future of [`ResolveTenant`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
    }
}

/// A request waiting for its tenant.
struct Waiting<S, B> {
    decision: BoxFuture<'static, Decision>,
    request: Option<Request<B>>,
    inner: Option<S>,
    config: Arc<Config>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        Resolving { waiting: Box<Waiting<S, B>> },
        Calling { #[pin] future: F },
        Rejected { rejection: TenantRejection },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn rejected(rejection: TenantRejection) -> Self {
        ResponseFuture {
            state: State::Rejected { rejection },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Calling { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Rejected { rejection } => {
                    // Here, not where it was decided: decided now or after
                    // resolving, every refusal passes this point once.
                    observe::rejected("tenant", rejection.kind.label());
                    #[cfg(feature = "tracing")]
                    tracing::debug!(reason = %rejection, "tenant layer refused the request");
                    return Poll::Ready(Ok(rejection_response(rejection)));
                }
                StateProj::Resolving { waiting } => {
                    match ready!(waiting.decision.as_mut().poll(cx)) {
                        Err(rejection) => State::Rejected { rejection },
                        Ok(decided) => match (waiting.request.take(), waiting.inner.take()) {
                            (Some(mut req), Some(mut inner)) => {
                                let config = &waiting.config;
                                stamp(
                                    &mut req,
                                    decided,
                                    &config.tenant_header,
                                    &config.caller_header,
                                );
                                State::Calling {
                                    future: inner.call(req),
                                }
                            }
                            _ => State::Rejected {
                                rejection: TenantRejection::new(
                                    TenantRejectionKind::Internal,
                                    "polled after completion",
                                ),
                            },
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
