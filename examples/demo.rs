//! The portcullis demo: no set-up, nothing to configure.
//!
//! It makes a throwaway CA and a client certificate at start, reads the
//! certificate the way the layers do, and resolves the client address of a
//! forwarded request from a trusted proxy and from a stranger. Each step
//! prints what happened; the demo exits 0 when every step behaved as
//! expected and non-zero, naming the step, otherwise.
//!
//! Then it starts the TLS listener with `ClientCertLayer` on loopback and
//! makes real mTLS requests with a rustls client: one with the certificate,
//! whose CN the handler reports, and one without, refused at the handshake.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Last, the same certificate arrives the other way: forwarded by a trusted
//! reverse proxy in Envoy's `x-forwarded-client-cert`, through `XfccLayer`,
//! and the same header from a stranger is removed before the handler runs.
//!
//! Then the whole stack, as `portcullis::from_env` assembles it from the
//! README's variables (here pointed at files the demo wrote): an mTLS call
//! whose CN keys the rate-limit bucket, the same call until `429` with
//! `Retry-After`, and a forged tenant header replaced by the one the key
//! resolves to.

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::net::IpAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::client_cert::{
    ClientAuth, ClientCertLayer, ServerTls, TlsAcceptor, TlsListener, serve,
};
use portcullis::identity::{BearerDigest, ClientIdentity, PeerAddr, ResolvedBy, TrustedProxies};
use portcullis::xfcc::{CertFormat, XfccLayer};
use portcullis_test_support::ThrowawayPki;
use portcullis_test_support::client::{ClientCert, Http, get};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, SanType};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Collects step outcomes so the demo can say exactly which one failed.
#[derive(Default)]
struct Steps {
    failed: Vec<String>,
}

impl Steps {
    fn check(&mut self, step: &str, ok: bool, detail: impl std::fmt::Display) {
        println!("  [{}] {step}: {detail}", if ok { " ok " } else { "FAIL" });
        if !ok {
            self.failed.push(step.to_owned());
        }
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut steps = Steps::default();

    println!("1. A throwaway CA and a client certificate, made now with rcgen");
    let pki = ThrowawayPki::new("Portcullis Demo")?;
    let mut params = CertificateParams::new(vec!["billing.internal.example".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "billing-service");
    params.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/ns/prod/sa/billing".try_into()?,
    ));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = pki.issue(params)?;
    println!(
        "  {} bytes of DER issued by \"Portcullis Demo Intermediate CA\"",
        client.der.len()
    );

    println!("\n2. The ClientIdentity every layer hands to handlers");
    let identity = ClientIdentity::from_der(&client.der)?;
    println!("  subject      {}", identity.subject());
    println!("  issuer       {}", identity.issuer());
    println!("  common name  {:?}", identity.common_name());
    println!("  DNS SANs     {:?}", identity.dns_names());
    println!("  URI SANs     {:?}", identity.uris());
    println!(
        "  SPIFFE ID    {:?}",
        identity.spiffe_id().map(|id| id.as_str())
    );
    println!("  serial       {}", identity.serial_hex());
    println!("  sha-256      {}", identity.fingerprint_sha256_hex());
    steps.check(
        "common name read from the certificate",
        identity.common_name() == Some("billing-service"),
        format!("{:?}", identity.common_name()),
    );
    steps.check(
        "SPIFFE ID from the single URI SAN",
        identity.spiffe_id().map(|id| id.as_str())
            == Some("spiffe://example.org/ns/prod/sa/billing"),
        format!("{:?}", identity.spiffe_id().map(|id| id.to_string())),
    );

