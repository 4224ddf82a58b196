//! A cache of remote answers: single-flight fetches (driven by the first
//! caller, moved to a task of their own if it gives up), at most so many
//! in flight, freshness per answer, stale answers only while
//! the source is failing, back-off after failures, and bounded size with
//! least-recently-used eviction in O(1).
//!
//! Known keys (a positive answer) and unknown ones (a negative answer, or
//! only failures so far) are held in two separate LRUs of their own
//! capacity: a spray of made-up keys evicts other made-up keys, never the
//! answer a real caller depends on while the source is down. Fetches in
//! flight are held apart too, bounded by
//! [`max_in_flight`](CachePolicy::max_in_flight): a lookup that cannot
//! start is answered "unavailable" at once, so neither the source nor the
//! maps can be flooded.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use portcullis_identity::observe;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long answers stay, how many, and how failures are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// A positive answer is fresh this long (default 60 s).
    pub positive_ttl: Duration,
    /// A negative answer (unknown key) is fresh this long (default 15 s).
    pub negative_ttl: Duration,
    /// Past freshness, an answer may still be served this long, but only
    /// while the source is failing (default 300 s).
    pub stale_grace: Duration,
    /// The first wait after a failure before the source is asked again
    /// (default 1 s); it doubles with each further failure.
    pub backoff: Duration,
    /// The longest wait between attempts (default 30 s).
    pub max_backoff: Duration,
    /// Most known keys held (default 10,000); the least recently used goes
    /// first. Unknown keys never take their place. A key takes about 150
    /// bytes (144 at a million keys; its tenant shared with the tenant's
    /// other keys), and the cache grows with its keys: the capacity is a
    /// bound, not an allocation.
    pub capacity: usize,
    /// Most unknown keys held (negative answers, and keys that only failed
    /// so far; default 10,000), apart from the known ones.
    pub negative_capacity: usize,
    /// Most fetches in flight at once (default 32); a lookup beyond them is
    /// answered unavailable at once, with a retry after 1 s.
    pub max_in_flight: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(15),
            stale_grace: Duration::from_secs(300),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            capacity: 10_000,
            negative_capacity: 10_000,
            max_in_flight: 32,
        }
    }
}

/// What a fetch produced: a definitive answer (and whether it is positive),
/// or a failure that says nothing about the key.
pub(crate) enum Fetched<V> {
    Answer { value: V, positive: bool },
    Failed(String),
}

/// The outcome handed to every waiter of one fetch.
#[derive(Debug, Clone)]
pub(crate) enum Outcome<V> {
    /// Fresh, or stale within grace while the source fails.
    Value(V),
    /// Nothing usable; try again after this long.
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

/// What the cache holds per key. Kept small (it is paid for every key):
/// the failure state, rare, lives behind a pointer, and an answer's
/// stale-grace deadline is worked out from its freshness, not stored.
struct Entry<V> {
    /// The last definitive answer.
    answer: Option<Answer<V>>,
    /// Failures since that answer, if any.
    failing: Option<Box<Failing>>,
}

struct Answer<V> {
    value: V,
    /// Fresh until then; usable while the source fails for the policy's
    /// `stale_grace` after.
    fresh_until: Instant,
    positive: bool,
}

/// Consecutive failures to fetch a key, and when to ask again.
struct Failing {
    failures: u32,
    retry_at: Instant,
    last_failure: String,
}

impl<V> Entry<V> {
    fn known(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| a.positive)
    }
}

type Waiter<V> = watch::Receiver<Option<Outcome<V>>>;

/// Both LRUs grow as keys come (`LruCache::new` would allocate its whole
/// capacity at once, for keys that may never come) and are held to their
/// capacity here.
struct Maps<K: Hash + Eq, V> {
    /// Keys whose last definitive answer was positive.
    known: LruCache<K, Entry<V>>,
    known_capacity: usize,
    /// Keys answered negatively, or that only failed so far.
    unknown: LruCache<K, Entry<V>>,
    unknown_capacity: usize,
    /// One receiver per fetch in flight, at most `max_in_flight`.
    in_flight: HashMap<K, Waiter<V>>,
}

impl<K: Hash + Eq, V> Maps<K, V> {
    /// The entry for `key`, marked as just used.
    fn get_mut(&mut self, key: &K) -> Option<&mut Entry<V>> {
        // One lookup on the hot path (a known key).
        match self.known.get_mut(key) {
            Some(entry) => Some(entry),
            None => self.unknown.get_mut(key),
        }
    }

