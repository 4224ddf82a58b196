//! A real control plane over TLS on loopback, serving the documented
//! contract, with switches for the failures the cache must ride out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_client_cert::{ServerTls, TlsAcceptor, TlsListener, serve};
use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
use portcullis_tenant::{
    CachePolicy, Chain, ControlPlane, ControlPlaneResolver, MemoryStore, Principal, Resolution,
    TenantLayer, TenantResolver,
};
use portcullis_test_support::pki;
use tower::service_fn;

use crate::support::{Observed, request, run};

const SECRET: &str = "cp-secret-123";

/// What the control plane does now.
#[derive(Default)]
struct Behaviour {
    /// sha256 hex → answer JSON.
    keys: HashMap<String, String>,
    /// Answer every call with this status instead.
    status: Option<StatusCode>,
    /// Wait this long before answering.
    delay: Duration,
    env: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct ControlPlaneServer {
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<AtomicUsize>,
}

impl ControlPlaneServer {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_key(&self, token: &str, answer: &str) {
        let hex = BearerDigest::of_token(token).to_hex();
        self.behaviour
            .lock()
            .unwrap()
            .keys
            .insert(hex, answer.to_owned());
    }

    fn set_status(&self, status: Option<StatusCode>) {
        self.behaviour.lock().unwrap().status = status;
    }

    async fn answer(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (status, delay, body) = {
            let b = self.behaviour.lock().unwrap();
            let secret_ok = req
                .headers()
                .get("x-internal-secret")
                .is_some_and(|v| v == SECRET);
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            let (status, body) = if let Some(status) = b.status {
                (status, String::new())
            } else if !secret_ok {
                (StatusCode::FORBIDDEN, "wrong secret".to_owned())
            } else if path == "/internal/keys/resolve" {
                match query
                    .strip_prefix("sha256=")
                    .and_then(|hex| b.keys.get(hex))
                {
                    Some(answer) => (StatusCode::OK, answer.clone()),
                    None => (StatusCode::NOT_FOUND, String::new()),
                }
            } else if path == "/internal/tenants/acme/provider-env" {
                let env: Vec<String> = b
                    .env
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": \"{v}\""))
                    .collect();
                (
                    StatusCode::OK,
                    format!("{{\"env\": {{{}}}}}", env.join(",")),
                )
            } else {
                (StatusCode::NOT_FOUND, String::new())
            };
            (status, b.delay, body)
        };
        tokio::time::sleep(delay).await;
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        Ok(res)
    }

    /// Serves on loopback over TLS with the test PKI's server certificate.
    async fn start(&self) -> SocketAddr {
        let end = pki().end();
        let tls = ServerTls::from_pem(end.chain_pem().as_bytes(), end.key_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(tls))
            .await
            .unwrap();
        let addr = listener.local_addr();
        let this = self.clone();
        let service = service_fn(move |req| this.clone().answer(req));
        tokio::spawn(serve(listener, service, std::future::pending()));
        addr
    }
}

fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pki().ca().der().to_vec(),
        ))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Short durations, so the test runs in real time against real sockets.
fn policy() -> CachePolicy {
    CachePolicy {
        positive_ttl: Duration::from_millis(300),
        negative_ttl: Duration::from_millis(200),
        stale_grace: Duration::from_millis(1200),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        capacity: 100,
        ..CachePolicy::default()
    }
}

async fn resolver(cp: &ControlPlaneServer, secret: &str) -> ControlPlaneResolver {
    let addr = cp.start().await;
    let control_plane = ControlPlane::new(&format!("https://localhost:{}", addr.port()), secret)
        .unwrap()
        .with_tls(client_tls());
    ControlPlaneResolver::with_policy(control_plane, policy()).unwrap()
}

fn bearer(token: &str) -> Principal {
    Principal::Bearer(BearerDigest::of_token(token))
}

