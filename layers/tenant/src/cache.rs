//! A cache of remote answers: single-flight fetches in tasks of their own,
//! freshness per answer, stale answers only while the source is failing,
//! back-off after failures, bounded size with least-recently-used eviction.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_identity::observe;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long answers stay, and how failures are handled.
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
    /// Most keys held (default 10,000); the least recently used goes first.
    pub capacity: usize,
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

struct Entry<V> {
    /// The last definitive answer: value, fresh until, usable-if-failing until.
    answer: Option<(V, Instant, Instant)>,
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<String>,
    in_flight: Option<watch::Receiver<Option<Outcome<V>>>>,
    last_used: Instant,
}

impl<V> Entry<V> {
    fn new(now: Instant) -> Self {
        Entry {
            answer: None,
            failures: 0,
            retry_at: None,
            last_failure: None,
            in_flight: None,
            last_used: now,
        }
    }
}

/// The cache. Cloning shares it.
pub(crate) struct Cache<K, V> {
    entries: Arc<Mutex<HashMap<K, Entry<V>>>>,
    policy: CachePolicy,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            entries: self.entries.clone(),
            policy: self.policy,
        }
    }
}

enum Step<V> {
    Done(Outcome<V>),
    Wait(watch::Receiver<Option<Outcome<V>>>),
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(policy: CachePolicy) -> Self {
        Cache {
            entries: Arc::new(Mutex::new(HashMap::new())),
            policy,
        }
    }

    /// The answer for `key`: from the cache when fresh, else from one fetch
    /// shared by every caller asking meanwhile. The fetch runs in a task of
    /// its own, so a caller that gives up never cancels it.
    pub(crate) async fn get<F, Fut>(&self, key: &K, fetch: F) -> Outcome<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Fetched<V>> + Send + 'static,
    {
        let step = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if !entries.contains_key(key) {
                self.make_room(&mut entries);
            }
            let entry = entries
                .entry(key.clone())
                .or_insert_with(|| Entry::new(now));
            entry.last_used = now;
            match self.ready(entry, now) {
                Some(outcome) => Step::Done(outcome),
                None => match &entry.in_flight {
                    Some(rx) => {
                        observe::tenant_cache("miss");
                        Step::Wait(rx.clone())
                    }
                    None => {
                        observe::tenant_cache("miss");
                        let (tx, rx) = watch::channel(None);
                        entry.in_flight = Some(rx.clone());
                        let this = self.clone();
                        let key = key.clone();
                        let fetching = fetch();
                        tokio::spawn(async move {
                            let fetched = fetching.await;
                            let outcome = this.settle(&key, fetched);
                            let _ = tx.send(Some(outcome));
                        });
                        Step::Wait(rx)
                    }
                },
            }
        };
        match step {
            Step::Done(outcome) => outcome,
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
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = entries.get_mut(key)?;
        match &entry.answer {
            Some((value, fresh_until, _)) if now < *fresh_until => {
                entry.last_used = now;
                observe::tenant_cache("hit");
                Some(value.clone())
            }
            _ => None,
        }
    }

    /// An answer without fetching, if there is one to give now.
    fn ready(&self, entry: &Entry<V>, now: Instant) -> Option<Outcome<V>> {
        if let Some((value, fresh_until, _)) = &entry.answer
            && now < *fresh_until
        {
            observe::tenant_cache("hit");
            return Some(Outcome::Value(value.clone()));
        }
        match entry.retry_at {
            // Backing off: the source failed recently; do not ask again yet.
            Some(retry_at) if now < retry_at && entry.in_flight.is_none() => {
                Some(self.stale_or_unavailable(entry, now, retry_at - now))
            }
            _ => None,
        }
    }

    fn stale_or_unavailable(
        &self,
        entry: &Entry<V>,
        now: Instant,
        retry_after: Duration,
    ) -> Outcome<V> {
        match &entry.answer {
            Some((value, _, usable_until)) if now < *usable_until => {
                observe::tenant_cache("stale");
                Outcome::Value(value.clone())
            }
            _ => {
                observe::tenant_cache("unavailable");
                Outcome::Unavailable {
                    reason: entry
                        .last_failure
                        .clone()
                        .unwrap_or_else(|| "the source is unavailable".to_owned()),
                    retry_after,
                }
            }
        }
    }

