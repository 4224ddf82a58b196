//! The rate limiter from the environment: `RATE_LIMIT_PER_MIN`,
//! `RATE_LIMIT_BURST`, `RATE_LIMIT_POLICIES`, `RATE_LIMIT_COST_HEADER`,
//! `RATE_LIMIT_KEY`, `USE_CERT_AS_PRINCIPAL`, `RATE_LIMIT_MAX_KEYS`,
//! `REDIS_URL` and `RATE_LIMIT_ON_STORE_ERROR`.

use std::fmt;
use std::sync::Arc;

use portcullis_identity::TrustedProxies;
use portcullis_identity::env::{Env, EnvError, EnvProblem, Invalid, Problems};

use http::HeaderName;

use crate::redis_url::RedisNodes;

use crate::{
    KeyChain, KeyChainError, MemoryLimiter, OnStoreError, PLAN_POLICY, Policy, Quota,
    RateLimitLayer, SystemClock, WhenFull,
};

/// The rate limiter the environment describes, read and checked but not
/// yet connected (see [`RateLimitEnv::layer`]).
#[derive(Clone)]
pub struct RateLimitEnv {
    keys: KeyChain,
    /// `USE_CERT_AS_PRINCIPAL`: the certificate's principal keys the
    /// bucket before the bearer.
    certificate_as_principal: bool,
    policies: Vec<Policy>,
    cost_header: Option<HeaderName>,
    max_keys: usize,
    redis_url: Option<String>,
    /// For `rediss://`: the extra outbound CA bundle, read.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    redis_tls_roots: Option<Vec<u8>>,
    on_store_error: OnStoreError,
}

impl fmt::Debug for RateLimitEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Redis URL may carry a password: only whether it is set.
        f.debug_struct("RateLimitEnv")
            .field("keys", &self.keys)
            .field("policies", &self.policies)
            .field("cost_header", &self.cost_header)
            .field("max_keys", &self.max_keys)
            .field("redis", &self.redis_url.is_some())
            .field("on_store_error", &self.on_store_error)
            .finish()
    }
}

/// Buckets held in memory unless `RATE_LIMIT_MAX_KEYS` says otherwise:
/// about 46 MB at 46 bytes a key.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

