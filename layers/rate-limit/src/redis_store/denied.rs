//! The local "denied until" cache: a key Redis has just refused (or has
//! just emptied) is refused here, without a round trip, until it could
//! pass again.
//!
//! What is cached is a lower bound on the bucket's theoretical arrival
//! time, in the local clock: Redis's answer (`reset`, the TAT less Redis's
//! now) added to the moment the request was *sent*, which is no later than
//! the moment Redis read its clock. A TAT only grows (every instance adds
//! to it; it expires only once it is in the past), so a check this bound
//! already refuses, Redis would refuse too; one it allows goes to Redis.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::Quota;
use crate::gcra::{Outcome, evaluate};
use crate::memory::BucketKey;

const SHARDS: usize = 16;

#[derive(Debug)]
pub(crate) struct DeniedCache {
    shards: Box<[Mutex<HashMap<BucketKey, u64>>]>,
    per_shard: usize,
}

impl DeniedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        DeniedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, bucket: &BucketKey) -> &Mutex<HashMap<BucketKey, u64>> {
        &self.shards[usize::from(bucket.0[0]) % SHARDS]
    }

    /// The refusal the cached bound already proves, if any.
    pub(crate) fn refusal(
        &self,
        bucket: &BucketKey,
        quota: &Quota,
        now: u64,
        cost: u32,
    ) -> Option<Outcome> {
        if self.per_shard == 0 {
            return None;
        }
        let tat = *self
            .shard(bucket)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(bucket)?;
        match evaluate(quota, tat, now, cost) {
            (outcome @ Outcome::Denied { .. }, _) => Some(outcome),
            _ => None,
        }
    }

    /// Learns that the bucket's TAT is at least `tat`: a bucket already
    /// held is always brought up to date (a stale bound would understate
    /// the wait it reports); a new one is held only when `hold`.
    pub(crate) fn learn(&self, bucket: BucketKey, tat: u64, now: u64, hold: bool) {
        if self.per_shard == 0 {
            return;
        }
        let mut map = self
            .shard(&bucket)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bound) = map.get_mut(&bucket) {
            *bound = (*bound).max(tat);
            return;
        }
        if !hold {
            return;
        }
        if map.len() >= self.per_shard {
            // Bounds in the past prove nothing: drop them; if the cache is
            // still full of live ones, this key simply goes to Redis.
            map.retain(|_, bound| *bound > now);
            if map.len() >= self.per_shard {
                return;
            }
        }
        map.insert(bucket, tat);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bound_refuses_only_what_it_proves() {
        let cache = DeniedCache::new(64);
        let quota = Quota::new(10, Duration::from_secs(1), 2).unwrap();
        let key = BucketKey([3; 16]);
        let sec = 1_000_000_000;
        // TAT two emission intervals ahead: the bucket is empty.
        cache.learn(key, 10 * sec + 200_000_000, 10 * sec, true);
        match cache.refusal(&key, &quota, 10 * sec, 1) {
            Some(Outcome::Denied { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        // One interval later one request could pass: go ask Redis.
        assert_eq!(cache.refusal(&key, &quota, 10 * sec + 100_000_000, 1), None);
        // Unknown keys always go to Redis.
        assert_eq!(
            cache.refusal(&BucketKey([4; 16]), &quota, 10 * sec, 1),
            None
        );
    }

    #[test]
    fn bounded() {
        let cache = DeniedCache::new(16);
        for n in 0..1000u32 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&n.to_le_bytes());
            cache.learn(BucketKey(k), u64::MAX, 0, true);
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 16, "{held} entries");
    }
}
