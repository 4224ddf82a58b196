//! Buckets in Redis, for services on many instances: one `EVALSHA` per
//! check, Redis's own clock, a local cache of refusals.

mod denied;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script, TlsCertificates, Value};

use crate::Quota;
use crate::gcra::Outcome;
use crate::limiter::{Checking, CheckingAll, Limiter, StoreError, StoreErrorKind};
use crate::memory::BucketKey;
use crate::redis_url::RedisNodes;
use crate::{Clock, SystemClock};

use denied::DeniedCache;

/// The GCRA script: several buckets, all or nothing, integer microseconds.
/// Public so that benches and operators can load and inspect the exact
/// script the store runs.
pub const GCRA_SCRIPT: &str = include_str!("gcra.lua");

/// Lua numbers are doubles: keep every microsecond value below 2^50 (35
/// years), far under 2^53, so the script's arithmetic stays exact.
const MAX_MICROS: u64 = 1 << 50;

/// How a [`RedisLimiter`] connects and answers.
#[derive(Clone)]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    denied_cache: usize,
    clock: Option<Arc<dyn Clock>>,
    tls_roots_pem: Option<Vec<u8>>,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("denied_cache", &self.denied_cache)
            .field("redis_time", &self.clock.is_none())
            .field("tls_roots", &self.tls_roots_pem.is_some())
            .finish()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "portcullis:rl:".to_owned(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            denied_cache: 100_000,
            clock: None,
            tls_roots_pem: None,
        }
    }
}

impl RedisOptions {
    /// What every Redis key starts with (default `portcullis:rl:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a check may wait for Redis before it is a
    /// [`StoreError`] (default 50 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 1 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many refused buckets to remember locally (default 100,000;
    /// `0` turns the cache off).
    #[must_use]
    pub fn denied_cache(mut self, buckets: usize) -> Self {
        self.denied_cache = buckets;
        self
    }

    /// Take "now" from `clock` instead of Redis `TIME`. For tests, and for
    /// fleets whose clocks are known to agree; by default every instance
    /// uses Redis's clock, so theirs never matter.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// For `rediss://`: trust the roots in this PEM bundle (a managed
    /// Redis's private CA) instead of the platform's.
    #[must_use]
    pub fn tls_roots_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots_pem = Some(pem.into());
        self
    }

    /// Connects to `url`: one server (`redis://host:port/db`,
    /// `rediss://…` for TLS, `redis+unix:///path`), or a Redis Cluster
    /// named by several nodes, comma-separated
    /// (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`; the rest of the
    /// cluster is discovered from them). The URL is never echoed in
    /// errors: it may carry a password.
    pub async fn connect(self, url: &str) -> Result<RedisLimiter, StoreError> {
        let nodes = RedisNodes::parse(url).map_err(|error| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("{}; {}", error.problem(), error.fix()),
            )
        })?;
        let connection = if nodes.is_cluster() {
            self.connect_cluster(&nodes).await?
        } else {
            self.connect_single(nodes.nodes()[0], nodes.tls()).await?
        };
        let script = Script::new(GCRA_SCRIPT);
        // Load it now: a Redis that refuses scripts is a start-up error,
        // not a refusal of every request.
        let _: String = script
            .prepare_invoke()
            .load_async(&mut connection.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(RedisLimiter {
            connection,
            shared: Arc::new(Shared {
                script,
                prefix: self.prefix,
                timeout: self.timeout,
                denied: DeniedCache::new(self.denied_cache),
                redis_time: self.clock.is_none(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            }),
        })
    }
}

impl RedisOptions {
    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: None,
            root_cert: self.tls_roots_pem.clone(),
        }
    }

    async fn connect_single(&self, url: &str, tls: bool) -> Result<Connection, StoreError> {
        let client = match &self.tls_roots_pem {
            Some(_) if tls => redis::Client::build_with_tls(url, self.certificates()),
            _ => redis::Client::open(url),
        }
        .map_err(bad_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // The store's own timeout bounds the whole check, reconnection
            // included: one timer per check, not two.
            .set_response_timeout(None)
            .set_max_delay(Duration::from_millis(500))
            // A few quick tries: a Redis that is down at start is a start-up
            // error now, and every failed check triggers a reconnection later.
            .set_number_of_retries(2);
        ConnectionManager::new_with_config(client, config)
            .await
            .map(Connection::Single)
            .map_err(|e| unavailable(&e))
    }

    async fn connect_cluster(&self, nodes: &RedisNodes<'_>) -> Result<Connection, StoreError> {
        let mut builder = ClusterClientBuilder::new(nodes.nodes().to_vec())
            .connection_timeout(self.connect_timeout)
            // Bounded by the store's own timeout per check.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200);
        if nodes.tls() && self.tls_roots_pem.is_some() {
            builder = builder.certs(self.certificates());
        }
        let client = builder.build().map_err(bad_url)?;
        client
            .get_async_connection()
            .await
            .map(Connection::Cluster)
            .map_err(|e| unavailable(&e))
    }
}