impl RateLimitEnv {
    /// Reads the variables; `ip` keys resolve through `proxies` (see
    /// [`TrustedProxies::from_env`], the same proxies every layer uses).
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `RATE_LIMIT_PER_MIN` | the default quota: requests a minute | unset: only tenant plans limit |
    /// | `RATE_LIMIT_BURST` | its burst | `RATE_LIMIT_PER_MIN` |
    /// | `RATE_LIMIT_KEY` | the key chain | `bearer,ip` (see [`default_keys`](Self::default_keys)) |
    /// | `USE_CERT_AS_PRINCIPAL` | key by the certificate first: `spiffe,cn,bearer,ip` (when `RATE_LIMIT_KEY` is unset) | `false` |
    /// | `RATE_LIMIT_MAX_KEYS` | buckets held in memory | 1,000,000 |
    /// | `REDIS_URL` | share limits through Redis (feature `redis`) | unset: in memory |
    /// | `RATE_LIMIT_ON_STORE_ERROR` | `open` or `closed` when Redis fails | `closed` |
    ///
    /// ```
    /// use portcullis_identity::TrustedProxies;
    /// use portcullis_identity::env::Env;
    /// use portcullis_rate_limit::RateLimitEnv;
    ///
    /// let env = Env::from_pairs([("RATE_LIMIT_PER_MIN", "600"), ("USE_CERT_AS_PRINCIPAL", "true")]);
    /// let limits = RateLimitEnv::from_env(&env, &TrustedProxies::none())?;
    /// assert!(limits.certificate_as_principal());
    /// assert_eq!(format!("{:?}", limits.keys()), "KeyChain([spiffe, cn, bearer, ip])");
    /// # Ok::<(), portcullis_identity::env::EnvError>(())
    /// ```
    pub fn from_env(env: &Env<'_>, proxies: &TrustedProxies) -> Result<Self, EnvError> {
        let mut problems = Problems::new();
        let policies = policies(env, &mut problems);
        let cost_header =
            env.header_name("RATE_LIMIT_COST_HEADER", &mut problems, "x-request-cost");
        let certificate_as_principal = env
            .flag("USE_CERT_AS_PRINCIPAL", &mut problems)
            .unwrap_or(false);
        let keys = env
            .parse("RATE_LIMIT_KEY", &mut problems, |text| {
                KeyChain::parse(text, proxies).map_err(|e| match e {
                    KeyChainError::Empty => {
                        Invalid::new(e.to_string(), "name at least one, e.g. cn,bearer,ip")
                    }
                    _ => Invalid::new(
                        e.to_string(),
                        "use cn, spiffe, fingerprint, bearer, tenant or ip, comma-separated",
                    ),
                })
            })
            .unwrap_or_else(|| {
                if certificate_as_principal {
                    certificate_keys(proxies)
                } else {
                    default_keys(proxies)
                }
            });
        let max_keys = env
            .count("RATE_LIMIT_MAX_KEYS", &mut problems, 1_000_000)
            .map_or(DEFAULT_MAX_KEYS, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let on_store_error = env
            .parse(
                "RATE_LIMIT_ON_STORE_ERROR",
                &mut problems,
                |text| match text.to_ascii_lowercase().as_str() {
                    "closed" => Ok(OnStoreError::FailClosed),
                    "open" => Ok(OnStoreError::FailOpen),
                    _ => Err(Invalid::new(
                        "not a store-failure policy",
                        "write open (let requests through uncounted) or closed (refuse them \
                         with 503)",
                    )),
                },
            )
            .unwrap_or(OnStoreError::FailClosed);
        let redis_url = env.get("REDIS_URL");
        let redis_tls_roots = redis_url
            .as_deref()
            .and_then(|url| redis_tls_roots(env, url, &mut problems));
        if redis_url.is_some() && cfg!(not(feature = "redis")) {
            problems.push(EnvProblem::setting(
                "REDIS_URL",
                "set, but portcullis was built without the `redis` feature",
                "enable it, or unset REDIS_URL to keep limits in memory",
            ));
        }
        problems.finish(|| RateLimitEnv {
            keys,
            certificate_as_principal,
            policies,
            cost_header,
            max_keys,
            redis_url,
            redis_tls_roots,
            on_store_error,
        })
    }

    /// Whether `USE_CERT_AS_PRINCIPAL` asked for the certificate's
    /// principal to name the caller's bucket.
    pub fn certificate_as_principal(&self) -> bool {
        self.certificate_as_principal
    }

    /// The chain used when `RATE_LIMIT_KEY` is unset: `bearer,ip`.
    pub fn default_keys(proxies: &TrustedProxies) -> KeyChain {
        default_keys(proxies)
    }

    /// The key chain (`RATE_LIMIT_KEY`).
    pub fn keys(&self) -> &KeyChain {
        &self.keys
    }

    /// The policies every request is counted under (`RATE_LIMIT_POLICIES`,
    /// and `RATE_LIMIT_PER_MIN` as the `minute` policy): empty, only
    /// tenant plans limit.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// `RATE_LIMIT_COST_HEADER`: the header a layer before the limiter
    /// sets with the request's cost (every client's is removed first).
    pub fn cost_header(&self) -> Option<&HeaderName> {
        self.cost_header.as_ref()
    }

    /// Whether limits are shared through Redis.
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some()
    }

    /// How the Redis store connects: the outbound CA bundle as its TLS
    /// roots, for `rediss://`.
    #[cfg(feature = "redis")]
    fn redis_options(&self) -> crate::RedisOptions {
        let options = crate::RedisOptions::default();
        match &self.redis_tls_roots {
            Some(pem) => options.tls_roots_pem(pem.clone()),
            None => options,
        }
    }

