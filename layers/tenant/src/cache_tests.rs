//! Unit tests of `cache.rs`.

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
        tokio::time::timeout(Duration::from_millis(1), cache.get(&"k", || source.fetch())).await;
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

/// A cache that learnt `5` for `k`, whose source then went down and whose
/// answer is past its freshness (61 s of 60).
async fn stale_while_down() -> (Cache<&'static str, u32>, Source) {
    let cache = Cache::new(CachePolicy::default());
    let source = Source::default();
    source.set(true, Some(5));
    cache.get(&"k", || source.fetch()).await;
    source.set(false, None);
    tokio::time::advance(Duration::from_secs(61)).await;
    (cache, source)
}

#[tokio::test(start_paused = true)]
async fn stale_only_while_failing_within_grace_with_backoff() {
    let (cache, source) = stale_while_down().await;
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
    let (cache, source) = stale_while_down().await;
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
    assert_eq!(cache.len(), (3, 0, 0));
    let before = source.calls();
    cache.get(&"a", || source.fetch()).await;
    cache.get(&"c", || source.fetch()).await;
    assert_eq!(source.calls(), before);
    cache.get(&"b", || source.fetch()).await;
    assert_eq!(source.calls(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_spray_of_unknown_keys_never_evicts_a_known_one() {
    let cache = Cache::new(CachePolicy {
        capacity: 4,
        negative_capacity: 8,
        ..CachePolicy::default()
    });
    let known = Source::default();
    known.set(true, Some(42));
    assert_eq!(value(cache.get(&0u32, || known.fetch()).await), Some(42));
    let unknown = Source::default();
    unknown.set(true, None);
    for key in 1..=1000u32 {
        cache.get(&key, || unknown.fetch()).await;
    }
    // Bounded on both sides, nothing left in flight.
    assert_eq!(cache.len(), (1, 8, 0));
    // The source goes down past the known answer's freshness: it is
    // still served, stale within grace, because nothing evicted it.
    known.set(false, None);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(value(cache.get(&0u32, || known.fetch()).await), Some(42));
}

#[tokio::test(start_paused = true)]
async fn lookups_beyond_the_in_flight_bound_are_refused_at_once() {
    let cache = Cache::new(CachePolicy {
        max_in_flight: 3,
        ..CachePolicy::default()
    });
    let source = Source::default();
    source.set(true, Some(1));
    let mut waiters = Vec::new();
    for key in 0..3u32 {
        let cache = cache.clone();
        let source = source.clone();
        waiters.push(tokio::spawn(async move {
            value(cache.get(&key, || source.fetch()).await)
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(cache.len(), (0, 0, 3));
    // A fourth key cannot start: unavailable now, without a call.
    let outcome = cache.get(&99, || source.fetch()).await;
    assert!(
        matches!(outcome, Outcome::Unavailable { ref reason, retry_after } if reason.contains("too many lookups") && retry_after == Duration::from_secs(1)),
        "{outcome:?}"
    );
    // One already in flight is still joined, not refused.
    let joined = cache.get(&0, || source.fetch()).await;
    assert_eq!(value(joined), Some(1));
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Some(1));
    }
    assert_eq!(source.calls(), 3);
    assert_eq!(cache.len(), (3, 0, 0));
    // The refused key left nothing behind: asked again, it is fetched.
    assert_eq!(value(cache.get(&99, || source.fetch()).await), Some(1));
}
