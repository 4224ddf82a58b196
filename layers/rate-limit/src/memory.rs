//! Buckets in memory: bounded, sharded, all-or-nothing across policies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};

use crate::Quota;
use crate::clock::Clock;
use crate::gcra::{Outcome, evaluate};

/// A bucket's name: a fixed-size digest, so memory per key is fixed and no
/// raw token or address is ever held.
///
/// A bucket is a key *and a period*: one key under `10/s` and `1000/h`
/// is two buckets, so several policies on one caller need no separate
/// keys, while a plan changing its rate within a period keeps its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey(pub [u8; 16]);

impl BucketKey {
    /// The bucket of this key under `quota`'s period. Bytes 8..16 carry
    /// the period (byte 0 still picks the shard, bytes 8..16 still hash).
    pub(crate) fn under(self, quota: &Quota) -> BucketKey {
        let period = u64::try_from(quota.period().as_nanos()).unwrap_or(u64::MAX);
        let mut bytes = self.0;
        for (byte, p) in bytes[8..].iter_mut().zip(period.to_le_bytes()) {
            *byte ^= p;
        }
        BucketKey(bytes)
    }
}

/// What to do with a new key when the store is full of live buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Evict the bucket that will be full again soonest (default): it
    /// holds the least information.
    #[default]
    EvictSoonestFull,
    /// Deny requests for new keys until room returns.
    DenyNewKeys,
}

const SHARDS: usize = 64;

/// Keys are SHA-256 digests already: their bytes are the hash. Hashing
/// them again (SipHash) would cost more than the rest of a check.
#[derive(Debug, Default, Clone, Copy)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `BucketKey` hashes as one 16-byte write; bytes 8..16 here, byte 0
        // picks the shard.
        if let Some(tail) = bytes.get(8..16) {
            let mut word = [0u8; 8];
            word.copy_from_slice(tail);
            self.0 ^= u64::from_le_bytes(word);
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
}

type Shard = HashMap<BucketKey, AtomicU64, std::hash::BuildHasherDefault<DigestHasher>>;

/// GCRA buckets in memory.
///
/// Each bucket is one theoretical arrival time in an `AtomicU64`: a check
/// on an existing key takes its shard's read lock and one compare-and-swap.
/// At most `max_keys` buckets are held: when a shard is full, buckets that
/// are already full again (they remember nothing) are swept first, then
/// [`WhenFull`] decides.
#[derive(Debug)]
pub struct MemoryLimiter<C> {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    when_full: WhenFull,
    clock: C,
}

impl<C: Clock> MemoryLimiter<C> {
    /// A store of at most about `max_keys` buckets on `clock`.
    pub fn new(max_keys: usize, when_full: WhenFull, clock: C) -> Self {
        MemoryLimiter {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            when_full,
            clock,
        }
    }