    /// The layer: connects to Redis when `REDIS_URL` is set (a Redis that
    /// cannot be reached is a start-up error naming `REDIS_URL`), else
    /// keeps buckets in memory.
    pub async fn layer(self) -> Result<RateLimitLayer, EnvError> {
        let limiter: Arc<dyn crate::Limiter> = match &self.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(self.redis_options().connect(url).await.map_err(|e| {
                // The URL may carry a password: never quoted.
                EnvProblem::setting(
                    "REDIS_URL",
                    e.to_string(),
                    "check the address and that Redis is running, or unset REDIS_URL to keep \
                     limits in memory",
                )
            })?),
            _ => Arc::new(MemoryLimiter::new(
                self.max_keys,
                WhenFull::default(),
                SystemClock::new(),
            )),
        };
        let mut layer = RateLimitLayer::new(limiter, self.keys).on_store_error(self.on_store_error);
        if !self.policies.is_empty() {
            layer = layer.policies(self.policies).map_err(|e| {
                EnvProblem::setting(
                    "RATE_LIMIT_POLICIES",
                    e.to_string(),
                    "write name:rate/period[:burst], comma-separated, e.g. second:10/s:20,hour:1000/h",
                )
            })?;
        }
        if let Some(header) = self.cost_header {
            layer = layer.cost_header(header);
        }
        Ok(layer)
    }
}

/// `RATE_LIMIT_PER_MIN` with `RATE_LIMIT_BURST`: the quota for callers
/// without a plan.
/// `RATE_LIMIT_POLICIES`, with `RATE_LIMIT_PER_MIN` (and its burst) as
/// the `minute` policy.
fn policies(env: &Env<'_>, problems: &mut Problems) -> Vec<Policy> {
    let mut policies = env
        .parse("RATE_LIMIT_POLICIES", problems, |text| {
            Policy::parse_list(text).map_err(|e| {
                Invalid::new(
                    e.to_string(),
                    "write name:rate/period[:burst], comma-separated, e.g. \
                     second:10/s:20,hour:1000/h (periods s, m, h, d)",
                )
            })
        })
        .unwrap_or_default();
    if let Some(quota) = per_minute(env, problems) {
        if policies.iter().any(|p| p.name() == PLAN_POLICY) {
            problems.push(EnvProblem::setting(
                "RATE_LIMIT_PER_MIN",
                "set beside a minute policy in RATE_LIMIT_POLICIES: two quotas for one policy",
                "keep one: the minute entry of RATE_LIMIT_POLICIES, or RATE_LIMIT_PER_MIN",
            ));
        } else if let Ok(minute) = Policy::new(PLAN_POLICY, quota) {
            policies.push(minute);
        }
    }
    if policies.len() > crate::MAX_POLICIES {
        problems.push(EnvProblem::setting(
            "RATE_LIMIT_POLICIES",
            format!(
                "more than {} policies with RATE_LIMIT_PER_MIN's",
                crate::MAX_POLICIES
            ),
            "drop one",
        ));
    }
    policies
}

fn per_minute(env: &Env<'_>, problems: &mut Problems) -> Option<Quota> {
    let per_min = env.count("RATE_LIMIT_PER_MIN", problems, 600);
    let burst = env.count("RATE_LIMIT_BURST", problems, 20);
    match (per_min, burst) {
        (Some(rate), burst) => {
            let rate = u32::try_from(rate).unwrap_or(u32::MAX);
            let burst = burst.map_or(rate, |b| u32::try_from(b).unwrap_or(u32::MAX));
            Quota::per_minute(rate, burst)
                .map_err(|e| {
                    problems.push(EnvProblem::invalid(
                        "RATE_LIMIT_PER_MIN",
                        rate.to_string(),
                        e.to_string(),
                        "write a smaller rate or burst",
                    ));
                })
                .ok()
        }
        (None, Some(_)) if !env.is_set("RATE_LIMIT_PER_MIN") => {
            problems.push(EnvProblem::missing_partner(
                "RATE_LIMIT_BURST",
                "RATE_LIMIT_PER_MIN",
                "set the rate too, or unset the burst",
            ));
            None
        }
        _ => None,
    }
}

