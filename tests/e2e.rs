//! The whole stack from `portcullis::from_env_with`, on the TLS listener,
//! driven by real curl: the scenarios the design names, end to end.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use portcullis::client_cert::{TlsAcceptor, TlsListener, serve};
use portcullis::identity::{BearerDigest, ClientIdentity, Tenant};
use portcullis::rate_limit::RateLimitDecision;
use portcullis_test_support::{TempDir, curl, interop_binary, pki};
use tower::ServiceBuilder;

const TOKEN: &str = "sk-e2e-acme-0123456789";

/// What the application saw, one line: identity CN, tenant, the tenant
/// header values, the forwarded-certificate header, the rate-limit key.
async fn app(req: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
    let ext = req.extensions();
    let header = |name: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    Ok(Response::new(format!(
        "cn={} tenant={} stamped={} xfcc={} key={}",
        ext.get::<ClientIdentity>()
            .and_then(ClientIdentity::common_name)
            .unwrap_or("-"),
        ext.get::<Tenant>().map_or("-", Tenant::id),
        header("x-llm-router-tenant"),
        header("x-forwarded-client-cert"),
        ext.get::<RateLimitDecision>().map_or("-", |d| d.key_source),
    )))
}

struct Served {
    addr: SocketAddr,
    dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The stack the environment `extra` (plus TLS and a tenants file)
/// describes, served with `/internal/*` behind the guard.
async fn serve_stack(extra: &[(&str, &str)]) -> Served {
    let dir = TempDir::new("e2e");
    let pki = pki();
    let digest = BearerDigest::from_headers(&{
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        h
    })
    .unwrap()
    .unwrap();
    let mut vars: Vec<(String, String)> = vec![
        ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
        ("TLS_CERT".into(), dir.write("server.pem", pki.end().chain_pem())),
        ("TLS_KEY".into(), dir.write("server.key", pki.end().key_pem())),
        ("TLS_CLIENT_CA".into(), dir.write("ca.pem", pki.ca().cert_pem())),
        ("TLS_CLIENT_AUTH".into(), "optional".into()),
        (
            "TENANTS_FILE".into(),
            dir.write(
                "tenants.json",
                format!(
                    r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "consumer": "billing", "active": true, "rate_per_min": 60, "burst": 2}}]}}"#,
                    digest.to_hex()
                ),
            ),
        ),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    let stack = portcullis::from_env_with(|var| {
        vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    })
    .await
    .unwrap();
    let listener = TlsListener::bind(
        stack.listen_addr(),
        TlsAcceptor::new(stack.tls().unwrap().tls.build().unwrap()),
    )
    .await
    .unwrap();
    let addr = listener.local_addr();
    // /internal/* goes to the guard, beside the stack (which strips the
    // secret header from everything it handles); the rest through it.
    let guarded = ServiceBuilder::new()
        .layer(stack.internal_guard())
        .service_fn(app);
    let public = ServiceBuilder::new().layer(stack.layer()).service_fn(app);
    let service = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (guarded, public) = (guarded.clone(), public.clone());
        async move {
            if req.uri().path().starts_with("/internal/") {
                tower::ServiceExt::oneshot(guarded, req)
                    .await
                    .map(|res| res.map(http_body_util::Either::Left))
            } else {
                tower::ServiceExt::oneshot(public, req)
                    .await
                    .map(|res| res.map(http_body_util::Either::Right))
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(listener, service, async move {
        let _ = stopped.await;
    }));
    Served {
        addr,
        dir,
        stop: Some(stop),
    }
}