/// A URL redis-rs refuses, never quoted (it may carry a password).
fn bad_url(e: RedisError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!(
            "not a usable Redis URL ({:?}); expected redis://host:port/db, rediss://… for TLS, \
             or several redis:// nodes, comma-separated, for a Cluster",
            e.kind()
        ),
    )
}

/// One server through a reconnecting manager, or a Cluster (which routes
/// each script by its keys' slot, and follows the cluster's changes).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// GCRA buckets in Redis, shared by every instance of a service.
///
/// - One `EVALSHA` per check of [`GCRA_SCRIPT`], which reads Redis `TIME`
///   (instance clocks don't matter) and works in integer microseconds;
///   `NOSCRIPT` (after a Redis restart or `SCRIPT FLUSH`) reloads it.
/// - One Redis key per bucket, `<prefix>{<key hex>}:<period µs>`, written
///   with `SET … PX` so it expires once full again. The policies of one
///   caller share the hash tag, so an all-or-nothing
///   [`check_all`](Self::check_all) over them touches one Redis Cluster
///   slot. (A `check_all` across different keys needs them in one slot.)
/// - A bucket Redis has refused, or just emptied, is refused locally until
///   it could pass again: a caller hammering a closed bucket costs no
///   round trip.
/// - Redis not answering within the timeout is a [`StoreError`];
///   [`RateLimitLayer::on_store_error`](crate::RateLimitLayer::on_store_error)
///   chooses to fail open or closed.
///
/// Clones share the connection and the cache.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: Connection,
    shared: Arc<Shared>,
}

struct Shared {
    script: Script,
    prefix: String,
    timeout: Duration,
    denied: DeniedCache,
    /// The local clock: for the cache always, for the script only when
    /// `redis_time` is off.
    clock: Arc<dyn Clock>,
    redis_time: bool,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("redis_time", &self.shared.redis_time)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else {
        StoreErrorKind::Unavailable
    };
    // Redis errors name the server and the command, never our arguments.
    StoreError::new(kind, e.to_string())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .min(MAX_MICROS)
}

/// One check as the script takes it.
struct Prepared {
    key: BucketKey,
    quota: Quota,
    interval_us: u64,
    capacity_us: u64,
    cost: u32,
}

impl Prepared {
    fn new(key: BucketKey, quota: Quota, cost: u32) -> Self {
        let interval_us = micros(Duration::from_nanos(quota.emission_interval_ns())).max(1);
        Prepared {
            key,
            quota,
            interval_us,
            capacity_us: interval_us
                .saturating_mul(u64::from(quota.burst()))
                .min(MAX_MICROS),
            cost,
        }
    }
}

