//! [`Quota`]: a plan's rate and burst, valid by construction.

use std::fmt;
use std::time::Duration;

/// How many requests, per how long, with how much burst: a tenant's plan,
/// and what the rate limiter checks.
///
/// `rate` requests per `period` on average, of which up to `burst` may come
/// at once. Always valid: the rate and burst are at least 1 and the period
/// longer than zero, so no plan can be read as "no limit". Travels with
/// each check, so one limiter serves every tenant's plan.
///
/// ```
/// use portcullis_identity::Quota;
///
/// let plan = Quota::per_minute(600, 20)?;
/// assert_eq!((plan.rate(), plan.burst()), (600, 20));
/// assert!(Quota::per_minute(0, 20).is_err());
/// # Ok::<(), portcullis_identity::QuotaError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
    /// `T` and `tau + T`, worked out once: a 64-bit division costs as much
    /// as the rest of a check.
    interval_ns: u64,
    capacity_ns: u64,
}

/// A quota that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaError(&'static str);

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for QuotaError {}

impl Quota {
    /// `rate` per `period`, bursts of up to `burst`.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Result<Self, QuotaError> {
        if rate == 0 {
            return Err(QuotaError("the rate must be at least 1"));
        }
        if burst == 0 {
            return Err(QuotaError("the burst must be at least 1"));
        }
        if period.is_zero() {
            return Err(QuotaError("the period must be longer than zero"));
        }
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = period_ns / u64::from(rate);
        if interval_ns == 0 {
            return Err(QuotaError(
                "the rate is finer than one request per nanosecond",
            ));
        }
        Ok(Quota {
            rate,
            period,
            burst,
            interval_ns,
            capacity_ns: interval_ns.saturating_mul(u64::from(burst)),
        })
    }

    /// `rate_per_min` per minute, bursts of `burst` (a tenant plan).
    pub fn per_minute(rate_per_min: u32, burst: u32) -> Result<Self, QuotaError> {
        Quota::new(rate_per_min, Duration::from_secs(60), burst)
    }

    /// Requests per period.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T`: the time one request's worth of capacity takes to return, in
    /// nanoseconds. For the rate limiter's stores.
    #[doc(hidden)]
    pub fn emission_interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// `tau + T`: how far a bucket's theoretical arrival time may run ahead
    /// of now, in nanoseconds. For the rate limiter's stores.
    #[doc(hidden)]
    pub fn capacity_ns(&self) -> u64 {
        self.capacity_ns
    }
}
