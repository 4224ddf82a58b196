//! The `/whoami` contract every example serves: what the application saw.
//! (Shared by the examples through `#[path]`; not an example itself.)

use http::{HeaderMap, HeaderValue, Request, Response};
use portcullis::identity::{ClientIdentity, ClientIp, Tenant};
use portcullis::rate_limit::RateLimitDecision;
use serde_json::{Value, json};

/// `{"identity", "client_ip", "tenant", "rate_limit", "headers"}` for `req`,
/// as a JSON response.
pub(crate) fn whoami<B>(req: &Request<B>) -> Response<String> {
    let extensions = req.extensions();
    let identity = extensions.get::<ClientIdentity>().map(|id| {
        json!({
            "source": id.source().as_str(),
            "subject": id.subject(),
            "common_name": id.common_name(),
            "spiffe_id": id.spiffe_id().map(|s| s.as_str()),
            // Unknown when a proxy forwarded only a SHA-1 fingerprint.
            "fingerprint_sha256": id
                .known_fingerprint_sha256()
                .map(|digest| portcullis::identity::hex::encode(&digest)),
            "dns_names": id.dns_names(),
            "uris": id.uris(),
        })
    });
    let tenant = extensions
        .get::<Tenant>()
        .map(|t| json!({"id": t.id(), "caller": t.caller()}));
    let rate_limit = extensions.get::<RateLimitDecision>().map(|d| {
        // Whole seconds, rounded up, as in the RateLimit header.
        let reset = portcullis::identity::response::ceil_secs(d.reset);
        json!({"limit": d.limit, "remaining": d.remaining, "reset": reset})
    });
    let body = json!({
        "identity": identity,
        "client_ip": extensions.get::<ClientIp>().map(|ip| ip.0.to_string()),
        "tenant": tenant,
        "rate_limit": rate_limit,
        "headers": headers_as_received(req.headers()),
    });
    let mut res = Response::new(format!("{body}\n"));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Every header exactly as received: lower-case name → every value.
fn headers_as_received(headers: &HeaderMap) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        out.insert(name.as_str().to_owned(), Value::Array(values));
    }
    out
}

/// `/internal/usage`, behind the internal-route guard.
#[allow(dead_code)]
pub(crate) fn usage() -> Response<String> {
    let mut res = Response::new("{\"usage\": \"ok\"}\n".to_owned());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