/// `bearer,ip`: per authenticated bearer key, else per client address.
/// Checks `REDIS_URL`'s form (one server, or a Cluster's nodes,
/// comma-separated) without echoing it, and for `rediss://` reads the
/// outbound CA bundle (`PORTCULLIS_CA_CERTIFICATE`, else `SSL_CERT_FILE`),
/// which Redis's TLS then trusts instead of the platform's roots.
fn redis_tls_roots(env: &Env<'_>, url: &str, problems: &mut Problems) -> Option<Vec<u8>> {
    let nodes = match RedisNodes::parse(url) {
        Ok(nodes) => nodes,
        Err(error) => {
            problems.push(EnvProblem::setting(
                "REDIS_URL",
                error.problem(),
                error.fix(),
            ));
            return None;
        }
    };
    if !nodes.tls() {
        return None;
    }
    let (var, path) = env.outbound_extra_bundle(portcullis_identity::env::DEFAULT_PREFIX)?;
    match std::fs::read(&path) {
        Ok(pem) => Some(pem),
        Err(e) => {
            problems.push(EnvProblem::invalid(
                var,
                path,
                format!("cannot be read ({e}) for Redis's TLS"),
                "point it at the PEM bundle of the CA that signed Redis's certificate, or unset it \
                 to trust the platform's roots",
            ));
            None
        }
    }
}

fn default_keys(proxies: &TrustedProxies) -> KeyChain {
    KeyChain::new([
        crate::KeySource::Bearer,
        crate::KeySource::ClientIp(proxies.clone()),
    ])
}

