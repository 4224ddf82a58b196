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
//! A layer used alone, or layers assembled by hand, are observable the
//! same way: the first of them to see a request outside a `portcullis`
//! span opens one ([`in_request_span`]), as a child of whatever span is
//! current (tower-http's `TraceLayer` request span, say), and the layers
//! after it record into it. With the whole stack, the client-certificate
//! layer, outermost, opens it.
//!
//! # Metrics (feature `metrics`)
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so any
//! exporter (Prometheus, StatsD, ...) the application installs sees them.
//! [`METRICS`] lists every one with its labels and help text, and
//! [`describe`] hands those to the installed recorder (the facade's
//! `METRICS_ADDR` endpoint calls it):
//!
//! | Name | Kind | Labels | What |
//! |---|---|---|---|
//! | `portcullis_headers_stripped_total` | counter | `layer` | header lines removed because their sender may not set them |
//! | `portcullis_rejections_total` | counter | `layer`, `reason` | requests refused |
//! | `portcullis_tenant_cache_total` | counter | `result`: `hit`, `miss`, `stale`, `unavailable`, `busy` | control-plane cache lookups (a miss waits for the control plane; stale and unavailable are answers while it fails; busy: refused at once, too many lookups in flight) |
//! | `portcullis_reloads_total` | counter | `what`: `tls`, `tenants`; `result`: `ok`, `error` | configuration reloads |
//! | `portcullis_rate_limit_total` | counter | `decision`: `allowed`, `limited`, `shadow_limited` (passed in shadow mode), `store_error_open`, `store_error_closed` | rate-limit checks that reached the store |
//! | `portcullis_handshake_failures_total` | counter | `reason` (see [`handshake_failed`]) | TLS handshakes, and PROXY headers before them, that failed |
//! | `portcullis_internal_refusals_total` | counter | `reason`: `not_found`, `internal_secret_wrong` | requests to `/internal/*` routes the guard turned away |
//! | `portcullis_control_plane_duration_seconds` | histogram | `result`: `ok`, `error` | control-plane calls, from the request sent to the answer read |
//! | `portcullis_redis_duration_seconds` | histogram | `result`: `ok`, `error` | rate-limit round trips to Redis |
//! | `portcullis_tenant_cache_entries` | gauge | | principals the control-plane cache holds |
//! | `portcullis_rate_limit_buckets` | gauge | | buckets the in-memory rate limiter holds |
//! | `portcullis_certificate_expiry_days` | gauge | `certificate`: `server`, `client_ca` | days until the served certificate, and the first client CA, expire (negative: expired) |

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

/// One metric: its name, kind, labels and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name, as an exporter shows it.
    pub name: &'static str,
    /// Counter, histogram or gauge.
    pub kind: MetricKind,
    /// The label names (their values are fixed labels, never a key).
    pub labels: &'static [&'static str],
    /// What it measures.
    pub help: &'static str,
}

/// The kind of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// A distribution of durations, in seconds.
    Histogram,
    /// A level, set when sampled.
    Gauge,
}

/// Every metric the layers report (see the [module docs](self)).
pub const METRICS: [Metric; 12] = [
    Metric {
        name: "portcullis_headers_stripped_total",
        kind: MetricKind::Counter,
        labels: &["layer"],
        help: "Header lines removed because their sender may not set them.",
    },
    Metric {
        name: "portcullis_rejections_total",
        kind: MetricKind::Counter,
        labels: &["layer", "reason"],
        help: "Requests refused, by the layer that refused and why.",
    },
    Metric {
        name: "portcullis_tenant_cache_total",
        kind: MetricKind::Counter,
        labels: &["result"],
        help: "Control-plane cache lookups: hit, miss, stale, unavailable or busy.",
    },
    Metric {
        name: "portcullis_reloads_total",
        kind: MetricKind::Counter,
        labels: &["what", "result"],
        help: "Configuration reloads (tls, tenants) that succeeded or kept the last good one.",
    },
    Metric {
        name: "portcullis_rate_limit_total",
        kind: MetricKind::Counter,
        labels: &["decision"],
        help: "Rate-limit checks, by decision.",
    },
    Metric {
        name: "portcullis_handshake_failures_total",
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "TLS handshakes (and PROXY headers before them) that failed, by reason.",
    },
    Metric {
        name: "portcullis_internal_refusals_total",
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "Requests to internal routes the guard turned away.",
    },
    Metric {
        name: "portcullis_control_plane_duration_seconds",
        kind: MetricKind::Histogram,
        labels: &["result"],
        help: "Control-plane calls, from the request sent to the answer read.",
    },
    Metric {
        name: "portcullis_redis_duration_seconds",
        kind: MetricKind::Histogram,
        labels: &["result"],
        help: "Rate-limit round trips to Redis.",
    },
    Metric {
        name: "portcullis_tenant_cache_entries",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Principals the control-plane cache holds.",
    },
    Metric {
        name: "portcullis_rate_limit_buckets",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Buckets the in-memory rate limiter holds.",
    },
    Metric {
        name: "portcullis_certificate_expiry_days",
        kind: MetricKind::Gauge,
        labels: &["certificate"],
        help: "Days until the served certificate (server) and the first client CA (client_ca) expire; negative once expired.",
    },
];

/// Hands every metric's help text and unit to the installed recorder
/// (feature `metrics`; call it after installing an exporter).
pub fn describe() {
    #[cfg(feature = "metrics")]
    for metric in METRICS {
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(metric.name, metrics::Unit::Seconds, metric.help)
            }
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
        }
    }
}