const ACME: &str = r#"{"active": true, "consumer": "billing", "tenant_id": "acme", "rate_per_min": 600, "burst": 20}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_negative_caching() {
    let cp = ControlPlaneServer::default();
    cp.set_key("sk-1", ACME);
    let resolver = resolver(&cp, SECRET).await;
    let Ok(Resolution::Active(tenant)) = resolver.resolve(&bearer("sk-1")).await else {
        panic!("not resolved")
    };
    assert_eq!((tenant.id(), tenant.caller()), ("acme", Some("billing")));
    assert_eq!(tenant.quota().map(|q| q.rate()), Some(600));
    for _ in 0..10 {
        resolver.resolve(&bearer("sk-1")).await.unwrap();
    }
    assert_eq!(cp.calls(), 1);
    // Unknown: cached too, for less long.
    for _ in 0..5 {
        assert_eq!(
            resolver.resolve(&bearer("sk-x")).await,
            Ok(Resolution::Unknown)
        );
    }
    assert_eq!(cp.calls(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        resolver.resolve(&bearer("sk-x")).await,
        Ok(Resolution::Unknown)
    );
    assert_eq!(cp.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_make_one_call() {
    let cp = ControlPlaneServer::default();
    cp.set_key("sk-1", ACME);
    cp.behaviour.lock().unwrap().delay = Duration::from_millis(150);
    let layer = TenantLayer::new(resolver(&cp, SECRET).await);
    let mut requests = Vec::new();
    for _ in 0..100 {
        let layer = layer.clone();
        requests.push(tokio::spawn(async move {
            run(&layer, request(&[("authorization", "Bearer sk-1")]))
                .await
                .status
        }));
    }
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(cp.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_within_grace_is_stale_past_grace_is_503_and_404_denies_at_once() {
    let cp = ControlPlaneServer::default();
    cp.set_key("sk-1", ACME);
    let layer = TenantLayer::new(resolver(&cp, SECRET).await);
    let call = || run(&layer, request(&[("authorization", "Bearer sk-1")]));
    assert_eq!(call().await.status, StatusCode::OK);
    cp.set_status(Some(StatusCode::SERVICE_UNAVAILABLE));
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Expired, control plane down: the last answer stands in...
    assert_eq!(call().await.stamped("x-llm-router-tenant"), ["acme"]);
    let calls = cp.calls();
    // ...without a call per request while backing off.
    for _ in 0..20 {
        assert_eq!(call().await.status, StatusCode::OK);
    }
    assert!(cp.calls() <= calls + 1, "{} calls", cp.calls() - calls);
    // Past the grace: 503 with Retry-After.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let out = call().await;
    assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE, "{}", out.body);
    assert!(
        out.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(!out.body.contains("sk-1"));

    // Fresh again, then down, then the key is revoked: the 404 wins at once.
    cp.set_status(None);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(call().await.status, StatusCode::OK);
    cp.set_status(Some(StatusCode::BAD_GATEWAY));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(call().await.status, StatusCode::OK, "stale within grace");
    cp.set_status(None);
    cp.behaviour.lock().unwrap().keys.clear();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(call().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_kill_switch_wins_over_the_control_plane() {
    let cp = ControlPlaneServer::default();
    cp.set_key("sk-1", ACME);
    let local = MemoryStore::new();
    local.set_tenant_status("acme", TenantStatus::Inactive);
    local.insert(
        bearer("sk-local"),
        Tenant::new("local-co", TenantStatus::Active),
    );
    let layer = TenantLayer::new(Chain::new([local]).with_remote(resolver(&cp, SECRET).await));
    let out = run(&layer, request(&[("authorization", "Bearer sk-1")])).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    // A local hit never asks the control plane.
    let calls = cp.calls();
    let out = run(&layer, request(&[("authorization", "Bearer sk-local")])).await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["local-co"]);
    assert_eq!(cp.calls(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_reported_as_the_control_planes_403() {
    let cp = ControlPlaneServer::default();
    cp.set_key("sk-1", ACME);
    let resolver = resolver(&cp, "not-the-secret").await;
    let err = resolver.resolve(&bearer("sk-1")).await.unwrap_err();
    assert_eq!(
        err.reason(),
        "control plane refused the internal secret (403 Forbidden): check that both sides hold the same one"
    );
    assert!(!err.reason().contains("not-the-secret"));
    let out = run(
        &TenantLayer::new(resolver),
        request(&[("authorization", "Bearer sk-1")]),
    )
    .await;
    assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_env_is_allow_listed_cached_and_fails_soft() {
    let cp = ControlPlaneServer::default();
    cp.behaviour.lock().unwrap().env = HashMap::from([
        ("MODEL".to_owned(), "large".to_owned()),
        ("AWS_SECRET".to_owned(), "x".to_owned()),
    ]);
    let resolver = resolver(&cp, SECRET).await.with_env_allowlist(["MODEL"]);
    let defaults = HashMap::from([("MODEL".to_owned(), "small".to_owned())]);
    let env = resolver.provider_env("acme", &defaults).await;
    assert_eq!(
        *env,
        HashMap::from([("MODEL".to_owned(), "large".to_owned())])
    );
    resolver.provider_env("acme", &defaults).await;
    assert_eq!(cp.calls(), 1);
    // Another tenant, with the control plane failing: the defaults.
    cp.set_status(Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(*resolver.provider_env("globex", &defaults).await, defaults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_control_plane_is_unavailable_not_unknown() {
    let port = portcullis_test_support::free_port();
    let control_plane = ControlPlane::new(&format!("http://127.0.0.1:{port}"), SECRET)
        .unwrap()
        .connect_timeout(Duration::from_millis(500));
    let resolver = ControlPlaneResolver::with_policy(control_plane, policy()).unwrap();
    let err = resolver.resolve(&bearer("sk-1")).await.unwrap_err();
    assert!(
        err.reason()
            .starts_with("cannot connect to the control plane at 127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_plan_from_the_control_plane_is_refused_as_the_tenants_file_refuses_it() {
    let cp = ControlPlaneServer::default();
    // A rate with no burst: the tenants file refuses it; so does this.
    cp.set_key(
        "sk-half",
        r#"{"active": true, "tenant_id": "acme", "rate_per_min": 600}"#,
    );
    let resolver = resolver(&cp, SECRET).await;
    let err = resolver.resolve(&bearer("sk-half")).await.unwrap_err();
    assert_eq!(
        err.reason(),
        "control plane sent a bad resolve answer: give rate_per_min and burst together, or neither"
    );
    // Never read as "no limit".
    let out = run(
        &TenantLayer::new(resolver),
        request(&[("authorization", "Bearer sk-half")]),
    )
    .await;
    assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE);
}
