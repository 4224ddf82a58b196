//! The whole stack from `portcullis::from_env`, served on loopback the
//! way the examples serve it, and the application behind it reporting what
//! it received. Shared by the end-to-end tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use portcullis::client_cert::{TlsAcceptor, TlsListener, serve};
use portcullis::identity::{BearerDigest, ClientIdentity, PeerAddr, Tenant};
use portcullis::rate_limit::RateLimitDecision;
use portcullis_test_support::{TempDir, curl, pki};
use tower::ServiceBuilder;

/// The bearer the tenants file knows, for tenant `acme`.
pub const TOKEN: &str = "sk-e2e-acme-0123456789";

/// `Authorization` for [`TOKEN`], as a curl `-H` argument.
pub fn bearer() -> String {
    format!("authorization: Bearer {TOKEN}")
}

/// What the application saw, one line: identity CN, tenant, the tenant
/// header values, the forwarded-certificate headers, the rate-limit key.
async fn app(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
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
        "cn={} tenant={} stamped={} xfcc={}{} key={}",
        ext.get::<ClientIdentity>()
            .and_then(ClientIdentity::common_name)
            .unwrap_or("-"),
        ext.get::<Tenant>().map_or("-", Tenant::id),
        header("x-llm-router-tenant"),
        header("x-forwarded-client-cert"),
        header("x-client-cert"),
        ext.get::<RateLimitDecision>().map_or("-", |d| d.key_source),
    )))
}

/// A served stack, stopped when dropped; `dir` holds its files.
pub struct Served {
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// Served over TLS (else plaintext, as behind a proxy).
    pub tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The tenants file that knows [`TOKEN`] as `acme` (60/min, burst 2),
/// plus `tenants` (the operator's per-tenant switches, JSON).
pub fn tenants_json(tenants: &str) -> String {
    format!(
        r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "consumer": "billing", "active": true, "rate_per_min": 60, "burst": 2}}], "tenants": [{tenants}]}}"#,
        BearerDigest::of_token(TOKEN).to_hex()
    )
}

/// The stack the environment `extra` describes over a base of TLS with
/// optional client certificates and the tenants file; a variable set to
/// `""` in `extra` removes it from the base. `/internal/*` goes to the
/// guard, beside the stack; everything else through it.
pub async fn serve_stack(extra: &[(&str, &str)]) -> Served {
    let dir = TempDir::new("e2e");
    let pki = pki();
    let mut vars: Vec<(String, String)> = vec![
        ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
        (
            "TLS_CERT".into(),
            dir.write("server.pem", pki.end().chain_pem()),
        ),
        (
            "TLS_KEY".into(),
            dir.write("server.key", pki.end().key_pem()),
        ),
        (
            "TLS_CLIENT_CA".into(),
            dir.write("ca.pem", pki.ca().cert_pem()),
        ),
        ("TLS_CLIENT_AUTH".into(), "optional".into()),
        (
            "TENANTS_FILE".into(),
            dir.write("tenants.json", tenants_json("")),
        ),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    let stack = portcullis::from_env(&Env::from_fn(|var| {
        vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }))
    .await
    .unwrap();
    let guarded = ServiceBuilder::new()
        .layer(stack.internal_guard())
        .service_fn(app);
    let public = ServiceBuilder::new().layer(stack.layer()).service_fn(app);
    let service = tower::service_fn(move |req: Request<Incoming>| {
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let addr = match stack.tls() {
        Some(tls) => {
            let listener = TlsListener::bind(
                stack.listen_addr(),
                TlsAcceptor::new(tls.tls.build().unwrap()),
            )
            .await
            .unwrap();
            let addr = listener.local_addr();
            tokio::spawn(serve(listener, service, async move {
                let _ = stopped.await;
            }));
            addr
        }
        None => {
            // Plaintext, as behind a proxy: each request carries its peer.
            let listener = tokio::net::TcpListener::bind(stack.listen_addr())
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let accept = portcullis_test_support::serve_plain(listener, move |peer| {
                ServiceBuilder::new()
                    .map_request(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(PeerAddr(peer));
                        req
                    })
                    .service(service.clone())
            });
            tokio::spawn(async move {
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            addr
        }
    };
    Served {
        addr,
        dir,
        tls: stack.tls().is_some(),
        stop: Some(stop),
    }
}

/// How curl reaches a served stack.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub path: &'a str,
    pub headers: &'a [&'a str],
    /// Present the test client certificate.
    pub cert: bool,
    pub h2: bool,
}

impl Call<'_> {
    /// `GET /` with no headers, a certificate, over h2.
    pub const fn root() -> Call<'static> {
        Call {
            path: "/",
            headers: &[],
            cert: true,
            h2: true,
        }
    }
}

/// curl against `served` (TLS when it was served with TLS): the status and
/// body.
pub async fn get(served: &Served, call: Call<'_>) -> (String, String) {
    let pki = pki();
    let tls = served.tls;
    let mut args = vec![
        if call.h2 {
            if tls {
                "--http2"
            } else {
                "--http2-prior-knowledge"
            }
        } else {
            "--http1.1"
        }
        .to_owned(),
    ];
    if tls {
        args.extend([
            "--cacert".to_owned(),
            served.dir.write("client-ca.pem", pki.ca().cert_pem()),
        ]);
        if call.cert {
            args.extend([
                "--cert".to_owned(),
                served.dir.write("client.pem", pki.client().chain_pem()),
                "--key".to_owned(),
                served.dir.write("client.key", pki.client().key_pem()),
            ]);
        }
    }
    for header in call.headers {
        args.extend(["-H".to_owned(), (*header).to_owned()]);
    }
    let scheme = if tls { "https" } else { "http" };
    args.push(format!(
        "{scheme}://localhost:{}{}",
        served.addr.port(),
        call.path
    ));
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