/// curl over TLS (h2 or http/1.1) with the test client certificate unless
/// `no_cert`, and `headers`.
async fn get(
    served: &Served,
    path: &str,
    headers: &[&str],
    no_cert: bool,
    h2: bool,
) -> (String, String) {
    let pki = pki();
    let mut args = vec![
        "--cacert".to_owned(),
        served.dir.write("client-ca.pem", pki.ca().cert_pem()),
        if h2 { "--http2" } else { "--http1.1" }.to_owned(),
    ];
    if !no_cert {
        args.extend([
            "--cert".to_owned(),
            served.dir.write("client.pem", pki.client().chain_pem()),
            "--key".to_owned(),
            served.dir.write("client.key", pki.client().key_pem()),
        ]);
    }
    for header in headers {
        args.extend(["-H".to_owned(), (*header).to_owned()]);
    }
    args.push(format!("https://localhost:{}{path}", served.addr.port()));
    args.extend([
        "--resolve".to_owned(),
        format!("localhost:{}:127.0.0.1", served.addr.port()),
    ]);
    let out = tokio::task::spawn_blocking(move || curl(&args))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "curl failed: {}", out.stderr);
    (out.status, out.body)
}

#[tokio::test]
async fn mtls_principal_keys_the_bucket_and_the_bearer_is_still_required() {
    if interop_binary("curl").is_none() {
        return;
    }
    let served = serve_stack(&[]).await;
    let bearer = format!("authorization: Bearer {TOKEN}");
    for h2 in [true, false] {
        // Bearer still required with mTLS (AUTH_POLICY defaults to bearer).
        let (status, _) = get(&served, "/", &[], false, h2).await;
        assert_eq!(status, "401");
    }
    let (status, body) = get(&served, "/", &[&bearer], false, true).await;
    assert_eq!(status, "200");
    assert_eq!(
        body,
        "cn=client.example.com tenant=acme stamped=acme xfcc= key=cn"
    );
    let (status, _) = get(&served, "/", &[&bearer], false, false).await;
    assert_eq!(status, "200");
    // The plan's burst (2) is spent on the CN's bucket.
    let (status, _) = get(&served, "/", &[&bearer], false, true).await;
    assert_eq!(status, "429");
    // Without the certificate the bearer names the bucket: a fresh one.
    let (status, body) = get(&served, "/", &[&bearer], true, true).await;
    assert_eq!(status, "200");
    assert_eq!(body, "cn=- tenant=acme stamped=acme xfcc= key=bearer");
}

#[tokio::test]
async fn forgeries_from_an_untrusted_peer_never_reach_the_app() {
    if interop_binary("curl").is_none() {
        return;
    }
    let served = serve_stack(&[]).await;
    let bearer = format!("authorization: Bearer {TOKEN}");
    let forged_xfcc = format!(
        "x-forwarded-client-cert: Hash={};Subject=\"CN=admin\"",
        "ab".repeat(32)
    );
    let (status, body) = get(
        &served,
        "/",
        &[
            &bearer,
            "x-llm-router-tenant: someone-else",
            "X_LLM_Router_Tenant: someone-else",
            &forged_xfcc,
        ],
        true,
        true,
    )
    .await;
    assert_eq!(status, "200");
    assert_eq!(body, "cn=- tenant=acme stamped=acme xfcc= key=bearer");
    // A Connection header nominating a protected header is refused.
    let (status, _) = get(
        &served,
        "/",
        &[&bearer, "connection: x-llm-router-tenant"],
        true,
        false,
    )
    .await;
    assert_eq!(status, "400");
}

#[tokio::test]
async fn internal_routes_are_hidden_without_a_secret_and_guarded_with_one() {
    if interop_binary("curl").is_none() {
        return;
    }
    let bearer = format!("authorization: Bearer {TOKEN}");
    let hidden = serve_stack(&[("RATE_LIMIT_PER_MIN", "600")]).await;
    let (status, _) = get(
        &hidden,
        "/internal/usage",
        &[&bearer, "x-internal-secret: guess"],
        true,
        true,
    )
    .await;
    assert_eq!(status, "404");
    let guarded = serve_stack(&[
        ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
        ("CONTROL_PLANE_URL", "http://127.0.0.1:9/"),
    ])
    .await;
    let (status, _) = get(
        &guarded,
        "/internal/usage",
        &[&bearer, "x-internal-secret: guess"],
        true,
        true,
    )
    .await;
    assert_eq!(status, "403");
    let (status, body) = get(
        &guarded,
        "/internal/usage",
        &[&bearer, "x-internal-secret: s3cret"],
        true,
        true,
    )
    .await;
    assert_eq!(status, "200", "{body}");
}
