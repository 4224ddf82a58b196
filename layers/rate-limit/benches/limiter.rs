//! The keyed check against governor's `DefaultKeyedRateLimiter`, in the
//! same run: on a few hot keys, and spread over a million distinct keys;
//! and the memory each key costs.
//!
//! Run: `cargo bench -p portcullis-rate-limit --bench limiter` (the paired
//! rounds print a ratio; criterion's separate runs drift ±8% here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use portcullis_identity::Quota;
use portcullis_rate_limit::{BucketKey, MemoryLimiter, SystemClock, WhenFull};

/// splitmix64: a cheap stand-in for the SHA-256 the key chain uses, so
/// every byte is spread as a digest's is.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(n: u64) -> BucketKey {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mix(n).to_le_bytes());
    k[8..].copy_from_slice(&mix(n ^ 0xA5A5_A5A5).to_le_bytes());
    BucketKey(k)
}

fn checks(c: &mut Criterion) {
    // Generous enough that every check is allowed: the cost of the check.
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let governor_quota = GovernorQuota::per_second(NonZeroU32::new(1_000_000_000).unwrap())
        .allow_burst(NonZeroU32::new(1_000_000).unwrap());

    let mut group = c.benchmark_group("keyed check, 16 hot keys");
    let governor = RateLimiter::keyed(governor_quota);
    let ours = MemoryLimiter::new(1 << 20, WhenFull::default(), SystemClock::new());
    let mut i = 0u64;
    group.bench_function("governor DefaultKeyedRateLimiter (baseline)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(governor.check_key(&key(i % 16)).is_ok())
        })
    });
    group.bench_function("portcullis MemoryLimiter", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(ours.check(key(i % 16), &quota, 1).is_allowed())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("keyed check, 1M distinct keys");
    let governor = RateLimiter::keyed(governor_quota);
    let ours = MemoryLimiter::new(2_000_000, WhenFull::default(), SystemClock::new());
    for n in 0..1_000_000 {
        let _ = governor.check_key(&key(n));
        ours.check(key(n), &quota, 1);
    }
    group.bench_function("governor DefaultKeyedRateLimiter (baseline)", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            black_box(governor.check_key(&key(i % 1_000_000)).is_ok())
        })
    });
    group.bench_function("portcullis MemoryLimiter", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            black_box(ours.check(key(i % 1_000_000), &quota, 1).is_allowed())
        })
    });
    group.finish();
    println!(
        "portcullis MemoryLimiter: {} keys, {:.1} bytes per key (table capacity included)",
        ours.len(),
        ours.approximate_bytes() as f64 / ours.len() as f64
    );
}

/// The hot-key comparison again in alternating rounds, so the machine's
/// drift falls on both sides alike (> 1: portcullis is faster).
fn paired(_: &mut Criterion) {
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let governor = RateLimiter::keyed(
        GovernorQuota::per_second(NonZeroU32::new(1_000_000_000).unwrap())
            .allow_burst(NonZeroU32::new(1_000_000).unwrap()),
    );
    let ours = MemoryLimiter::new(1 << 20, WhenFull::default(), SystemClock::new());
    portcullis_test_support::paired_rounds(
        "keyed check, 16 hot keys: governor -> portcullis MemoryLimiter",
        24,
        2_000_000,
        |candidate, n| {
            let start = std::time::Instant::now();
            for i in 0..n {
                let allowed = if candidate {
                    ours.check(key(i % 16), &quota, 1).is_allowed()
                } else {
                    governor.check_key(&key(i % 16)).is_ok()
                };
                black_box(allowed);
            }
            start.elapsed()
        },
    );
}

criterion_group!(benches, checks, paired, key_spray);
criterion_main!(benches);

/// Ten million distinct keys through a store capped at one million: the
/// memory held, per key of the cap.
fn key_spray(_: &mut Criterion) {
    let quota = Quota::new(1, Duration::from_secs(60), 1).unwrap();
    let cap = 1_000_000;
    let store = MemoryLimiter::new(cap, WhenFull::EvictSoonestFull, SystemClock::new());
    let start = std::time::Instant::now();
    let mut peak = 0;
    for n in 0..10_000_000u64 {
        store.check(key(n), &quota, 1);
        if n % 1_000_000 == 0 {
            peak = peak.max(store.approximate_bytes());
        }
    }
    println!(
        "key spray: 10M distinct keys, cap {cap}: {} held, peak {:.1} MB ({:.1} bytes per key of the cap), {:.0} ns per check",
        store.len(),
        peak as f64 / 1e6,
        peak as f64 / cap as f64,
        start.elapsed().as_nanos() as f64 / 1e7
    );
}
