//! From a request's principals to the tenant it stamps, or a rejection.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use portcullis_identity::{BearerDigest, ClientIdentity, Tenant, observe};

use super::layer::{AuthPolicy, Config};
use super::rejection::{TenantRejection, TenantRejectionKind};
use crate::resolver::{Principal, Resolution, ResolveError, TenantResolver};

/// What a successful resolution stamps.
pub(super) struct Stamp {
    tenant: Tenant,
    /// The bearer key that authenticated the caller, for the layers after
    /// this one (a rate limiter keys only an authenticated bearer).
    bearer: Option<BearerDigest>,
    tenant_value: HeaderValue,
    caller_value: Option<HeaderValue>,
}

pub(super) type Decided = Result<Stamp, TenantRejection>;

impl Config {
    /// The principals the policy reads from this request.
    pub(super) fn principals(
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
        // Read only when the policy asks: it copies a name out of the
        // certificate.
        let certificate = || identity.and_then(|id| self.certificate.of(id));
        let missing = |what: &'static str| {
            Err(TenantRejection::new(
                TenantRejectionKind::Unauthenticated,
                what,
            ))
        };
        match (self.policy, bearer) {
            (AuthPolicy::Bearer, Some(b)) => Ok((b, None)),
            (AuthPolicy::Bearer, None) => missing("a bearer API key is required"),
            (AuthPolicy::Cert, _) => match certificate() {
                Some(c) => Ok((c, None)),
                None => missing("a client certificate is required"),
            },
            (AuthPolicy::BearerAndCert, bearer) => match (bearer, certificate()) {
                (Some(b), Some(c)) => Ok((b, Some(c))),
                _ => missing("a bearer API key and a client certificate are required"),
            },
            (AuthPolicy::BearerOrCert, Some(b)) => Ok((b, None)),
            (AuthPolicy::BearerOrCert, None) => match certificate() {
                Some(c) => Ok((c, None)),
                None => missing("a bearer API key or a client certificate is required"),
            },
        }
    }
}

/// The one or two principals a request names.
pub(super) type Principals = (Principal, Option<Principal>);

pub(super) fn each(principals: &Principals) -> impl Iterator<Item = &Principal> {
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
fn finish(tenant: Option<Tenant>, principals: &Principals) -> Decided {
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
pub(super) fn decide_now(config: &Config, principals: &Principals) -> Option<Decided> {
    let mut tenant = None;
    for principal in each(principals) {
        let resolution = config.resolver.resolve(principal).now().ok()?;
        if let Err(rejection) = judge(principal, resolution, &mut tenant) {
            return Some(Err(rejection));
        }
    }
    Some(finish(tenant, principals))
}

pub(super) async fn decide(config: Arc<Config>, principals: Principals) -> Decided {
    let mut tenant = None;
    for principal in each(&principals) {
        let resolution = config.resolver.resolve(principal).await;
        judge(principal, resolution, &mut tenant)?;
    }
    finish(tenant, &principals)
}

/// Writes the stamp: only ever after authentication and resolution.
pub(super) fn stamp<B>(
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