    fn shard_of(key: &BucketKey) -> usize {
        usize::from(key.0[0]) % SHARDS
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// The memory the buckets take, tables' spare capacity included: per
    /// slot a key, an atomic and hashbrown's control byte.
    pub fn approximate_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(BucketKey, AtomicU64)>() + 1;
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).capacity() * slot)
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks one bucket.
    pub fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Outcome {
        let key = key.under(quota);
        let now = self.clock.now_ns();
        let shard = &self.shards[Self::shard_of(&key)];
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(tat) = map.get(&key) {
                return cas(tat, quota, now, cost);
            }
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&key) && !self.make_room(&mut map, now) {
            return full();
        }
        let tat = map.entry(key).or_insert_with(|| AtomicU64::new(0));
        cas(tat, quota, now, cost)
    }

    /// Checks several buckets together: all are charged, or none. Each
    /// check is evaluated as if the earlier ones had been charged (two
    /// checks of one bucket see each other); the request may go on only if
    /// every outcome allows it.
    pub fn check_all(&self, checks: &[(BucketKey, Quota, u32)]) -> Vec<Outcome> {
        let now = self.clock.now_ns();
        if let Some(outcomes) = self.check_all_known(checks, now) {
            return outcomes;
        }
        let checks: Vec<(BucketKey, Quota, u32)> = checks
            .iter()
            .map(|(key, quota, cost)| (key.under(quota), *quota, *cost))
            .collect();
        let checks = &checks[..];
        // Lock every shard involved, in index order (no deadlock).
        let mut indices: Vec<usize> = checks.iter().map(|(k, _, _)| Self::shard_of(k)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<(usize, RwLockWriteGuard<'_, Shard>)> = indices
            .iter()
            .map(|&i| {
                (
                    i,
                    self.shards[i]
                        .write()
                        .unwrap_or_else(PoisonError::into_inner),
                )
            })
            .collect();
        let mut outcomes = Vec::with_capacity(checks.len());
        // Evaluate in order, as if each earlier charge had happened, so two
        // policies on one key see each other.
        let mut pending: Vec<(BucketKey, u64)> = Vec::new();
        for (key, quota, cost) in checks {
            let shard = Self::shard_of(key);
            let stored = pending
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, t)| *t)
                .or_else(|| {
                    guards
                        .iter()
                        .find(|(i, _)| *i == shard)
                        .and_then(|(_, g)| g.get(key).map(|t| t.load(Ordering::Acquire)))
                })
                .unwrap_or(0);
            let (mut outcome, new_tat) = evaluate(quota, stored, now, *cost);
            if let Some(tat) = new_tat {
                let known = pending.iter().any(|(k, _)| k == key)
                    || guards
                        .iter()
                        .any(|(i, g)| *i == shard && g.contains_key(key));
                let room = known
                    || guards
                        .iter_mut()
                        .find(|(i, _)| *i == shard)
                        .is_some_and(|(_, g)| self.make_room(g, now));
                if room {
                    pending.push((*key, tat));
                } else {
                    outcome = full();
                }
            }
            outcomes.push(outcome);
        }
        // All or nothing: charge only when every policy allowed.
        if outcomes.iter().all(Outcome::is_allowed) {
            for (key, tat) in pending {
                let shard = Self::shard_of(&key);
                if let Some((_, guard)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                    guard
                        .entry(key)
                        .or_insert_with(|| AtomicU64::new(0))
                        .store(tat, Ordering::Release);
                }
            }
        }
        outcomes
    }

    /// The common case of [`check_all`](Self::check_all) without a heap
    /// allocation beyond the answer: a few buckets, all in one shard (a
    /// key's policies are), all held already. One write lock, which keeps
    /// every single check of the shard out while the buckets are read and
    /// written. `None`: not that case.
    fn check_all_known(
        &self,
        checks: &[(BucketKey, Quota, u32)],
        now: u64,
    ) -> Option<Vec<Outcome>> {
        const MOST: usize = crate::MAX_POLICIES;
        let (first, _, _) = checks.first()?;
        if checks.len() > MOST {
            return None;
        }
        let shard = Self::shard_of(first);
        if checks
            .iter()
            .any(|(key, _, _)| Self::shard_of(key) != shard)
        {
            return None;
        }
        let guard = self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut charged = [(BucketKey([0; 16]), 0u64); MOST];
        let mut outcomes = Vec::with_capacity(checks.len());
        let mut all_allowed = true;
        for (index, (key, quota, cost)) in checks.iter().enumerate() {
            let bucket = key.under(quota);
            let tat = guard.get(&bucket)?;
            // As if each earlier charge had happened: a bucket checked
            // twice sees itself.
            let stored = charged[..index]
                .iter()
                .rev()
                .find(|(k, _)| *k == bucket)
                .map_or_else(|| tat.load(Ordering::Acquire), |(_, t)| *t);
            let (outcome, new_tat) = evaluate(quota, stored, now, *cost);
            charged[index] = (bucket, new_tat.unwrap_or(stored));
            all_allowed &= outcome.is_allowed();
            outcomes.push(outcome);
        }
        if all_allowed {
            for (bucket, tat) in &charged[..checks.len()] {
                if let Some(stored) = guard.get(bucket) {
                    stored.store(*tat, Ordering::Release);
                }
            }
        }
        Some(outcomes)
    }

    /// Makes room for one more bucket; `false` when the policy says no.
    fn make_room(&self, map: &mut Shard, now: u64) -> bool {
        if map.len() < self.per_shard {
            return true;
        }
        // Buckets full again remember nothing: sweep them all.
        map.retain(|_, tat| tat.load(Ordering::Acquire) > now);
        if map.len() < self.per_shard {
            return true;
        }
        match self.when_full {
            WhenFull::DenyNewKeys => false,
            WhenFull::EvictSoonestFull => {
                // Evict an eighth at once, soonest-full first, so a spray of
                // new keys costs O(1) per key amortised, not a scan each.
                let mut by_tat: Vec<(u64, BucketKey)> = map
                    .iter()
                    .map(|(k, tat)| (tat.load(Ordering::Acquire), *k))
                    .collect();
                let count = (self.per_shard / 8).max(1).min(by_tat.len());
                if count > 0 {
                    by_tat.select_nth_unstable(count - 1);
                    for (_, key) in &by_tat[..count] {
                        map.remove(key);
                    }
                }
                true
            }
        }
    }

    /// Removes every bucket that is full again; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_ns();
        self.shards
            .iter()
            .map(|shard| {
                let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
                let before = map.len();
                map.retain(|_, tat| tat.load(Ordering::Acquire) > now);
                before - map.len()
            })
            .sum()
    }
}