/// `spiffe,cn,bearer,ip`: the certificate's principal first.
fn certificate_keys(proxies: &TrustedProxies) -> KeyChain {
    KeyChain::new([
        crate::KeySource::SpiffeId,
        crate::KeySource::CommonName,
        crate::KeySource::Bearer,
        crate::KeySource::ClientIp(proxies.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<RateLimitEnv, EnvError> {
        RateLimitEnv::from_env(
            &Env::from_pairs(vars.iter().copied()),
            &TrustedProxies::none(),
        )
    }

    #[test]
    fn defaults_and_quota() {
        let env = read(&[]).unwrap();
        assert!(env.policies().is_empty());
        assert_eq!(env.cost_header(), None);
        assert!(!env.uses_redis());
        assert_eq!(format!("{:?}", env.keys), "KeyChain([bearer, ip])");
        assert!(!env.certificate_as_principal());
        // USE_CERT_AS_PRINCIPAL's chain, unless RATE_LIMIT_KEY names one.
        let env = read(&[("USE_CERT_AS_PRINCIPAL", "yes")]).unwrap();
        assert!(env.certificate_as_principal());
        assert_eq!(
            format!("{:?}", env.keys),
            "KeyChain([spiffe, cn, bearer, ip])"
        );
        assert!(!env.keys().needs_certificate());
        let env = read(&[("RATE_LIMIT_KEY", "ip"), ("USE_CERT_AS_PRINCIPAL", "true")]).unwrap();
        assert_eq!(format!("{:?}", env.keys), "KeyChain([ip])");
        let env = read(&[("RATE_LIMIT_KEY", "cn,Fingerprint")]).unwrap();
        assert!(env.keys().needs_certificate());
        assert!(!env.keys().uses_tenant());
        let env = read(&[("RATE_LIMIT_PER_MIN", "120")]).unwrap();
        assert_eq!(
            env.policies(),
            [Policy::new("minute", Quota::per_minute(120, 120).unwrap()).unwrap()]
        );
        let env = read(&[("RATE_LIMIT_PER_MIN", "120"), ("RATE_LIMIT_BURST", "10")]).unwrap();
        assert_eq!(
            env.policies(),
            [Policy::new("minute", Quota::per_minute(120, 10).unwrap()).unwrap()]
        );
        let env = read(&[
            ("RATE_LIMIT_POLICIES", "second:10/s:20, hour:1000/h"),
            ("RATE_LIMIT_PER_MIN", "300"),
            ("RATE_LIMIT_COST_HEADER", "X-Request-Cost"),
        ])
        .unwrap();
        let names: Vec<&str> = env.policies().iter().map(Policy::name).collect();
        assert_eq!(names, ["second", "hour", "minute"]);
        assert_eq!(
            env.cost_header().map(|h| h.as_str()),
            Some("x-request-cost")
        );
        let env = read(&[
            ("RATE_LIMIT_KEY", "tenant, ip"),
            ("RATE_LIMIT_ON_STORE_ERROR", "OPEN"),
        ])
        .unwrap();
        assert_eq!(env.on_store_error, OnStoreError::FailOpen);
        assert_eq!(format!("{:?}", env.keys), "KeyChain([tenant, ip])");
    }

    #[test]
    fn every_problem_at_once_naming_the_variable() {
        let error = read(&[
            ("RATE_LIMIT_PER_MIN", "lots"),
            ("RATE_LIMIT_KEY", "cn,email"),
            ("RATE_LIMIT_ON_STORE_ERROR", "maybe"),
            ("RATE_LIMIT_MAX_KEYS", "0"),
            ("USE_CERT_AS_PRINCIPAL", "perhaps"),
        ])
        .unwrap_err();
        assert_eq!(
            error.vars().collect::<Vec<_>>(),
            [
                "RATE_LIMIT_PER_MIN",
                "USE_CERT_AS_PRINCIPAL",
                "RATE_LIMIT_KEY",
                "RATE_LIMIT_MAX_KEYS",
                "RATE_LIMIT_ON_STORE_ERROR"
            ]
        );
        let problems: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
        assert!(problems[0].starts_with("RATE_LIMIT_PER_MIN=\"lots\": not a whole number"));
        assert!(problems[2].starts_with("RATE_LIMIT_KEY=\"cn,email\": \"email\" is not a key"));
        assert!(problems[4].starts_with(
            "RATE_LIMIT_ON_STORE_ERROR=\"maybe\": not a store-failure policy; write open"
        ));
        let error = read(&[
            ("RATE_LIMIT_POLICIES", "second:10/fortnight"),
            ("RATE_LIMIT_COST_HEADER", "x cost"),
        ])
        .unwrap_err();
        let problems: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "RATE_LIMIT_POLICIES=\"second:10/fortnight\": \"second:10/fortnight\": the period is not s, m, h or d"
            ),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("RATE_LIMIT_COST_HEADER=\"x cost\": not a header name"));
        let error = read(&[
            ("RATE_LIMIT_POLICIES", "minute:10/m"),
            ("RATE_LIMIT_PER_MIN", "60"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("two quotas for one policy"),
            "{error}"
        );
        let error = read(&[("RATE_LIMIT_BURST", "5")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "RATE_LIMIT_BURST: set without RATE_LIMIT_PER_MIN; set the rate too, or unset the burst"
        );
    }

    #[test]
    fn the_redis_url_is_never_printed() {
        if cfg!(feature = "redis") {
            let env = read(&[("REDIS_URL", "redis://:hunter2@127.0.0.1:1/")]).unwrap();
            assert!(env.uses_redis());
            assert!(!format!("{env:?}").contains("hunter2"));
        } else {
            let error = read(&[("REDIS_URL", "redis://:hunter2@127.0.0.1:1/")]).unwrap_err();
            assert!(error.to_string().contains("`redis` feature"));
            assert!(!error.to_string().contains("hunter2"));
        }
    }
}
