//! What the layer asks a store: [`Limiter`], answered now (memory) or
//! later (Redis) through one [`Checking`] type.

use std::fmt;

use portcullis_identity::response::ReadyOrLater;

use crate::{BucketKey, Clock, MemoryLimiter, Outcome, Quota};

/// Checks a bucket; implemented by the stores.
///
/// A store that knows the answer at once (the [`MemoryLimiter`]) returns
/// [`ReadyOrLater::ready`], which the layer reads without a future or an
/// allocation; a store across the network (the Redis store) returns
/// [`ReadyOrLater::later`].
pub trait Limiter: Send + Sync + 'static {
    /// Charges `cost` to `key` under `quota`, if it fits.
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Checking;

    /// Charges every check, or none: the request goes on only if every
    /// outcome allows it (several policies on one request). Each check is
    /// evaluated as if the earlier ones had been charged. The default
    /// refuses more than one check: a store must do this atomically, or
    /// not at all.
    fn check_all(&self, checks: Vec<(BucketKey, Quota, u32)>) -> CheckingAll {
        match checks.as_slice() {
            [(key, quota, cost)] => {
                let one = self.check(*key, quota, *cost);
                CheckingAll::later(async move { one.await.map(|outcome| vec![outcome]) })
            }
            _ => CheckingAll::ready(Err(StoreError::new(
                StoreErrorKind::Protocol,
                "this store checks one policy at a time",
            ))),
        }
    }

    /// How many buckets this store holds in the process, for the
    /// `portcullis_rate_limit_buckets` gauge; `None` (the default) for a
    /// store kept elsewhere.
    fn bucket_count(&self) -> Option<usize> {
        None
    }
}

impl<C: Clock> Limiter for MemoryLimiter<C> {
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Checking {
        Checking::ready(Ok(MemoryLimiter::check(self, key, quota, cost)))
    }

    fn check_all(&self, checks: Vec<(BucketKey, Quota, u32)>) -> CheckingAll {
        CheckingAll::ready(Ok(MemoryLimiter::check_all(self, &checks)))
    }

    fn bucket_count(&self) -> Option<usize> {
        Some(self.len())
    }
}

/// What [`Limiter::check_all`] answers: every outcome, in order.
pub type CheckingAll = ReadyOrLater<'static, Result<Vec<Outcome>, StoreError>>;

/// A store could not answer: the layer applies its
/// [`OnStoreError`](crate::OnStoreError) policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    detail: String,
}

/// The kind of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No answer within the store's timeout.
    Timeout,
    /// The store could not be reached, or refused the command.
    Unavailable,
    /// The store answered something this crate does not understand.
    Protocol,
}

impl StoreError {
    /// An error of `kind`; `detail` must not carry a key or a secret.
    pub fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Timeout => "rate-limit store timed out",
            StoreErrorKind::Unavailable => "rate-limit store unavailable",
            StoreErrorKind::Protocol => "rate-limit store answered unexpectedly",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for StoreError {}

/// A check's answer: at hand now (memory), or on its way (Redis). The
/// layer takes a ready one with [`ReadyOrLater::now`] without a future.
pub type Checking = ReadyOrLater<'static, Result<Outcome, StoreError>>;
