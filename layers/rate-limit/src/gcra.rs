//! The generic cell rate algorithm on integer nanoseconds.
//!
//! A bucket is one number, its theoretical arrival time (TAT): the moment
//! the bucket would be empty again if no more requests came. With emission
//! interval `T = period / rate` and tolerance `tau = T·(burst − 1)`, a
//! request of cost `n` at time `now` is allowed when
//! `max(TAT, now) + n·T − tau − T ≤ now`, i.e. when the new TAT
//! `max(TAT, now) + n·T` is at most `now + tau + T`; it then stores the
//! new TAT. A denied request stores nothing.

use std::time::Duration;

use portcullis_identity::Quota;

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed; `remaining` more of cost 1 would be allowed right now.
    Allowed {
        /// Requests of cost 1 still allowed now.
        remaining: u32,
        /// Until the bucket is full again.
        reset: Duration,
    },
    /// Denied; the same request would be allowed after `retry_after`.
    Denied {
        /// How long until it would be allowed.
        retry_after: Duration,
        /// Until the bucket is full again.
        reset: Duration,
    },
    /// The cost is larger than the burst: never allowed.
    Never,
}

impl Outcome {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Outcome::Allowed { .. })
    }
}

/// Evaluates one request of cost `cost` against a bucket whose TAT is
/// `tat` (`0`: never used) at `now`. Returns the outcome and, when allowed,
/// the new TAT to store.
pub(crate) fn evaluate(quota: &Quota, tat: u64, now: u64, cost: u32) -> (Outcome, Option<u64>) {
    if cost > quota.burst() {
        return (Outcome::Never, None);
    }
    let t = quota.emission_interval_ns();
    let capacity = quota.capacity_ns();
    let start = tat.max(now);
    let new_tat = start.saturating_add(t.saturating_mul(u64::from(cost)));
    let limit = now.saturating_add(capacity);
    if new_tat <= limit {
        let room = limit - new_tat;
        let remaining = u32::try_from(room / t).unwrap_or(u32::MAX);
        (
            Outcome::Allowed {
                remaining,
                reset: Duration::from_nanos(new_tat - now),
            },
            Some(new_tat),
        )
    } else {
        (
            Outcome::Denied {
                retry_after: Duration::from_nanos(new_tat - limit),
                reset: Duration::from_nanos(start - now),
            },
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        // 10 per second, bursts of 3.
        let q = Quota::new(10, Duration::from_secs(1), 3).unwrap();
        let mut tat = 0;
        let now = 5 * SEC;
        for expected in [2, 1, 0] {
            let (outcome, new) = evaluate(&q, tat, now, 1);
            assert_eq!(
                outcome,
                Outcome::Allowed {
                    remaining: expected,
                    reset: Duration::from_nanos(new.unwrap() - now)
                }
            );
            tat = new.unwrap();
        }
        let (outcome, new) = evaluate(&q, tat, now, 1);
        assert_eq!(new, None, "a denied request writes nothing");
        assert_eq!(
            outcome,
            Outcome::Denied {
                retry_after: Duration::from_millis(100),
                reset: Duration::from_millis(300)
            }
        );
        // One emission interval later, one more.
        let (outcome, _) = evaluate(&q, tat, now + SEC / 10, 1);
        assert!(outcome.is_allowed());
        // A cost larger than the burst never passes.
        assert_eq!(evaluate(&q, 0, now, 4), (Outcome::Never, None));
        // A cost of the whole burst passes on a full bucket.
        assert!(evaluate(&q, 0, now, 3).0.is_allowed());
    }

    #[test]
    fn quotas_are_checked() {
        assert!(Quota::new(0, Duration::from_secs(1), 1).is_err());
        assert!(Quota::new(1, Duration::from_secs(1), 0).is_err());
        assert!(Quota::new(1, Duration::ZERO, 1).is_err());
        assert!(Quota::new(u32::MAX, Duration::from_nanos(1), 1).is_err());
        assert_eq!(
            Quota::per_minute(60, 5).unwrap().emission_interval_ns(),
            SEC
        );
    }
}
