//! The rate limiter from the environment: `RATE_LIMIT_PER_MIN`,
//! `RATE_LIMIT_BURST`, `RATE_LIMIT_KEY`, `RATE_LIMIT_MAX_KEYS`, `REDIS_URL`
//! and `RATE_LIMIT_ON_STORE_ERROR`.

use std::fmt;
use std::sync::Arc;

use portcullis_identity::TrustedProxies;

use crate::{KeyChain, MemoryStore, OnStoreError, Quota, RateLimitLayer, SystemClock, WhenFull};

/// Bad rate-limit settings: every problem found, each naming its variable
/// and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitEnvError(Vec<String>);

impl RateLimitEnvError {
    /// Each problem, one line each.
    pub fn problems(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for RateLimitEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for RateLimitEnvError {}

/// The rate limiter the environment describes, read and checked but not
/// yet connected (see [`RateLimitEnv::layer`]).
#[derive(Clone)]
pub struct RateLimitEnv {
    keys: KeyChain,
    /// Whether `RATE_LIMIT_KEY` named the chain (it then wins over any
    /// default a caller supplies).
    keys_set: bool,
    default_quota: Option<Quota>,
    max_keys: usize,
    redis_url: Option<String>,
    on_store_error: OnStoreError,
}

impl fmt::Debug for RateLimitEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Redis URL may carry a password: only whether it is set.
        f.debug_struct("RateLimitEnv")
            .field("keys", &self.keys)
            .field("default_quota", &self.default_quota)
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
    /// Reads the process environment; `ip` keys resolve through `proxies`
    /// (the same `TRUSTED_PROXY_CIDRS` the other layers use).
    pub fn from_env(proxies: &TrustedProxies) -> Result<Self, RateLimitEnvError> {
        Self::from_env_with(|var| std::env::var(var).ok(), proxies)
    }

    /// Reads the variables through `lookup`.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `RATE_LIMIT_PER_MIN` | the default quota: requests a minute | unset: only tenant plans limit |
    /// | `RATE_LIMIT_BURST` | its burst | `RATE_LIMIT_PER_MIN` |
    /// | `RATE_LIMIT_KEY` | the key chain | `bearer,ip` (see [`default_keys`](Self::default_keys)) |
    /// | `RATE_LIMIT_MAX_KEYS` | buckets held in memory | 1,000,000 |
    /// | `REDIS_URL` | share limits through Redis (feature `redis`) | unset: in memory |
    /// | `RATE_LIMIT_ON_STORE_ERROR` | `open` or `closed` when Redis fails | `closed` |
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
        proxies: &TrustedProxies,
    ) -> Result<Self, RateLimitEnvError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let number = |var: &str, problems: &mut Vec<String>| -> Option<u64> {
            let text = get(var)?;
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(format!(
                        "{var}={text:?}: not a whole number above 0; write one such as 600"
                    ));
                    None
                }
            }
        };
        let per_min = number("RATE_LIMIT_PER_MIN", &mut problems);
        let burst = number("RATE_LIMIT_BURST", &mut problems);
        let default_quota = match (per_min, burst) {
            (Some(rate), burst) => {
                let rate = u32::try_from(rate).unwrap_or(u32::MAX);
                let burst = burst.map_or(rate, |b| u32::try_from(b).unwrap_or(u32::MAX));
                match Quota::per_minute(rate, burst) {
                    Ok(quota) => Some(quota),
                    Err(e) => {
                        problems.push(format!("RATE_LIMIT_PER_MIN/RATE_LIMIT_BURST: {e}"));
                        None
                    }
                }
            }
            (None, Some(_)) if get("RATE_LIMIT_PER_MIN").is_none() => {
                problems.push(
                    "RATE_LIMIT_BURST is set but RATE_LIMIT_PER_MIN is not: set the rate too, \
                     or unset the burst"
                        .to_owned(),
                );
                None
            }
            _ => None,
        };
        let keys_set = get("RATE_LIMIT_KEY").is_some();
        let keys = match get("RATE_LIMIT_KEY") {
            Some(text) => KeyChain::parse(&text, proxies).unwrap_or_else(|e| {
                problems.push(e);
                default_keys(proxies)
            }),
            None => default_keys(proxies),
        };
        let max_keys = number("RATE_LIMIT_MAX_KEYS", &mut problems).map_or(DEFAULT_MAX_KEYS, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        let on_store_error = match get("RATE_LIMIT_ON_STORE_ERROR") {
            None => OnStoreError::FailClosed,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "closed" => OnStoreError::FailClosed,
                "open" => OnStoreError::FailOpen,
                _ => {
                    problems.push(format!(
                        "RATE_LIMIT_ON_STORE_ERROR={text:?}: write open (let requests through \
                         uncounted) or closed (refuse them with 503)"
                    ));
                    OnStoreError::FailClosed
                }
            },
        };
        let redis_url = get("REDIS_URL");
        if redis_url.is_some() && cfg!(not(feature = "redis")) {
            problems.push(
                "REDIS_URL is set but portcullis was built without the `redis` feature: \
                 enable it, or unset REDIS_URL to keep limits in memory"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(RateLimitEnvError(problems));
        }
        Ok(RateLimitEnv {
            keys,
            keys_set,
            default_quota,
            max_keys,
            redis_url,
            on_store_error,
        })
    }

    /// Buckets by the client certificate's principal (SPIFFE ID, else CN)
    /// before the bearer key, `spiffe,cn,bearer,ip`, unless `RATE_LIMIT_KEY`
    /// named a chain (which wins): what `USE_CERT_AS_PRINCIPAL=true` asks
    /// for. Authentication is not changed by it.
    #[must_use]
    pub fn certificate_as_principal(mut self, proxies: &TrustedProxies) -> Self {
        if !self.keys_set {
            self.keys = certificate_keys(proxies);
        }
        self
    }

    /// The chain used when `RATE_LIMIT_KEY` is unset: `bearer,ip`.
    pub fn default_keys(proxies: &TrustedProxies) -> KeyChain {
        default_keys(proxies)
    }

    /// The key chain (`RATE_LIMIT_KEY`).
    pub fn keys(&self) -> &KeyChain {
        &self.keys
    }

    /// The default quota, if any.
    pub fn default_quota(&self) -> Option<Quota> {
        self.default_quota
    }

    /// Whether limits are shared through Redis.
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some()
    }

    /// The layer: connects to Redis when `REDIS_URL` is set (a Redis that
    /// cannot be reached is a start-up error naming `REDIS_URL`), else
    /// keeps buckets in memory.
    pub async fn layer(self) -> Result<RateLimitLayer, RateLimitEnvError> {
        let limiter: Arc<dyn crate::Limiter> = match &self.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(crate::RedisStore::connect(url).await.map_err(|e| {
                RateLimitEnvError(vec![format!(
                    "REDIS_URL: {e}; check the address and that Redis is running, or unset \
                     REDIS_URL to keep limits in memory"
                )])
            })?),
            _ => Arc::new(MemoryStore::new(
                self.max_keys,
                WhenFull::default(),
                SystemClock::new(),
            )),
        };
        let mut layer = RateLimitLayer::new(limiter, self.keys).on_store_error(self.on_store_error);
        if let Some(quota) = self.default_quota {
            layer = layer.default_quota(quota);
        }
        Ok(layer)
    }
}

