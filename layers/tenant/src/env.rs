//! The tenant layer and the internal-route guard from the environment:
//! `TENANTS_FILE`, the control plane (`CONTROL_PLANE_URL`,
//! `CONTROL_PLANE_INTERNAL_SECRET`, its cache durations and, for `https`,
//! the outbound trust), `AUTH_POLICY`, `TENANT_HEADER` and `CALLER_HEADER`.

use portcullis_identity::OutboundTrust;
use portcullis_identity::env::{Env, EnvError, EnvProblem, Invalid, Problems, Zero};

use crate::control_plane::internal_secret;
use crate::{
    AuthPolicy, CachePolicy, Chain, ControlPlane, ControlPlaneError, ControlPlaneResolver,
    FileStore, InternalGuardLayer, MemoryStore, TenantLayer,
};

const URL: &str = "CONTROL_PLANE_URL";
const SECRET: &str = "CONTROL_PLANE_INTERNAL_SECRET";

/// The control-plane cache durations the environment may set, in seconds.
const CACHE_DURATION_VARS: [&str; 3] = [
    "CONTROL_PLANE_CACHE_TTL_SECS",
    "CONTROL_PLANE_NEGATIVE_TTL_SECS",
    "CONTROL_PLANE_STALE_GRACE_SECS",
];

/// Settings that mean nothing without tenants.
const TENANT_ONLY_VARS: [&str; 3] = ["AUTH_POLICY", "TENANT_HEADER", "CALLER_HEADER"];