impl RedisLimiter {
    /// Connects to `url` with the default [`RedisOptions`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        RedisOptions::default().connect(url).await
    }

    /// The Redis key of `key` under `quota`. The hash tag is the first
    /// half of the bucket, which a key's policies share
    /// ([`Policy`](crate::Policy)): every bucket of one request lives in
    /// one Redis Cluster slot, so one script checks them all.
    pub fn redis_key(&self, key: &BucketKey, quota: &Quota) -> String {
        let mut name = String::with_capacity(self.shared.prefix.len() + 58);
        name.push_str(&self.shared.prefix);
        name.push('{');
        name.push_str(&portcullis_identity::hex::encode(&key.0[..8]));
        name.push('}');
        name.push_str(&portcullis_identity::hex::encode(&key.0[8..]));
        name.push(':');
        name.push_str(&micros(quota.period()).to_string());
        name
    }

    /// Checks several buckets together: all are charged, or none, in one
    /// round trip. Each check is evaluated as if the earlier ones had been
    /// charged; the request may go on only if every outcome allows it.
    ///
    /// When one check is refused locally (a cost over its burst, or a
    /// cached refusal) there is no round trip, and the other checks are
    /// reported as `Denied` with zero waits: not evaluated, not charged.
    pub async fn check_all(
        &self,
        checks: &[(BucketKey, Quota, u32)],
    ) -> Result<Vec<Outcome>, StoreError> {
        match self.start(checks) {
            Ok(outcomes) => Ok(outcomes),
            Err(prepared) => self.clone().round_trip(prepared).await,
        }
    }

    /// Answers from what is known locally (a cost over the burst, a cached
    /// refusal), or says what to ask Redis.
    fn start(&self, checks: &[(BucketKey, Quota, u32)]) -> Result<Vec<Outcome>, Vec<Prepared>> {
        let now = self.shared.clock.now_ns();
        let refused = checks
            .iter()
            .enumerate()
            .find_map(|(index, (key, quota, cost))| {
                let refusal = if *cost > quota.burst() {
                    Some(Outcome::Never)
                } else {
                    self.shared
                        .denied
                        .refusal(&key.under(quota), quota, now, *cost)
                };
                refusal.map(|refusal| (index, refusal))
            });
        if let Some((index, refusal)) = refused {
            // All or nothing: one refusal refuses the request; the others
            // are reported as not charged.
            return Ok(checks
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i == index {
                        refusal
                    } else {
                        Outcome::Denied {
                            retry_after: Duration::ZERO,
                            reset: Duration::ZERO,
                        }
                    }
                })
                .collect());
        }
        Err(checks
            .iter()
            .map(|(key, quota, cost)| Prepared::new(*key, *quota, *cost))
            .collect())
    }

    async fn round_trip(self, prepared: Vec<Prepared>) -> Result<Vec<Outcome>, StoreError> {
        let shared = &self.shared;
        let sent_at = shared.clock.now_ns();
        let now_arg = if shared.redis_time { 0 } else { sent_at / 1000 };
        // EVALSHA sha numkeys KEYS... ARGV...: the bucket names, then now,
        // then three numbers per bucket.
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(shared.script.get_hash()).arg(prepared.len());
        for check in &prepared {
            evalsha.arg(self.redis_key(&check.key, &check.quota));
        }
        evalsha.arg(now_arg);
        for check in &prepared {
            evalsha
                .arg(check.interval_us)
                .arg(check.capacity_us)
                .arg(check.cost);
        }
        let timer = portcullis_identity::observe::CallTimer::start();
        let reply = tokio::time::timeout(shared.timeout, self.evalsha(&evalsha)).await;
        timer.redis(matches!(reply, Ok(Ok(_))));
        let reply = match reply {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) if e.kind() == ErrorKind::UnexpectedReturnType => {
                return Err(StoreError::new(StoreErrorKind::Protocol, e.to_string()));
            }
            Ok(Err(e)) => return Err(unavailable(&e)),
            Err(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!("no answer from Redis within {:?}", shared.timeout),
                ));
            }
        };
        if reply.len() != prepared.len() * 4 {
            return Err(StoreError::new(
                StoreErrorKind::Protocol,
                format!(
                    "the script answered {} values for {} checks",
                    reply.len(),
                    prepared.len()
                ),
            ));
        }
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let outcomes: Vec<Outcome> = reply
            .chunks_exact(4)
            .map(|values| match values {
                [1, remaining, reset, _] => Outcome::Allowed {
                    remaining: u32::try_from(*remaining).unwrap_or(u32::MAX),
                    reset: us(*reset),
                },
                [_, _, reset, retry] => Outcome::Denied {
                    retry_after: us(*retry),
                    reset: us(*reset),
                },
                _ => Outcome::Never,
            })
            .collect();
        // Only what Redis holds may be learned: when a check refused, the
        // others' new TATs were not written, and a refusal evaluated after
        // an earlier check of the same bucket saw an unwritten TAT.
        let all_allowed = outcomes.iter().all(Outcome::is_allowed);
        for (index, (check, outcome)) in prepared.iter().zip(&outcomes).enumerate() {
            let bucket = check.key.under(&check.quota);
            let (reset, empty) = match outcome {
                Outcome::Allowed { remaining, reset } if all_allowed => (*reset, *remaining == 0),
                Outcome::Denied { reset, .. }
                    if !prepared[..index]
                        .iter()
                        .any(|earlier| earlier.key.under(&earlier.quota) == bucket) =>
                {
                    (*reset, true)
                }
                _ => continue,
            };
            // Hold buckets a request of cost 1 could not pass now; keep
            // every held one up to date.
            let bound = sent_at.saturating_add(u64::try_from(reset.as_nanos()).unwrap_or(0));
            shared.denied.learn(bucket, bound, sent_at, empty);
        }
        Ok(outcomes)
    }
}

impl RedisLimiter {
    /// Runs the script by its hash; a Redis that has lost it (restarted,
    /// `SCRIPT FLUSH`, failed over) answers `NOSCRIPT`: load it and run
    /// it again.
    async fn evalsha(&self, evalsha: &redis::Cmd) -> Result<Vec<i64>, RedisError> {
        let mut connection = self.connection.clone();
        match evalsha.query_async(&mut connection).await {
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let _: String = self
                    .shared
                    .script
                    .prepare_invoke()
                    .load_async(&mut connection)
                    .await?;
                evalsha.query_async(&mut connection).await
            }
            answer => answer,
        }
    }
}

impl Limiter for RedisLimiter {
    fn check_all(&self, checks: Vec<(BucketKey, Quota, u32)>) -> CheckingAll {
        match self.start(&checks) {
            Ok(outcomes) => CheckingAll::ready(Ok(outcomes)),
            Err(prepared) => CheckingAll::later(self.clone().round_trip(prepared)),
        }
    }

    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Checking {
        let one = [(key, *quota, cost)];
        match self.start(&one) {
            Ok(outcomes) => Checking::ready(Ok(outcomes[0])),
            Err(prepared) => {
                let store = self.clone();
                Checking::later(async move {
                    let outcomes = store.round_trip(prepared).await?;
                    outcomes.into_iter().next().ok_or_else(|| {
                        StoreError::new(StoreErrorKind::Protocol, "the script answered nothing")
                    })
                })
            }
        }
    }
}
