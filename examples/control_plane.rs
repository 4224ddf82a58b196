//! A complete control plane for `ControlPlaneResolver`, serving the
//! contract documented in `portcullis::tenant::control_plane` from a
//! tenants file:
//!
//! - `GET /internal/keys/resolve?sha256=<hex>` (or a certificate principal
//!   by its kind: `?spiffe_id=`, `?cn=` or `?fingerprint_sha256=`):
//!   `200 {"active", "consumer", "tenant_id", "rate_per_min", "burst"}`, or
//!   `404`.
//! - `GET /internal/tenants/<id>/provider-env`: `200 {"env": {...}}` from
//!   `PROVIDER_ENV_FILE` (`{"<tenant id>": {"NAME": "value"}}`), or `404`.
//!
//! Both behind `InternalGuardLayer`: a missing or wrong `x-internal-secret`
//! is `403`.
//!
//! ```text
//! CONTROL_PLANE_INTERNAL_SECRET=s3cret TENANTS_FILE=tenants.json \
//!     cargo run --example control_plane
//! curl -H 'x-internal-secret: s3cret' \
//!     "http://127.0.0.1:8900/internal/keys/resolve?sha256=$(printf %s sk-demo | sha256sum | cut -c1-64)"
//! ```
//!
//! `LISTEN_ADDR` defaults to `127.0.0.1:8900`; with `TLS_CERT` and
//! `TLS_KEY` set it serves HTTPS.

use portcullis::identity::env::Env;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis::client_cert::{ServerTls, TlsAcceptor, TlsListener, serve, serve_tcp};
use portcullis::identity::BearerDigest;
use portcullis::tenant::{InternalGuardLayer, MemoryStore, Principal, Resolution, TenantResolver};
use serde_json::json;
use tower::{ServiceBuilder, service_fn};

struct State {
    store: MemoryStore,
    env: HashMap<String, HashMap<String, String>>,
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// Percent-decoding for a certificate principal's query value.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path == "/internal/keys/resolve" {
        let query = req.uri().query().unwrap_or("");
        // Each kind of principal is a parameter of its own: a CN that reads
        // like a SPIFFE ID is still only a CN.
        let principal = query.split_once('=').and_then(|(kind, value)| {
            let value = decode(value)?;
            Some(match kind {
                "sha256" => Principal::Bearer(BearerDigest::from_hex(&value).ok()?),
                "spiffe_id" => Principal::SpiffeId(value.into()),
                "cn" => Principal::CommonName(value.into()),
                "fingerprint_sha256" => Principal::Fingerprint(value.to_ascii_lowercase().into()),
                _ => return None,
            })
        });
        let Some(principal) = principal else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "give one of sha256, spiffe_id, cn or fingerprint_sha256"})
                    .to_string(),
            ));
        };
        let resolution = state
            .store
            .resolve(&principal)
            .await
            .unwrap_or(Resolution::Unknown);
        return Ok(match resolution.tenant() {
            None => reply(
                StatusCode::NOT_FOUND,
                json!({"error": "unknown key"}).to_string(),
            ),
            Some(tenant) => reply(
                StatusCode::OK,
                json!({
                    "active": matches!(resolution, Resolution::Active(_)),
                    "consumer": tenant.caller(),
                    "tenant_id": tenant.id(),
                    "rate_per_min": tenant.quota().map(|q| q.rate()),
                    "burst": tenant.quota().map(|q| q.burst()),
                })
                .to_string(),
            ),
        });
    }
    if let Some(tenant) = path
        .strip_prefix("/internal/tenants/")
        .and_then(|rest| rest.strip_suffix("/provider-env"))
    {
        return Ok(match state.env.get(tenant) {
            Some(env) => reply(StatusCode::OK, json!({ "env": env }).to_string()),
            None => reply(
                StatusCode::NOT_FOUND,
                json!({"error": "unknown tenant"}).to_string(),
            ),
        });
    }
    Ok(reply(
        StatusCode::NOT_FOUND,
        json!({"error": "not found"}).to_string(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("CONTROL_PLANE_INTERNAL_SECRET").map_err(
        |_| "set CONTROL_PLANE_INTERNAL_SECRET: the secret callers send in x-internal-secret",
    )?;
    let tenants_file = std::env::var("TENANTS_FILE")
        .map_err(|_| "set TENANTS_FILE to the tenants JSON this control plane serves")?;
    let text = std::fs::read_to_string(&tenants_file)
        .map_err(|e| format!("TENANTS_FILE={tenants_file}: {e}"))?;
    let store = MemoryStore::from_tenants_json(&tenants_file, &text)?;
    let env = match std::env::var("PROVIDER_ENV_FILE") {
        Err(_) => HashMap::new(),
        Ok(path) => serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| format!("PROVIDER_ENV_FILE={path}: {e}"))?)
            .map_err(|e| format!("PROVIDER_ENV_FILE={path}: {e}; expected {{\"<tenant id>\": {{\"NAME\": \"value\"}}}}"))?,
    };
    println!("{} keys from {tenants_file}", store.len());
    let state = Arc::new(State { store, env });
    let service = ServiceBuilder::new()
        .layer(InternalGuardLayer::new(Some(&secret)))
        .service(service_fn(move |req| answer(state.clone(), req)));

    let addr: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8900".to_owned())
        .parse()
        .map_err(|e| format!("LISTEN_ADDR: {e}"))?;
    if let Some(env) = ServerTls::from_env(&Env::process())? {
        let listener = TlsListener::bind(addr, TlsAcceptor::new(env.tls.build()?)).await?;
        println!("control plane on https://{}", listener.local_addr());
        serve(listener, service, std::future::pending()).await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("control plane on http://{}", listener.local_addr()?);
    serve_tcp(listener, service, std::future::pending()).await;
    Ok(())
}
