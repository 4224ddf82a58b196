//! [`ReadyOrLater`]: an answer at hand now, or on its way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An answer at hand now, or on its way: what a tenant resolver and a
/// rate limiter return, so a layer takes an answer already known (a local
/// store, a fresh cache entry, an in-memory bucket) with
/// [`now`](Self::now), without boxing or polling a future, and awaits
/// only the ones that must wait (a control-plane call, a Redis round trip).
///
/// ```
/// use portcullis_identity::response::ReadyOrLater;
///
/// let known: ReadyOrLater<'_, u32> = ReadyOrLater::ready(7);
/// assert_eq!(known.now().ok(), Some(7));
/// let waiting: ReadyOrLater<'_, u32> = ReadyOrLater::later(async { 8 });
/// let waiting = waiting.now().unwrap_err();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async move {
/// assert_eq!(waiting.await, 8);
/// # });
/// ```
pub struct ReadyOrLater<'a, T>(State<'a, T>);

enum State<'a, T> {
    Ready(Option<T>),
    Later(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> ReadyOrLater<'a, T> {
    /// The answer, known now.
    pub fn ready(answer: T) -> Self {
        ReadyOrLater(State::Ready(Some(answer)))
    }

    /// The answer, once `future` gives it.
    pub fn later(future: impl Future<Output = T> + Send + 'a) -> Self {
        ReadyOrLater(State::Later(Box::pin(future)))
    }

    /// The answer if it is at hand, else this, still on its way.
    pub fn now(self) -> Result<T, Self> {
        match self.0 {
            State::Ready(Some(answer)) => Ok(answer),
            state => Err(ReadyOrLater(state)),
        }
    }
}

// Never pinned in place: the answer is moved out, the future is boxed.
impl<T> Unpin for ReadyOrLater<'_, T> {}

impl<T> Future for ReadyOrLater<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().0 {
            // Polled again after it answered: nothing more will come.
            State::Ready(answer) => answer.take().map_or(Poll::Pending, Poll::Ready),
            State::Later(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for ReadyOrLater<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            State::Ready(_) => "ready",
            State::Later(_) => "later",
        };
        f.debug_tuple("ReadyOrLater").field(&state).finish()
    }
}
