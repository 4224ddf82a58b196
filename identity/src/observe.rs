//! What the layers report about each request, in one place: the fields of
//! the request span, and the counters.
//!
//! Every function here costs nothing unless its feature is on: `tracing`
//! for [`record`], `metrics` for the counters. Values are digests, names
//! and reasons, never a secret.
//!
//! # The request span
//!
//! `portcullis::PortcullisLayer` opens one span per request named
//! [`SPAN_NAME`], at DEBUG, declaring the [`SPAN_FIELDS`]; each layer
//! [`record`]s what it established into the current span:
//!
//! | Field | Set by | Value |
//! |---|---|---|
//! | `source` | client-cert, xfcc | how the certificate arrived: `tls` or `forwarded` |
//! | `principal` | client-cert, xfcc | the SPIFFE ID, else the CN, else the SHA-256 fingerprint (hex) |
//! | `bearer` | tenant | the first 16 hex digits of the bearer's SHA-256 digest |
//! | `tenant` | tenant | the tenant id, once the caller is authenticated |
//! | `key` | rate-limit | the key source that named the bucket (`cn`, `bearer`, ...) |
//! | `decision` | every layer | `allowed`, or `refused` by the layer that refused |
//! | `reason` | every layer | why it was refused (a fixed label, as the counters use) |
//!
//! Layers assembled by hand get the same by entering a span that declares
//! these fields around the stack's `call` and its future.
//!
//! # Counters (feature `metrics`)
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so any
//! exporter (Prometheus, StatsD, ...) the application installs sees them:
//!
//! | Name | Labels | Counts |
//! |---|---|---|
//! | `portcullis_headers_stripped_total` | `layer` | header lines removed because their sender may not set them |
//! | `portcullis_rejections_total` | `layer`, `reason` | requests refused |
//! | `portcullis_tenant_cache_total` | `result`: `hit`, `miss`, `stale`, `unavailable`, `busy` | control-plane cache lookups (a miss waits for the control plane; stale and unavailable are answers while it fails; busy: refused at once, too many lookups in flight) |
//! | `portcullis_reloads_total` | `what`: `tls`, `tenants`; `result`: `ok`, `error` | configuration reloads |
//! | `portcullis_rate_limit_total` | `decision`: `allowed`, `limited`, `shadow_limited` (passed in shadow mode), `store_error_open`, `store_error_closed` | rate-limit checks that reached the store |

/// The request span's name.
pub const SPAN_NAME: &str = "portcullis";

/// The fields the request span declares (see the [module docs](self)).
pub const SPAN_FIELDS: [&str; 7] = [
    "source",
    "principal",
    "bearer",
    "tenant",
    "key",
    "decision",
    "reason",
];

/// Records `value` as `field` of the current span (feature `tracing`); a
/// field the span does not declare is ignored.
#[inline]
pub fn record(field: &'static str, value: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record(field, tracing::field::display(value));
        }
    }
    let _ = (field, value);
}

/// Records `identity` as the request's `source` and `principal`.
#[inline]
pub fn identity(identity: &crate::ClientIdentity) {
    #[cfg(feature = "tracing")]
    if !tracing::Span::current().is_disabled() {
        record("source", &identity.source().as_str());
        match (identity.spiffe_id(), identity.common_name()) {
            (Some(spiffe), _) => record("principal", &spiffe.as_str()),
            (None, Some(cn)) => record("principal", &cn),
            (None, None) => record("principal", &identity.fingerprint_sha256_hex()),
        }
    }
    let _ = identity;
}

/// Records a bearer token's digest (its first 16 hex digits: enough to
/// tell callers apart in logs, and not the digest a resolver keys on).
#[inline]
pub fn bearer(digest: &crate::BearerDigest) {
    #[cfg(feature = "tracing")]
    if !tracing::Span::current().is_disabled() {
        let hex = digest.to_hex();
        record("bearer", &&hex[..16]);
    }
    let _ = digest;
}

/// Records a refusal by `layer` for `reason` in the span and the counters.
#[inline]
pub fn rejected(layer: &'static str, reason: &'static str) {
    record("decision", &"refused");
    record("reason", &reason);
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_rejections_total", "layer" => layer, "reason" => reason)
        .increment(1);
    let _ = layer;
}

/// Counts `lines` header lines `layer` removed.
#[inline]
pub fn stripped(layer: &'static str, lines: usize) {
    #[cfg(feature = "metrics")]
    if lines > 0 {
        metrics::counter!("portcullis_headers_stripped_total", "layer" => layer)
            .increment(lines as u64);
    }
    let _ = (layer, lines);
}

/// Counts a control-plane cache lookup: `hit`, `miss` or `stale`.
#[inline]
pub fn tenant_cache(result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_tenant_cache_total", "result" => result).increment(1);
    let _ = result;
}

/// Counts a reload of `what` (`tls`, `tenants`), good or refused.
#[inline]
pub fn reloaded(what: &'static str, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_reloads_total", "what" => what, "result" => if ok { "ok" } else { "error" })
        .increment(1);
    let _ = (what, ok);
}

/// Counts a rate-limit decision (see the [module docs](self)).
#[inline]
pub fn rate_limit(decision: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_rate_limit_total", "decision" => decision).increment(1);
    let _ = decision;
}
