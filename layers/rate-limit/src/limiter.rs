//! What the layer asks a store: [`Limiter`], answered now (memory) or
//! later (Redis) through one [`Checking`] type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{BucketKey, Clock, MemoryLimiter, Outcome, Quota};

/// Checks a bucket; implemented by the stores.
///
/// A store that knows the answer at once (the [`MemoryLimiter`]) returns
/// [`Checking::ready`], which the layer reads without a future or an
/// allocation; a store across the network (the Redis store) returns
/// [`Checking::pending`].
pub trait Limiter: Send + Sync + 'static {
    /// Charges `cost` to `key` under `quota`, if it fits.
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Checking;
}

impl<C: Clock> Limiter for MemoryLimiter<C> {
    fn check(&self, key: BucketKey, quota: &Quota, cost: u32) -> Checking {
        Checking::ready(Ok(MemoryLimiter::check(self, key, quota, cost)))
    }
}

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

/// A store's answer to one check.
type Answer = Result<Outcome, StoreError>;

/// A check's answer: at hand now, or on its way.
///
/// A future; [`Checking::now`] takes an answer already at hand without
/// polling.
pub struct Checking(State);

enum State {
    Ready(Option<Answer>),
    Pending(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl Checking {
    /// The answer, known now.
    pub fn ready(answer: Result<Outcome, StoreError>) -> Self {
        Checking(State::Ready(Some(answer)))
    }

    /// The answer, once `future` gives it.
    pub fn pending(
        future: impl Future<Output = Result<Outcome, StoreError>> + Send + 'static,
    ) -> Self {
        Checking(State::Pending(Box::pin(future)))
    }

    /// The answer if it is at hand, else the check still on its way.
    pub fn now(self) -> Result<Result<Outcome, StoreError>, Checking> {
        match self.0 {
            State::Ready(Some(answer)) => Ok(answer),
            state => Err(Checking(state)),
        }
    }
}

impl Future for Checking {
    type Output = Result<Outcome, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            State::Ready(answer) => Poll::Ready(answer.take().unwrap_or_else(|| {
                Err(StoreError::new(
                    StoreErrorKind::Protocol,
                    "check polled after it answered",
                ))
            })),
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Checking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            State::Ready(_) => "ready",
            State::Pending(_) => "pending",
        };
        f.debug_tuple("Checking").field(&state).finish()
    }
}