/// The answer for a new key when the store is full of live buckets and
/// [`WhenFull::DenyNewKeys`] holds.
fn full() -> Outcome {
    Outcome::Denied {
        retry_after: std::time::Duration::from_secs(1),
        reset: std::time::Duration::ZERO,
    }
}

/// One GCRA step on an atomic TAT; a denied request writes nothing.
fn cas(tat: &AtomicU64, quota: &Quota, now: u64, cost: u32) -> Outcome {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let (outcome, new_tat) = evaluate(quota, current, now, cost);
        let Some(new_tat) = new_tat else {
            return outcome;
        };
        match tat.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return outcome,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn key(n: u32) -> BucketKey {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&n.to_le_bytes());
        BucketKey(k)
    }

    #[test]
    fn all_or_nothing_across_policies() {
        let clock = ManualClock::new();
        let store = MemoryLimiter::new(1000, WhenFull::default(), clock.clone());
        let per_second = Quota::new(10, Duration::from_secs(1), 10).unwrap();
        let per_minute = Quota::new(3, Duration::from_secs(60), 3).unwrap();
        // One caller, two policies: two buckets (a bucket is a key and a
        // period), checked together.
        let checks = [(key(1), per_second, 1), (key(1), per_minute, 1)];
        for _ in 0..3 {
            assert!(store.check_all(&checks).iter().all(Outcome::is_allowed));
        }
        // The per-minute policy refuses: the per-second one is not charged.
        let outcomes = store.check_all(&checks);
        assert!(outcomes[0].is_allowed() && !outcomes[1].is_allowed());
        match store.check(key(1), &per_second, 1) {
            Outcome::Allowed { remaining, .. } => assert_eq!(remaining, 6, "only 3 charged before"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bounded_full_buckets_swept_first_then_the_policy() {
        let clock = ManualClock::new();
        let quota = Quota::new(1, Duration::from_secs(1), 1).unwrap();
        let store = MemoryLimiter::new(64, WhenFull::DenyNewKeys, clock.clone());
        // One key per shard (the shard is the first byte).
        let spread = |n: u32| {
            let mut k = [0u8; 16];
            k[0] = n as u8;
            k[1] = (n >> 8) as u8;
            BucketKey(k)
        };
        for n in 0..64 {
            assert!(store.check(spread(n), &quota, 1).is_allowed());
        }
        assert_eq!(store.len(), 64);
        // Full of live buckets: a new key is denied.
        assert!(!store.check(spread(256), &quota, 1).is_allowed());
        // Once they are full again they are swept for the new key.
        clock.advance(Duration::from_secs(2));
        assert!(store.check(spread(256), &quota, 1).is_allowed());
        assert!(store.len() <= 64);
        let evicting = MemoryLimiter::new(64, WhenFull::EvictSoonestFull, clock.clone());
        for n in 0..10_000u32 {
            evicting.check(spread(n), &quota, 1);
        }
        assert!(evicting.len() <= 64);
        assert_eq!(evicting.sweep(), 0);
        clock.advance(Duration::from_secs(2));
        assert!(evicting.sweep() > 0);
        assert!(evicting.is_empty());
    }
}