impl TenantLayer {
    /// The layer the environment describes, or `None` when neither
    /// `TENANTS_FILE` nor a control plane is configured (then any of
    /// `AUTH_POLICY`, `TENANT_HEADER`, `CALLER_HEADER` or a cache duration
    /// is a problem: it would mean nothing).
    ///
    /// Reads `TENANTS_FILE` (a [`FileStore`], asked first and
    /// [reloaded](FileStore::watched) whenever it changes),
    /// `CONTROL_PLANE_URL` with `CONTROL_PLANE_INTERNAL_SECRET` (both or
    /// neither; for an `https` URL the roots of
    /// [`OutboundTrust::from_env`]), the cache durations
    /// `CONTROL_PLANE_CACHE_TTL_SECS` (default 60),
    /// `CONTROL_PLANE_NEGATIVE_TTL_SECS` (15) and
    /// `CONTROL_PLANE_STALE_GRACE_SECS` (300), `AUTH_POLICY`,
    /// `TENANT_HEADER` and `CALLER_HEADER`. Every problem is reported at
    /// once, each naming the variable and the fix.
    ///
    /// ```
    /// use portcullis_identity::env::Env;
    /// use portcullis_tenant::TenantLayer;
    ///
    /// assert!(TenantLayer::from_env(&Env::from_pairs([("LISTEN_ADDR", "[::]:8443")]))?.is_none());
    /// let error = TenantLayer::from_env(&Env::from_pairs([("CONTROL_PLANE_URL", "https://cp.internal")])).unwrap_err();
    /// assert_eq!(error.vars().collect::<Vec<_>>(), ["CONTROL_PLANE_URL"]);
    /// # Ok::<(), portcullis_identity::env::EnvError>(())
    /// ```
    pub fn from_env(env: &Env<'_>) -> Result<Option<Self>, EnvError> {
        let mut problems = Problems::new();
        if !env.is_set("TENANTS_FILE") && !env.is_set(URL) && !env.is_set(SECRET) {
            for var in TENANT_ONLY_VARS.iter().filter(|var| env.is_set(var)) {
                problems.push(EnvProblem::setting(
                    *var,
                    "set, but no tenants are",
                    format!(
                        "set TENANTS_FILE or CONTROL_PLANE_URL (with \
                         CONTROL_PLANE_INTERNAL_SECRET), or unset {var}"
                    ),
                ));
            }
            for var in CACHE_DURATION_VARS.iter().filter(|var| env.is_set(var)) {
                problems.push(EnvProblem::missing_partner(
                    *var,
                    URL,
                    format!("unset {var}, or configure a control plane"),
                ));
            }
            return problems.finish(|| None);
        }
        let file = env.parse("TENANTS_FILE", &mut problems, |path| {
            FileStore::load(path)
                .and_then(FileStore::watched)
                .map_err(|e| Invalid::new(e.problem().to_owned(), "set it to a readable JSON file"))
        });
        let cache = problems.take(cache_policy(env));
        let remote = problems
            .take(ControlPlane::from_env(env))
            .flatten()
            .zip(cache)
            .and_then(|(control_plane, cache)| {
                problems.take(
                    ControlPlaneResolver::with_policy(control_plane, cache)
                        .map_err(|e| control_plane_problem(URL, None, &e).into()),
                )
            });
        let policy = env.parse("AUTH_POLICY", &mut problems, |text| {
            text.parse::<AuthPolicy>().map_err(|_| {
                Invalid::new(
                    "not an authentication policy",
                    "write bearer, cert, bearer+cert or bearer-or-cert",
                )
            })
        });
        let tenant_header = env.header_name("TENANT_HEADER", &mut problems, "x-tenant-id");
        let caller_header = env.header_name("CALLER_HEADER", &mut problems, "x-caller-id");
        problems.finish(|| {
            let mut chain = match file {
                Some(file) => Chain::new([file]),
                None => Chain::new(Vec::<MemoryStore>::new()),
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
            Some(layer)
        })
    }
}

/// The cache durations, on top of [`CachePolicy::default`].
fn cache_policy(env: &Env<'_>) -> Result<CachePolicy, EnvError> {
    let mut problems = Problems::new();
    let mut cache = CachePolicy::default();
    for (var, field) in CACHE_DURATION_VARS.iter().zip([
        &mut cache.positive_ttl,
        &mut cache.negative_ttl,
        &mut cache.stale_grace,
    ]) {
        if let Some(duration) = env.seconds(var, &mut problems, Zero::Allowed) {
            *field = duration;
        }
    }
    problems.finish(|| cache)
}

/// `error` as a problem with `var` (quoting `value` when it may be quoted).
fn control_plane_problem(
    var: &'static str,
    value: Option<String>,
    error: &ControlPlaneError,
) -> EnvProblem {
    let (problem, fix) = error.problem_and_fix();
    match value {
        Some(value) => EnvProblem::invalid(var, value, problem, fix),
        None => EnvProblem::setting(var, problem, fix),
    }
}

impl ControlPlane {
    /// Reads `CONTROL_PLANE_URL` and `CONTROL_PLANE_INTERNAL_SECRET`, and
    /// for an `https` URL the outbound roots ([`OutboundTrust::from_env`]).
    /// `Ok(None)` when neither is set (no control plane); one without the
    /// other is an error naming both. The secret is trimmed once (a
    /// Kubernetes secret made from a file ends in a newline), the same
    /// value that is sent out and that [`InternalGuardLayer`] checks; a
    /// secret of only white space is an error, and the secret is never
    /// part of one.
    pub fn from_env(env: &Env<'_>) -> Result<Option<Self>, EnvError> {
        const BOTH: &str = "set both to use a control plane, or neither";
        let mut problems = Problems::new();
        let url = env.get(URL);
        // Read raw: a secret of only white space is a mistake to report,
        // not an unset variable.
        let secret = env.get_raw(SECRET).filter(|s| !s.is_empty());
        // Read even when the pair is incomplete, so its problems come too.
        let https = url.as_ref().is_some_and(|url| {
            url.get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:"))
        });
        let tls = https.then(|| problems.take(outbound_tls(env))).flatten();
        let control_plane = match (url, secret) {
            (None, None) => None,
            (Some(url), Some(secret)) => ControlPlane::new(&url, &secret)
                .map_err(|e| {
                    problems.push(match e {
                        ControlPlaneError::BlankSecret
                        | ControlPlaneError::SecretNotAHeaderValue => {
                            control_plane_problem(SECRET, None, &e)
                        }
                        ControlPlaneError::UserInfo => control_plane_problem(URL, None, &e),
                        _ => control_plane_problem(URL, Some(url.clone()), &e),
                    });
                })
                .ok(),
            (Some(_), None) => {
                problems.push(EnvProblem::missing_partner(URL, SECRET, BOTH));
                None
            }
            (None, Some(_)) => {
                problems.push(EnvProblem::missing_partner(SECRET, URL, BOTH));
                None
            }
        };
        problems.finish(|| {
            control_plane.map(|control_plane| match tls {
                Some(tls) => control_plane.with_tls(tls),
                None => control_plane,
            })
        })
    }
}

/// The client configuration for an `https` control plane.
fn outbound_tls(env: &Env<'_>) -> Result<std::sync::Arc<rustls::ClientConfig>, EnvError> {
    OutboundTrust::from_env(env)?.client_config().map_err(|e| {
        let (problem, fix) = e.problem_and_fix();
        EnvProblem::setting(URL, problem, fix).into()
    })
}

impl InternalGuardLayer {
    /// Guards with `CONTROL_PLANE_INTERNAL_SECRET` (unset: the routes are
    /// hidden), read as [`ControlPlane::from_env`] reads it; a secret that
    /// cannot be used is an error.
    pub fn from_env(env: &Env<'_>) -> Result<Self, EnvError> {
        match env.get_raw(SECRET).filter(|s| !s.is_empty()) {
            None => Ok(InternalGuardLayer::new(None)),
            Some(secret) => internal_secret(&secret)
                .map(|secret| InternalGuardLayer::new(Some(secret)))
                .map_err(|e| control_plane_problem(SECRET, None, &e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_plane(pairs: &[(&str, &str)]) -> Result<Option<ControlPlane>, String> {
        ControlPlane::from_env(&Env::from_pairs(pairs.iter().copied())).map_err(|e| e.to_string())
    }

    #[test]
    fn a_half_set_pair_names_both() {
        assert!(control_plane(&[]).unwrap().is_none());
        assert_eq!(
            control_plane(&[(URL, "http://cp")]).unwrap_err(),
            "CONTROL_PLANE_URL: set without CONTROL_PLANE_INTERNAL_SECRET; set both to use a \
             control plane, or neither"
        );
        assert!(
            control_plane(&[(SECRET, "s")])
                .unwrap_err()
                .starts_with("CONTROL_PLANE_INTERNAL_SECRET: set without CONTROL_PLANE_URL"),
        );
        assert!(
            control_plane(&[(URL, "ftp://cp"), (SECRET, "s")])
                .unwrap_err()
                .starts_with("CONTROL_PLANE_URL=\"ftp://cp\": the scheme must be http or https")
        );
    }

    #[test]
    fn the_secret_is_trimmed_once_and_never_quoted() {
        let cp = control_plane(&[(URL, "http://cp:8080"), (SECRET, "s3cret\n")])
            .unwrap()
            .unwrap();
        assert!(format!("{cp:?}").contains("<redacted>"));
        for blank in [" ", "\n", " \t\n"] {
            let err = control_plane(&[(URL, "http://cp:8080"), (SECRET, blank)]).unwrap_err();
            assert_eq!(
                err,
                "CONTROL_PLANE_INTERNAL_SECRET: the secret is empty or only white space; set it \
                 to the secret the control plane expects"
            );
            let guard = InternalGuardLayer::from_env(&Env::from_pairs([(SECRET, blank)]));
            assert!(guard.is_err());
        }
        let err = control_plane(&[(URL, "http://cp:8080"), (SECRET, "a\nb")]).unwrap_err();
        assert!(err.contains("control character"), "{err}");
        assert!(!err.contains("a\nb"), "{err}");
        for url in ["http://admin:hunter2@cp:8080", "http://admin@cp"] {
            let err = control_plane(&[(URL, url), (SECRET, "s")]).unwrap_err();
            assert!(
                err.starts_with("CONTROL_PLANE_URL: holds a user name or password"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn tenant_settings_without_tenants_are_problems() {
        let error = TenantLayer::from_env(&Env::from_pairs([
            ("TENANT_HEADER", "x-org"),
            ("CONTROL_PLANE_CACHE_TTL_SECS", "5"),
        ]))
        .unwrap_err();
        assert_eq!(
            error.vars().collect::<Vec<_>>(),
            ["TENANT_HEADER", "CONTROL_PLANE_CACHE_TTL_SECS"]
        );
        assert!(
            TenantLayer::from_env(&Env::from_pairs([("LISTEN_ADDR", "[::1]:1")]))
                .unwrap()
                .is_none()
        );
    }
}