    fn take(&mut self, key: &K) -> Option<Entry<V>> {
        self.known.pop(key).or_else(|| self.unknown.pop(key))
    }

    /// Files `entry` by what it knows; the least recently used of that
    /// kind goes when full.
    fn put(&mut self, key: K, entry: Entry<V>) {
        let (lru, capacity) = if entry.known() {
            (&mut self.known, self.known_capacity)
        } else {
            (&mut self.unknown, self.unknown_capacity)
        };
        if lru.len() >= capacity.max(1) {
            lru.pop_lru();
        }
        lru.push(key, entry);
    }
}

/// The cache. Cloning shares it.
pub(crate) struct Cache<K: Hash + Eq, V> {
    maps: Arc<Mutex<Maps<K, V>>>,
    policy: CachePolicy,
}

impl<K: Hash + Eq, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            maps: self.maps.clone(),
            policy: self.policy,
        }
    }
}

enum Step<V> {
    Done(Outcome<V>),
    Wait(Waiter<V>),
    Lead(BoxedFetch<V>, watch::Sender<Option<Outcome<V>>>),
}

type BoxedFetch<V> = Pin<Box<dyn Future<Output = Fetched<V>> + Send>>;

/// The caller that started a fetch drives it itself (no task hop on the
/// common path); if that caller gives up, the fetch goes on in a task of
/// its own, so a cancelled request never cancels the lookup the others
/// wait for.
struct Lead<K: Hash + Eq + Clone + Send + Sync + 'static, V: Clone + Send + Sync + 'static> {
    fetching: Option<BoxedFetch<V>>,
    tx: watch::Sender<Option<Outcome<V>>>,
    cache: Cache<K, V>,
    key: K,
}

impl<K, V> Lead<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn run(mut self) -> Outcome<V> {
        let Some(fetching) = self.fetching.as_mut() else {
            return unavailable_now("no answer");
        };
        let fetched = fetching.await;
        self.fetching = None;
        self.cache.finish(self.key.clone(), fetched, &self.tx)
    }
}

