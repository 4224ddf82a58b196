//! Forwarded identities by header value, so a client's certificate is read
//! once, not on every request: behind a proxy one connection carries many
//! clients, so the per-connection parse of the TLS path does not apply.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

use portcullis_identity::ClientIdentity;

const SHARDS: usize = 16;

/// A bounded map from an exact header value to what it decoded to.
///
/// Keys are the whole value, compared in full (never a short hash that
/// two values could share), with a randomly seeded SipHash. A full shard
/// is emptied rather than tracked for recency: the bound matters, the
/// policy hardly does, and this keeps the lock short.
#[derive(Debug)]
pub(crate) struct IdentityCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    max_value_len: usize,
    hasher: RandomState,
}

/// Entries by the value's SipHash (computed once per lookup), each bucket
/// holding the values themselves for the full comparison.
type Shard =
    HashMap<u64, Vec<(Box<[u8]>, Option<ClientIdentity>)>, BuildHasherDefault<PassThrough>>;

/// The key is already a keyed SipHash: hashing it again is wasted work.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys reach here; fold anything else rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl IdentityCache {
    /// Holds up to about `capacity` values of at most `max_value_len`
    /// bytes; `0` turns it off.
    pub(crate) fn new(capacity: usize, max_value_len: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        IdentityCache {
            shards: (0..if per_shard == 0 { 0 } else { SHARDS })
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            per_shard,
            max_value_len,
            hasher: RandomState::new(),
        }
    }

    /// The cached answer for `value`, else `decode`'s, kept when it is not
    /// an error.
    pub(crate) fn get_or_decode(
        &self,
        value: &[u8],
        decode: impl FnOnce() -> Result<Option<ClientIdentity>, String>,
    ) -> Result<Option<ClientIdentity>, String> {
        if self.shards.is_empty() || value.len() > self.max_value_len {
            return decode();
        }
        let hash = self.hasher.hash_one(value);
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        {
            let map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, found)) = map
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(key, _)| **key == *value))
            {
                return Ok(found.clone());
            }
        }
        // Decode outside the lock: a slow certificate must not stall the
        // shard's other clients.
        let decoded = decode()?;
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.per_shard {
            map.clear();
        }
        let bucket = map.entry(hash).or_default();
        if !bucket.iter().any(|(key, _)| **key == *value) {
            bucket.push((value.into(), decoded.clone()));
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn decodes_once_per_value_and_stays_bounded() {
        let cache = IdentityCache::new(32, 100);
        let calls = Cell::new(0);
        let decode = || {
            calls.set(calls.get() + 1);
            Ok(None)
        };
        for _ in 0..3 {
            assert_eq!(cache.get_or_decode(b"a", decode), Ok(None));
        }
        assert_eq!(calls.get(), 1);
        // Errors are not kept.
        for _ in 0..2 {
            assert!(cache.get_or_decode(b"bad", || Err("no".into())).is_err());
        }
        // Too long: never kept.
        let long = "x".repeat(101);
        cache.get_or_decode(long.as_bytes(), decode).unwrap();
        cache.get_or_decode(long.as_bytes(), decode).unwrap();
        assert_eq!(calls.get(), 3);
        for i in 0..1000 {
            cache
                .get_or_decode(i.to_string().as_bytes(), decode)
                .unwrap();
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().values().map(Vec::len).sum::<usize>())
            .sum();
        assert!(held <= 32, "{held}");
        // Off.
        let off = IdentityCache::new(0, 100);
        off.get_or_decode(b"a", decode).unwrap();
        off.get_or_decode(b"a", decode).unwrap();
        assert_eq!(calls.get(), 1005);
    }
}