/// Counts a failed TLS handshake, or a connection closed for its PROXY
/// header, by `reason`: `timeout`, `no_certificate`, `unknown_issuer`,
/// `expired`, `revoked`, `bad_certificate`, `alert_received` (the client
/// refused ours), `incompatible` (no common version, cipher or ALPN),
/// `protocol`, `closed` (the peer went away) or `proxy_header`.
#[inline]
pub fn handshake_failed(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_handshake_failures_total", "reason" => reason).increment(1);
    let _ = reason;
}

/// Counts a request the internal-route guard turned away.
#[inline]
pub fn internal_refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_internal_refusals_total", "reason" => reason).increment(1);
    let _ = reason;
}

/// Times a call to a dependency (the control plane, Redis); nothing at
/// all without the `metrics` feature.
#[derive(Debug, Clone, Copy)]
#[must_use = "a timer records when it is finished"]
pub struct CallTimer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl CallTimer {
    /// Starts timing.
    #[inline]
    pub fn start() -> Self {
        CallTimer {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// Records a control-plane call that ended now.
    #[inline]
    pub fn control_plane(self, ok: bool) {
        self.finish("portcullis_control_plane_duration_seconds", ok);
    }

    /// Records a Redis round trip that ended now.
    #[inline]
    pub fn redis(self, ok: bool) {
        self.finish("portcullis_redis_duration_seconds", ok);
    }

    #[inline]
    fn finish(self, name: &'static str, ok: bool) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(name, "result" => if ok { "ok" } else { "error" })
            .record(self.started.elapsed().as_secs_f64());
        let _ = (name, ok);
    }
}

/// Sets the gauges sampled at a scrape: cache entries, buckets.
#[inline]
pub fn levels(tenant_cache_entries: Option<usize>, rate_limit_buckets: Option<usize>) {
    #[cfg(feature = "metrics")]
    {
        if let Some(entries) = tenant_cache_entries {
            metrics::gauge!("portcullis_tenant_cache_entries").set(entries as f64);
        }
        if let Some(buckets) = rate_limit_buckets {
            metrics::gauge!("portcullis_rate_limit_buckets").set(buckets as f64);
        }
    }
    let _ = (tenant_cache_entries, rate_limit_buckets);
}

/// Sets the days until `certificate` (`server`, `client_ca`) expires, as
/// of now, from its `not_after`.
#[inline]
pub fn certificate_expiry(certificate: &'static str, not_after: std::time::SystemTime) {
    #[cfg(feature = "metrics")]
    {
        let days = match not_after.duration_since(std::time::SystemTime::now()) {
            Ok(left) => left.as_secs_f64() / 86_400.0,
            Err(past) => -past.duration().as_secs_f64() / 86_400.0,
        };
        metrics::gauge!("portcullis_certificate_expiry_days", "certificate" => certificate)
            .set(days);
    }
    let _ = (certificate, not_after);
}

/// The request span a layer runs in: one it opened, or none (the request
/// is already inside a `portcullis` span, or nothing listens at DEBUG, or
/// the `tracing` feature is off).
#[cfg(feature = "tracing")]
type SpanSlot = Option<tracing::Span>;
#[cfg(not(feature = "tracing"))]
type SpanSlot = ();

pin_project_lite::pin_project! {
    /// A layer's future, polled inside the request span the layer opened
    /// (see [`in_request_span`]).
    pub struct InSpan<F> {
        #[pin]
        inner: F,
        span: SpanSlot,
    }
}

impl<F: std::future::Future> std::future::Future for InSpan<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        #[cfg(feature = "tracing")]
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        this.inner.poll(cx)
    }
}

impl<F> std::fmt::Debug for InSpan<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InSpan").finish_non_exhaustive()
    }
}

/// Runs a layer's `respond` for `req` inside the request span (feature
/// `tracing`): the current one when it is already a `portcullis` span (an
/// outer layer opened it), else a new `portcullis` span at DEBUG, child
/// of the current span, with `method`, `path` (never the query: it may
/// carry a credential) and the [`SPAN_FIELDS`] empty for the layers to
/// [`record`]. The returned future is polled inside it too.
#[inline]
pub fn in_request_span<B, F>(
    req: http::Request<B>,
    respond: impl FnOnce(http::Request<B>) -> F,
) -> InSpan<F> {
    #[cfg(feature = "tracing")]
    {
        let span = open_request_span(&req);
        let inner = match &span {
            Some(span) => span.in_scope(|| respond(req)),
            None => respond(req),
        };
        InSpan { inner, span }
    }
    #[cfg(not(feature = "tracing"))]
    InSpan {
        inner: respond(req),
        span: (),
    }
}

#[cfg(feature = "tracing")]
fn open_request_span<B>(req: &http::Request<B>) -> Option<tracing::Span> {
    use tracing::field::Empty;
    if !tracing::enabled!(target: "portcullis", tracing::Level::DEBUG) {
        return None;
    }
    let current = tracing::Span::current();
    if current.metadata().is_some_and(|m| m.name() == SPAN_NAME) {
        return None;
    }
    let span = tracing::debug_span!(
        target: "portcullis",
        "portcullis",
        method = %req.method(),
        path = req.uri().path(),
        source = Empty,
        principal = Empty,
        bearer = Empty,
        tenant = Empty,
        key = Empty,
        decision = Empty,
        reason = Empty,
    );
    (!span.is_disabled()).then_some(span)
}