    /// Records a fetch's result and says what its waiters get.
    fn settle(&self, key: &K, fetched: Fetched<V>) -> Outcome<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = entries
            .entry(key.clone())
            .or_insert_with(|| Entry::new(now));
        entry.in_flight = None;
        match fetched {
            Fetched::Answer { value, positive } => {
                // A definitive answer always replaces what was there.
                let ttl = if positive {
                    self.policy.positive_ttl
                } else {
                    self.policy.negative_ttl
                };
                let fresh_until = now + ttl;
                entry.answer = Some((
                    value.clone(),
                    fresh_until,
                    fresh_until + self.policy.stale_grace,
                ));
                entry.failures = 0;
                entry.retry_at = None;
                entry.last_failure = None;
                Outcome::Value(value)
            }
            Fetched::Failed(reason) => {
                entry.failures = entry.failures.saturating_add(1);
                let wait = self
                    .policy
                    .backoff
                    .saturating_mul(1u32 << entry.failures.saturating_sub(1).min(16))
                    .min(self.policy.max_backoff);
                entry.retry_at = Some(now + wait);
                entry.last_failure = Some(reason);
                self.stale_or_unavailable(entry, now, wait)
            }
        }
    }

    /// Evicts the least recently used idle entry when full.
    fn make_room(&self, entries: &mut HashMap<K, Entry<V>>) {
        if entries.len() < self.policy.capacity.max(1) {
            return;
        }
        if let Some(oldest) = entries
            .iter()
            .filter(|(_, e)| e.in_flight.is_none())
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

fn unavailable_now<V>(reason: &str) -> Outcome<V> {
    Outcome::Unavailable {
        reason: reason.to_owned(),
        retry_after: Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A source whose answers the test sets, counting calls.
    #[derive(Clone, Default)]
    struct Source {
        calls: Arc<AtomicUsize>,
        up: Arc<std::sync::atomic::AtomicBool>,
        value: Arc<Mutex<Option<u32>>>,
    }

    impl Source {
        fn fetch(&self) -> impl Future<Output = Fetched<u32>> + Send + 'static {
            let this = self.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                if !this.up.load(Ordering::SeqCst) {
                    return Fetched::Failed("down".into());
                }
                match *this.value.lock().unwrap() {
                    Some(v) => Fetched::Answer {
                        value: v,
                        positive: true,
                    },
                    None => Fetched::Answer {
                        value: 0,
                        positive: false,
                    },
                }
            }
        }

        fn set(&self, up: bool, value: Option<u32>) {
            self.up.store(up, Ordering::SeqCst);
            *self.value.lock().unwrap() = value;
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn value(outcome: Outcome<u32>) -> Option<u32> {
        match outcome {
            Outcome::Value(v) => Some(v),
            Outcome::Unavailable { .. } => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_then_refetched_and_negative_answers_expire_sooner() {
        let cache = Cache::new(CachePolicy::default());
        let source = Source::default();
        source.set(true, Some(7));
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(7));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(7));
        assert_eq!(source.calls(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        source.set(true, None);
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(0));
        assert_eq!(source.calls(), 2);
        tokio::time::advance(Duration::from_secs(16)).await;
        cache.get(&"k", || source.fetch()).await;
        assert_eq!(source.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn one_fetch_for_many_callers_and_cancelled_callers_do_not_cancel_it() {
        let cache = Cache::new(CachePolicy::default());
        let source = Source::default();
        source.set(true, Some(1));
        // A caller that gives up at once.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(1), cache.get(&"k", || source.fetch()))
                .await;
        assert!(abandoned.is_err());
        let mut waiters = Vec::new();
        for _ in 0..100 {
            let cache = cache.clone();
            let source = source.clone();
            waiters.push(tokio::spawn(async move {
                value(cache.get(&"k", || source.fetch()).await)
            }));
        }
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Some(1));
        }
        assert_eq!(source.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_only_while_failing_within_grace_with_backoff() {
        let cache = Cache::new(CachePolicy::default());
        let source = Source::default();
        source.set(true, Some(5));
        cache.get(&"k", || source.fetch()).await;
        source.set(false, None);
        tokio::time::advance(Duration::from_secs(61)).await;
        // Down: the stale answer stands in.
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(5));
        assert_eq!(source.calls(), 2);
        // Backing off: no call per request.
        for _ in 0..10 {
            assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(5));
        }
        assert_eq!(source.calls(), 2);
        // Past the grace: nothing usable.
        tokio::time::advance(Duration::from_secs(300)).await;
        let outcome = cache.get(&"k", || source.fetch()).await;
        assert!(matches!(outcome, Outcome::Unavailable { ref reason, .. } if reason == "down"));
        // Back up with a definitive "unknown": replaces the stale answer at once.
        source.set(true, None);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_definitive_answer_during_grace_replaces_the_stale_one() {
        let cache = Cache::new(CachePolicy::default());
        let source = Source::default();
        source.set(true, Some(5));
        cache.get(&"k", || source.fetch()).await;
        source.set(false, None);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(5));
        source.set(true, None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(value(cache.get(&"k", || source.fetch()).await), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_by_least_recent_use() {
        let cache = Cache::new(CachePolicy {
            capacity: 3,
            ..CachePolicy::default()
        });
        let source = Source::default();
        source.set(true, Some(1));
        for key in ["a", "b", "c"] {
            cache.get(&key, || source.fetch()).await;
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        cache.get(&"a", || source.fetch()).await; // a is recent again
        cache.get(&"d", || source.fetch()).await; // b goes
        assert_eq!(cache.len(), 3);
        let before = source.calls();
        cache.get(&"a", || source.fetch()).await;
        cache.get(&"c", || source.fetch()).await;
        assert_eq!(source.calls(), before);
        cache.get(&"b", || source.fetch()).await;
        assert_eq!(source.calls(), before + 1);
    }
}