impl<K, V> Drop for Lead<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        let Some(fetching) = self.fetching.take() else {
            return;
        };
        let (cache, key) = (self.cache.clone(), self.key.clone());
        let tx = self.tx.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    cache.finish(key, fetching.await, &tx);
                });
            }
            // No runtime to finish it on (it is shutting down): release
            // the key, and the waiters, rather than leave it in flight.
            Err(_) => {
                cache.finish(key, Fetched::Failed("the lookup was abandoned".into()), &tx);
            }
        }
    }
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(policy: CachePolicy) -> Self {
        Cache {
            maps: Arc::new(Mutex::new(Maps {
                known: LruCache::unbounded(),
                known_capacity: policy.capacity,
                unknown: LruCache::unbounded(),
                unknown_capacity: policy.negative_capacity,
                in_flight: HashMap::new(),
            })),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps<K, V>> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer for `key`: from the cache when fresh, else from one fetch
    /// shared by every caller asking meanwhile. The first caller drives the
    /// fetch; if it gives up, the fetch finishes in a task of its own, so a
    /// cancelled caller never cancels it for the others.
    pub(crate) async fn get<F, Fut>(&self, key: &K, fetch: F) -> Outcome<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Fetched<V>> + Send + 'static,
    {
        let step = {
            let mut maps = self.lock();
            let now = Instant::now();
            let in_flight = maps.in_flight.get(key).cloned();
            match maps
                .get_mut(key)
                .and_then(|entry| self.ready(entry, now, in_flight.is_some()))
            {
                Some(outcome) => Step::Done(outcome),
                None => match in_flight {
                    Some(rx) => {
                        observe::tenant_cache("miss");
                        Step::Wait(rx)
                    }
                    None if maps.in_flight.len() >= self.policy.max_in_flight.max(1) => {
                        // Full: say so at once rather than queue behind a
                        // slow source (and keep the map bounded).
                        observe::tenant_cache("busy");
                        Step::Done(unavailable_now(
                            "too many lookups in flight to the control plane",
                        ))
                    }
                    None => {
                        observe::tenant_cache("miss");
                        let (tx, rx) = watch::channel(None);
                        maps.in_flight.insert(key.clone(), rx);
                        Step::Lead(Box::pin(fetch()), tx)
                    }
                },
            }
        };
        match step {
            Step::Done(outcome) => outcome,
            Step::Lead(fetching, tx) => {
                Lead {
                    fetching: Some(fetching),
                    tx,
                    cache: self.clone(),
                    key: key.clone(),
                }
                .run()
                .await
            }
            Step::Wait(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(outcome) => outcome
                    .clone()
                    .unwrap_or_else(|| unavailable_now("no answer")),
                // The fetching task ended without a word (the runtime is
                // shutting down).
                Err(_) => unavailable_now("the lookup was abandoned"),
            },
        }
    }

    /// A fresh answer, if there is one, without waiting or fetching.
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        let mut maps = self.lock();
        let answer = maps.get_mut(key)?.answer.as_ref()?;
        if Instant::now() < answer.fresh_until {
            observe::tenant_cache("hit");
            Some(answer.value.clone())
        } else {
            None
        }
    }

    /// An answer without fetching, if there is one to give now.
    fn ready(&self, entry: &Entry<V>, now: Instant, fetching: bool) -> Option<Outcome<V>> {
        if let Some(answer) = &entry.answer
            && now < answer.fresh_until
        {
            observe::tenant_cache("hit");
            return Some(Outcome::Value(answer.value.clone()));
        }
        match entry.failing.as_deref() {
            // Backing off: the source failed recently; do not ask again yet.
            Some(failing) if now < failing.retry_at && !fetching => Some(stale_or_unavailable(
                entry,
                self.policy.stale_grace,
                now,
                failing.retry_at - now,
            )),
            _ => None,
        }
    }

    /// Records a fetch's result and hands it to every waiter.
    fn finish(
        &self,
        key: K,
        fetched: Fetched<V>,
        waiters: &watch::Sender<Option<Outcome<V>>>,
    ) -> Outcome<V> {
        let outcome = self.settle(key, fetched);
        let _ = waiters.send(Some(outcome.clone()));
        outcome
    }

    /// Records a fetch's result and says what its waiters get.
    fn settle(&self, key: K, fetched: Fetched<V>) -> Outcome<V> {
        let mut maps = self.lock();
        let now = Instant::now();
        maps.in_flight.remove(&key);
        let mut entry = maps.take(&key).unwrap_or(Entry {
            answer: None,
            failing: None,
        });
        let outcome = match fetched {
            Fetched::Answer { value, positive } => {
                // A definitive answer always replaces what was there.
                let ttl = if positive {
                    self.policy.positive_ttl
                } else {
                    self.policy.negative_ttl
                };
                entry = Entry {
                    answer: Some(Answer {
                        value: value.clone(),
                        fresh_until: now + ttl,
                        positive,
                    }),
                    failing: None,
                };
                Outcome::Value(value)
            }
            Fetched::Failed(reason) => {
                let failures = entry
                    .failing
                    .as_ref()
                    .map_or(0, |failing| failing.failures)
                    .saturating_add(1);
                let wait = self
                    .policy
                    .backoff
                    .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                    .min(self.policy.max_backoff);
                entry.failing = Some(Box::new(Failing {
                    failures,
                    retry_at: now + wait,
                    last_failure: reason,
                }));
                stale_or_unavailable(&entry, self.policy.stale_grace, now, wait)
            }
        };
        maps.put(key, entry);
        outcome
    }

    /// The keys held, known and unknown (for the entries gauge).
    pub(crate) fn entries(&self) -> usize {
        let maps = self.lock();
        maps.known.len() + maps.unknown.len()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize, usize) {
        let maps = self.lock();
        (maps.known.len(), maps.unknown.len(), maps.in_flight.len())
    }
}

fn stale_or_unavailable<V: Clone>(
    entry: &Entry<V>,
    stale_grace: Duration,
    now: Instant,
    retry_after: Duration,
) -> Outcome<V> {
    match &entry.answer {
        // A grace past the end of time keeps the answer for good.
        Some(answer)
            if answer
                .fresh_until
                .checked_add(stale_grace)
                .is_none_or(|usable_until| now < usable_until) =>
        {
            observe::tenant_cache("stale");
            Outcome::Value(answer.value.clone())
        }
        _ => {
            observe::tenant_cache("unavailable");
            Outcome::Unavailable {
                reason: entry.failing.as_ref().map_or_else(
                    || "the source is unavailable".to_owned(),
                    |failing| failing.last_failure.clone(),
                ),
                retry_after,
            }
        }
    }
}

fn unavailable_now<V>(reason: &str) -> Outcome<V> {
    Outcome::Unavailable {
        reason: reason.to_owned(),
        retry_after: Duration::from_secs(1),
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
