//! The response future: the shared decide-then-call future, deciding by
//! the store's answer.

use portcullis_identity::response::Rejection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Request;
use portcullis_identity::observe;
use portcullis_identity::response::{DecideThenCall, Decision, ResponseHeaders};

use super::decision::{Applied, all, one};
use super::layer::Shared;
use super::rejection::RateLimitRejection;
use crate::limiter::{Checking, CheckingAll};

/// Response future of [`RateLimit`](crate::RateLimit): checking the
/// bucket, calling the inner service, or rejected.
pub type RateLimitFuture<S, B> = DecideThenCall<S, B, CheckingBucket>;

/// A request's bucket being checked by a store that answers later (Redis).
pub struct CheckingBucket {
    pub(super) pending: Pending,
    pub(super) applied: Applied,
    pub(super) shared: Arc<Shared>,
}

/// The store's answer on its way: one policy's, or several.
pub(super) enum Pending {
    One(Checking),
    All(CheckingAll),
}

impl std::fmt::Debug for CheckingBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckingBucket")
            .field("key_source", &self.applied.source)
            .finish_non_exhaustive()
    }
}

impl<B> Decision<B> for CheckingBucket {
    type Rejection = RateLimitRejection;

    fn poll_decide(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut Request<B>,
    ) -> Poll<Result<ResponseHeaders, RateLimitRejection>> {
        let decided = match &mut self.pending {
            Pending::One(checking) => {
                let answer = ready!(Pin::new(checking).poll(cx));
                self.shared.judge(&self.applied, one(&answer), req)
            }
            Pending::All(checking) => {
                let answer = ready!(Pin::new(checking).poll(cx));
                self.shared.judge(&self.applied, all(&answer), req)
            }
        };
        Poll::Ready(decided)
    }

    fn on_rejection(rejection: &RateLimitRejection) {
        observe::rejected(Rejection::layer(rejection), Rejection::reason(rejection));
    }
}
