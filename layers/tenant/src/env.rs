//! The tenant layer from the environment: `TENANTS_FILE`, the control
//! plane and its cache durations, `AUTH_POLICY`, the stamped headers.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;

use crate::{AuthPolicy, TenantLayer};

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
