//! The response plumbing every portcullis layer shares: a body that is
//! either the inner service's or a rejection's short reason, and a future
//! that is either the inner call or a rejection answered at once.
//!
//! Layers turn requests away with a built response (status, a
//! `text/plain` reason, and the rejection value in the response's
//! extensions), never with an `Err`: the service's error type stays the
//! inner service's, so layers stack in any order.

mod body;
mod decide;
mod future;
mod hook;
mod ready;

pub use body::ResponseBody;
pub use decide::{DecideThenCall, Decision, ResponseHeaders};
pub use future::{ResponseFuture, rejection_response};
pub use hook::{
    OnRejection, ProblemJson, Refusal, RejectionHook, RejectionHookFuture, RejectionHookLayer,
};
pub use ready::ReadyOrLater;

use std::borrow::Cow;

use http::{HeaderValue, StatusCode};

/// A duration in whole seconds, rounded up (`Retry-After`, the IETF
/// `RateLimit` header's `t`).
pub fn ceil_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1 (a
/// client told 0 retries at once, into the same refusal).
///
/// ```
/// use std::time::Duration;
/// use portcullis_identity::response::retry_after;
///
/// assert_eq!(retry_after(Duration::ZERO), "1");
/// assert_eq!(retry_after(Duration::from_millis(1)), "1");
/// assert_eq!(retry_after(Duration::from_millis(2001)), "3");
/// ```
pub fn retry_after(wait: std::time::Duration) -> HeaderValue {
    HeaderValue::from(ceil_secs(wait).max(1))
}

/// Adds a layer's header to a response an inner layer (or the service)
/// may have answered with its own: the IETF `RateLimit` and
/// `RateLimit-Policy` lists are joined (the inner one's items first: two
/// rate-limit layers on one route report both), `Retry-After` keeps the
/// longer wait, anything else is replaced.
///
/// ```
/// use http::{HeaderMap, HeaderName, HeaderValue};
/// use portcullis_identity::response::merge_header;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", HeaderValue::from_static("\"login\";r=0;t=20"));
/// headers.insert("retry-after", HeaderValue::from_static("20"));
/// merge_header(&mut headers, HeaderName::from_static("ratelimit"), HeaderValue::from_static("\"api\";r=96;t=3"));
/// merge_header(&mut headers, HeaderName::from_static("retry-after"), HeaderValue::from_static("3"));
/// assert_eq!(headers["ratelimit"], "\"login\";r=0;t=20, \"api\";r=96;t=3");
/// assert_eq!(headers["retry-after"], "20");
/// ```
pub fn merge_header(headers: &mut http::HeaderMap, name: http::HeaderName, value: HeaderValue) {
    // One lookup: most responses carry none of these yet.
    let mut existing = match headers.entry(name) {
        http::header::Entry::Vacant(vacant) => {
            vacant.insert(value);
            return;
        }
        http::header::Entry::Occupied(occupied) => occupied,
    };
    let merged = match existing.key().as_str() {
        "ratelimit" | "ratelimit-policy" => {
            let mut joined = existing.get().as_bytes().to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or(value)
        }
        "retry-after" => {
            let seconds = |v: &HeaderValue| v.to_str().ok().and_then(|s| s.parse::<u64>().ok());
            match (seconds(existing.get()), seconds(&value)) {
                (Some(kept), Some(new)) if kept >= new => return,
                _ => value,
            }
        }
        _ => value,
    };
    existing.insert(merged);
}

/// Why a layer turned a request away.
///
/// The value is cloned into the response's extensions, so callers (and
/// tests) can read the typed reason behind the status, beside a
/// [`Refusal`] that every layer's rejection shares (what a
/// [`RejectionHookLayer`] reads).
pub trait Rejection: Clone + Send + Sync + 'static {
    /// The layer that refused: `client_cert`, `xfcc`, `tenant`,
    /// `rate_limit` or `internal_guard` (the `layer` label of the
    /// rejection counter).
    fn layer(&self) -> &'static str;
    /// A fixed snake_case code for the reason (the `reason` label of the
    /// rejection counter), stable for clients to match on.
    fn reason(&self) -> &'static str;
    /// The response status.
    fn status(&self) -> StatusCode;
    /// The response body: one line, ending in `\n`, that says what was
    /// wrong and never repeats a secret.
    fn body_text(&self) -> Cow<'static, str>;

    /// Headers the response carries besides `content-type` (e.g.
    /// `retry-after`). None by default.
    fn headers(&self, headers: &mut http::HeaderMap) {
        let _ = headers;
    }
}