    println!("\n3. The client address behind a trusted proxy (TRUSTED_PROXY_CIDRS=10.0.0.0/8)");
    let proxies = TrustedProxies::parse("10.0.0.0/8")?;
    let mut headers = HeaderMap::new();
    // The client forged the left part; our proxy appended what it saw.
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("6.6.6.6, 203.0.113.50"),
    );
    println!("  X-Forwarded-For: 6.6.6.6, 203.0.113.50");
    let via_proxy = proxies.resolve(&headers, IpAddr::from([10, 0, 0, 2]));
    steps.check(
        "from our proxy 10.0.0.2 the rightmost untrusted entry is the client",
        via_proxy.ip() == IpAddr::from([203, 0, 113, 50])
            && via_proxy.by() == ResolvedBy::Forwarded { hops: 1 },
        format!("{} ({:?})", via_proxy.ip(), via_proxy.by()),
    );
    let direct = proxies.resolve(&headers, IpAddr::from([198, 51, 100, 7]));
    steps.check(
        "from a stranger 198.51.100.7 the header is ignored",
        direct.ip() == IpAddr::from([198, 51, 100, 7]) && direct.by() == ResolvedBy::UntrustedPeer,
        format!("{} ({:?})", direct.ip(), direct.by()),
    );

    println!("\n4. A bearer token becomes a digest before anything keys or logs it");
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sk-demo-0123456789"),
    );
    let digest = BearerDigest::from_headers(&headers)?;
    let shown = format!("{digest:?}");
    steps.check(
        "the token never shows, its SHA-256 does",
        digest.is_some() && !shown.contains("sk-demo"),
        shown,
    );

    println!("\n5. A real mTLS request to the TLS listener with ClientCertLayer::new().required()");
    let server_cert = pki.server()?;
    let tls = ServerTls::from_pem(
        server_cert.chain_pem.as_bytes(),
        server_cert.key_pem.as_bytes(),
    )?
    .with_client_ca_pem(pki.ca_pem().as_bytes())?
    .with_client_auth(ClientAuth::Required);
    let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(tls.build()?)).await?;
    let addr = listener.local_addr();
    let app = ServiceBuilder::new()
        .layer(ClientCertLayer::new().required())
        .service_fn(|req: Request<hyper::body::Incoming>| async move {
            // What the handler sees: the identity, however it arrived.
            let cn = req
                .extensions()
                .get::<ClientIdentity>()
                .and_then(|id| id.common_name().map(str::to_owned))
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(cn))))
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    println!(
        "  listening on https://{addr} (TLS 1.2/1.3, h2 and http/1.1, client certificate required)"
    );

    let root = pki.ca_pem();
    let with_cert = ClientCert {
        chain_pem: &client.chain_pem,
        key_pem: &client.key_pem,
    };
    let answer = get(addr, &root, Some(with_cert), Http::H2).await;
    steps.check(
        "with the client certificate over h2, the handler saw its CN",
        answer == Ok((StatusCode::OK, "billing-service".to_owned())),
        format!("{answer:?}"),
    );
    let refused = get(addr, &root, None, Http::H1).await;
    steps.check(
        "without a client certificate the handshake is refused",
        refused
            .as_ref()
            .is_err_and(|e| e.contains("CertificateRequired")),
        format!("{refused:?}"),
    );
    let _ = stop.send(());
    let _ = server.await;

    println!(
        "\n6. Behind a proxy: the certificate forwarded in x-forwarded-client-cert, via XfccLayer"
    );
    let element = format!(
        "By=spiffe://example.org/ns/edge/sa/envoy;Hash={};Cert=\"{}\"",
        identity.fingerprint_sha256_hex(),
        CertFormat::Nginx.encode(&[&client.der])
    );
    println!("  x-forwarded-client-cert: {}...", &element[..72]);
    let mut forwarded = ServiceBuilder::new()
        .layer(XfccLayer::new(proxies.clone()))
        .service_fn(|req: Request<()>| async move {
            let seen = match req.extensions().get::<ClientIdentity>() {
                Some(id) => format!("{} {:?}", id.source().as_str(), id.common_name()),
                None => "no identity".to_owned(),
            };
            let headers = req.headers().len();
            Ok::<_, Infallible>(Response::new(format!("{seen}, {headers} header(s)")))
        });
    for (peer, expected) in [
        (
            "10.0.0.2:40000",
            "forwarded Some(\"billing-service\"), 1 header(s)",
        ),
        ("198.51.100.7:40000", "no identity, 0 header(s)"),
    ] {
        let mut req = Request::builder()
            .header("x-forwarded-client-cert", &element)
            .header("x_forwarded_client_cert", &element)
            .body(())?;
        req.extensions_mut().insert(PeerAddr(peer.parse()?));
        let res = forwarded.ready().await?.call(req).await?;
        let body = res.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        steps.check(
            &format!("from {peer}, the handler saw"),
            body == expected,
            body,
        );
    }

    whole_stack(&mut steps, &pki, &client).await?;

    if steps.failed.is_empty() {
        println!("\nall steps behaved as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\nFAILED steps: {}", steps.failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// Step 7: `portcullis::from_env` over files the demo writes, served on
/// the TLS listener, driven by a rustls client.
async fn whole_stack(
    steps: &mut Steps,
    pki: &ThrowawayPki,
    client: &portcullis_test_support::IssuedCert,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "\n7. The whole stack from the environment: client cert -> xfcc -> tenant -> rate limit"
    );
    let dir = portcullis_test_support::TempDir::new("demo");
    let server_cert = pki.server()?;
    let token = "sk-demo-acme-0123456789";
    let digest = BearerDigest::from_headers(&{
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        headers
    })?
    .ok_or("no digest")?;
    let vars = [
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("TLS_CERT", dir.write("server.pem", &server_cert.chain_pem)),
        ("TLS_KEY", dir.write("server.key", &server_cert.key_pem)),
        ("TLS_CLIENT_CA", dir.write("ca.pem", pki.ca_pem())),
        ("TLS_CLIENT_AUTH", "required".to_owned()),
        (
            "TENANTS_FILE",
            dir.write(
                "tenants.json",
                format!(
                    r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "consumer": "billing", "active": true, "rate_per_min": 60, "burst": 3}}]}}"#,
                    digest.to_hex()
                ),
            ),
        ),
        ("RATE_LIMIT_KEY", "cn,bearer,ip".to_owned()),
    ];
    for (var, value) in &vars {
        println!("  {var}={value}");
    }
    let stack = portcullis::from_env(&Env::from_fn(|var| {
        vars.iter()
            .find(|(name, _)| *name == var)
            .map(|(_, value)| value.clone())
    }))
    .await?;
    let tls = stack.tls().ok_or("TLS_CERT was set")?;
    let listener =
        TlsListener::bind(stack.listen_addr(), TlsAcceptor::new(tls.tls.build()?)).await?;
    let addr = listener.local_addr();
    let app = ServiceBuilder::new().layer(stack.layer()).service_fn(
        |req: Request<hyper::body::Incoming>| async move {
            let tenant = req
                .headers()
                .get_all("x-llm-router-tenant")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let key = req
                .extensions()
                .get::<portcullis::rate_limit::RateLimitDecision>()
                .map(|d| d.key_source)
                .unwrap_or("none");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "tenant={tenant} key={key}"
            )))))
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    println!("  listening on https://{addr}");

    let root = pki.ca_pem();
    let cert = ClientCert {
        chain_pem: &client.chain_pem,
        key_pem: &client.key_pem,
    };
    let mut connection =
        portcullis_test_support::client::connect(addr, &root, Some(cert), Http::H2).await?;
    let authorization = format!("Bearer {token}");
    let mut statuses = Vec::new();
    for n in 1..=4 {
        let res = connection
            .send(
                &[
                    ("authorization", &authorization),
                    // A forgery the tenant layer must replace.
                    ("x-llm-router-tenant", "someone-else"),
                ],
                "/",
            )
            .await?;
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let rate = res
            .headers()
            .get("ratelimit")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        println!(
            "  request {n}: {} {:?} ratelimit={rate:?} retry-after={retry_after:?}",
            res.status(),
            res.body().trim()
        );
        if n == 1 {
            steps.check(
                "the forged tenant header was replaced by the key's tenant, and the CN keyed the bucket",
                res.status() == StatusCode::OK && res.body() == "tenant=acme key=cn",
                res.body(),
            );
        }
        statuses.push((res.status(), retry_after));
    }
    steps.check(
        "the plan's burst of 3 passed, then 429 with Retry-After",
        statuses[..3].iter().all(|(s, _)| *s == StatusCode::OK)
            && statuses[3].0 == StatusCode::TOO_MANY_REQUESTS
            && statuses[3].1.as_deref() == Some("1"),
        format!("{statuses:?}"),
    );
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