/// `bearer,ip`: per authenticated bearer key, else per client address.
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

    fn read(vars: &[(&str, &str)]) -> Result<RateLimitEnv, RateLimitEnvError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RateLimitEnv::from_env_with(
            |var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()),
            &TrustedProxies::none(),
        )
    }

    #[test]
    fn defaults_and_quota() {
        let env = read(&[]).unwrap();
        assert_eq!(env.default_quota(), None);
        assert!(!env.uses_redis());
        assert_eq!(format!("{:?}", env.keys), "KeyChain([bearer, ip])");
        // USE_CERT_AS_PRINCIPAL's chain, unless RATE_LIMIT_KEY names one.
        let proxies = TrustedProxies::none();
        let env = env.certificate_as_principal(&proxies);
        assert_eq!(
            format!("{:?}", env.keys),
            "KeyChain([spiffe, cn, bearer, ip])"
        );
        let env = read(&[("RATE_LIMIT_KEY", "ip")])
            .unwrap()
            .certificate_as_principal(&proxies);
        assert_eq!(format!("{:?}", env.keys), "KeyChain([ip])");
        let env = read(&[("RATE_LIMIT_PER_MIN", "120")]).unwrap();
        assert_eq!(env.default_quota(), Quota::per_minute(120, 120).ok());
        let env = read(&[("RATE_LIMIT_PER_MIN", "120"), ("RATE_LIMIT_BURST", "10")]).unwrap();
        assert_eq!(env.default_quota(), Quota::per_minute(120, 10).ok());
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
        ])
        .unwrap_err();
        let problems = error.problems();
        assert_eq!(problems.len(), 4, "{error}");
        assert!(problems[0].starts_with("RATE_LIMIT_PER_MIN=\"lots\": not a whole number"));
        assert!(problems[1].starts_with("RATE_LIMIT_KEY=\"cn,email\": \"email\" is not a key"));
        assert!(problems[2].starts_with("RATE_LIMIT_MAX_KEYS=\"0\""));
        assert!(problems[3].starts_with("RATE_LIMIT_ON_STORE_ERROR=\"maybe\": write open"));
        let error = read(&[("RATE_LIMIT_BURST", "5")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "RATE_LIMIT_BURST is set but RATE_LIMIT_PER_MIN is not: set the rate too, or unset the burst"
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
