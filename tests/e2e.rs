//! The whole stack from `portcullis::from_env`, driven by real curl:
//! the scenarios the design names, end to end. On the TLS listener (h2 and
//! HTTP/1.1), and plaintext behind a real nginx; with a real control plane
//! that goes away mid-test, and a real redis-server shared by two stacks.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Call, bearer, get, serve_stack};
use portcullis_test_support::interop_binary;

#[tokio::test]
async fn mtls_principal_keys_the_bucket_and_the_bearer_is_still_required() {
    if interop_binary("curl").is_none() {
        return;
    }
    // USE_CERT_AS_PRINCIPAL only moves the bucket to the certificate.
    let served = serve_stack(&[("USE_CERT_AS_PRINCIPAL", "true")]).await;
    let bearer = bearer();
    let with_bearer = Call {
        headers: &[&bearer],
        ..Call::root()
    };
    for h2 in [true, false] {
        // Bearer still required with mTLS (AUTH_POLICY defaults to bearer).
        let (status, _) = get(&served, Call { h2, ..Call::root() }).await;
        assert_eq!(status, "401");
    }
    let (status, body) = get(&served, with_bearer).await;
    assert_eq!(status, "200");
    assert_eq!(
        body,
        "cn=client.example.com tenant=acme stamped=acme xfcc= key=cn"
    );
    let http1 = Call {
        h2: false,
        ..with_bearer
    };
    assert_eq!(get(&served, http1).await.0, "200");
    // The plan's burst (2) is spent on the CN's bucket.
    assert_eq!(get(&served, with_bearer).await.0, "429");
    // Without the certificate the bearer names the bucket: a fresh one.
    let (status, body) = get(
        &served,
        Call {
            cert: false,
            ..with_bearer
        },
    )
    .await;
    assert_eq!(status, "200");
    assert_eq!(body, "cn=- tenant=acme stamped=acme xfcc= key=bearer");
}

#[tokio::test]
async fn use_cert_as_principal_moves_the_bucket_and_nothing_else() {
    if interop_binary("curl").is_none() {
        return;
    }
    let bearer = bearer();
    let with_bearer = Call {
        headers: &[&bearer],
        ..Call::root()
    };
    // Off (the default): the bearer names the bucket, certificate or not.
    let off = serve_stack(&[]).await;
    let (status, body) = get(&off, with_bearer).await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(
        body,
        "cn=client.example.com tenant=acme stamped=acme xfcc= key=bearer"
    );
    // On: a certificate no store knows, with a valid bearer, is still the
    // bearer's tenant (authentication is unchanged); the CN keys the bucket.
    let on = serve_stack(&[("USE_CERT_AS_PRINCIPAL", "true")]).await;
    let (status, body) = get(&on, with_bearer).await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(
        body,
        "cn=client.example.com tenant=acme stamped=acme xfcc= key=cn"
    );
    // And the certificate alone is no credential.
    assert_eq!(get(&on, Call::root()).await.0, "401");
}

#[tokio::test]
async fn forgeries_from_an_untrusted_peer_never_reach_the_app() {
    if interop_binary("curl").is_none() {
        return;
    }
    let served = serve_stack(&[]).await;
    let bearer = bearer();
    let forged_xfcc = format!(
        "x-forwarded-client-cert: Hash={};Subject=\"CN=admin\"",
        "ab".repeat(32)
    );
    let headers = [
        bearer.as_str(),
        "x-llm-router-tenant: someone-else",
        "X_LLM_Router_Tenant: someone-else",
        &forged_xfcc,
    ];
    let no_cert = Call {
        headers: &headers,
        cert: false,
        ..Call::root()
    };
    let (status, body) = get(&served, no_cert).await;
    assert_eq!(status, "200");
    assert_eq!(body, "cn=- tenant=acme stamped=acme xfcc= key=bearer");
    // A Connection header nominating a protected header is refused.
    let nominating = Call {
        headers: &[&bearer, "connection: x-llm-router-tenant"],
        h2: false,
        ..no_cert
    };
    assert_eq!(get(&served, nominating).await.0, "400");
}

#[tokio::test]
async fn internal_routes_are_hidden_without_a_secret_and_guarded_with_one() {
    if interop_binary("curl").is_none() {
        return;
    }
    let bearer = bearer();
    let guess = [bearer.as_str(), "x-internal-secret: guess"];
    let right = [bearer.as_str(), "x-internal-secret: s3cret"];
    let wrong_secret = Call {
        path: "/internal/usage",
        headers: &guess,
        cert: false,
        h2: true,
    };
    let hidden = serve_stack(&[("RATE_LIMIT_PER_MIN", "600")]).await;
    assert_eq!(get(&hidden, wrong_secret).await.0, "404");
    let guarded = serve_stack(&[
        ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
        ("CONTROL_PLANE_URL", "http://127.0.0.1:9/"),
    ])
    .await;
    assert_eq!(get(&guarded, wrong_secret).await.0, "403");
    let right_secret = Call {
        headers: &right,
        ..wrong_secret
    };
    let (status, body) = get(&guarded, right_secret).await;
    assert_eq!(status, "200", "{body}");
}

/// The control plane's key for tenant `globex` (not in the tenants file).
const CP_TOKEN: &str = "sk-e2e-globex-9876543210";
const CP_SECRET: &str = "cp-e2e-secret";

/// A control plane on loopback serving the resolve contract: [`CP_TOKEN`]
/// is `globex`, active; every other key 404. Aborting the task closes its
/// listener: a real outage (connection refused).
async fn control_plane() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    // An address of its own: once it is killed, no listener of a test
    // running beside it (they bind 127.0.0.1) can be given its port.
    let listener = tokio::net::TcpListener::bind("127.0.0.77:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let known = format!(
        "sha256={}",
        portcullis::identity::BearerDigest::of_token(CP_TOKEN).to_hex()
    );
    let answer = move |req: http::Request<hyper::body::Incoming>| {
        let found = req.uri().path() == "/internal/keys/resolve"
            && req.uri().query() == Some(known.as_str())
            && req
                .headers()
                .get("x-internal-secret")
                .is_some_and(|v| v == CP_SECRET);
        let mut res = http::Response::new(if found {
            r#"{"active": true, "consumer": "ops", "tenant_id": "globex", "rate_per_min": 600, "burst": 10}"#.to_owned()
        } else {
            String::new()
        });
        if !found {
            *res.status_mut() = http::StatusCode::NOT_FOUND;
        }
        async move { Ok::<_, std::convert::Infallible>(res) }
    };
    let task = tokio::spawn(portcullis_test_support::serve_plain(listener, move |_| {
        tower::service_fn(answer.clone())
    }));
    (addr, task)
}

/// Calls until the status is `want` (a file reload is asynchronous), for
/// at most 10 s; the last status and body.
async fn until_status(served: &common::Served, call: Call<'_>, want: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = get(served, call).await;
        if status == want || tokio::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_outage_is_ridden_out_within_grace_and_the_kill_switch_wins() {
    if interop_binary("curl").is_none() {
        return;
    }
    let (cp, cp_task) = control_plane().await;
    let url = format!("http://{cp}");
    let served = serve_stack(&[
        ("CONTROL_PLANE_URL", &url),
        ("CONTROL_PLANE_INTERNAL_SECRET", CP_SECRET),
        ("CONTROL_PLANE_CACHE_TTL_SECS", "0.5"),
        ("CONTROL_PLANE_STALE_GRACE_SECS", "1.5"),
    ])
    .await;
    let cp_bearer = format!("authorization: Bearer {CP_TOKEN}");
    let call = Call {
        headers: &[&cp_bearer],
        cert: false,
        ..Call::root()
    };
    let served_globex = (
        "200".to_owned(),
        "cn=- tenant=globex stamped=globex xfcc= key=bearer".to_owned(),
    );
    assert_eq!(get(&served, call).await, served_globex);

    // The operator's kill switch in the tenants file (reloaded on change)
    // wins while the control plane still says active; and is undone.
    served.dir.write(
        "tenants.json",
        common::tenants_json(r#"{"tenant_id": "globex", "active": false}"#),
    );
    assert_eq!(until_status(&served, call, "403").await.0, "403");
    served.dir.write("tenants.json", common::tenants_json(""));
    assert_eq!(until_status(&served, call, "200").await, served_globex);

    // A fresh answer, then the control plane goes away.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(get(&served, call).await, served_globex);
    cp_task.abort();
    let _ = cp_task.await;
    assert!(std::net::TcpStream::connect(cp).is_err(), "still listening");
    // Past the 0.5 s freshness, within the 1.5 s grace: the last answer.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(get(&served, call).await, served_globex);
    // Past the grace: refused as unavailable, never passed.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (status, body) = get(&served, call).await;
    assert_eq!(status, "503", "{body}");
    assert!(!body.contains(CP_TOKEN), "{body}");
    // The tenants file's own key never needed the control plane.
    let bearer = bearer();
    let (status, _) = get(
        &served,
        Call {
            headers: &[&bearer],
            ..call
        },
    )
    .await;
    assert_eq!(status, "200");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_share_limits_through_redis_and_its_outage_is_explicit() {
    use portcullis_test_support::{TempDir, free_port, redis_server};
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("e2e-redis");
    let port = free_port();
    let Some(redis) = redis_server(&dir, port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let shared = [
        ("REDIS_URL", url.as_str()),
        ("USE_CERT_AS_PRINCIPAL", "true"),
    ];
    let (one, two) = (serve_stack(&shared).await, serve_stack(&shared).await);
    let bearer = bearer();
    let with_cert = Call {
        headers: &[&bearer],
        ..Call::root()
    };
    // acme's plan has a burst of 2, spent across both instances on one CN.
    assert_eq!(get(&one, with_cert).await.0, "200");
    assert_eq!(get(&two, with_cert).await.0, "200");
    assert_eq!(get(&one, with_cert).await.0, "429");
    assert_eq!(get(&two, with_cert).await.0, "429");

    // Redis gone: a bucket not known to be empty is refused (503), by
    // default, and passed uncounted when the operator chose so.
    let open = serve_stack(&[
        ("REDIS_URL", url.as_str()),
        ("USE_CERT_AS_PRINCIPAL", "true"),
        ("RATE_LIMIT_ON_STORE_ERROR", "open"),
    ])
    .await;
    drop(redis);
    let bearer_only = Call {
        cert: false,
        ..with_cert
    };
    let (status, body) = get(&one, bearer_only).await;
    assert_eq!(status, "503", "{body}");
    let (status, body) = get(&open, bearer_only).await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(body, "cn=- tenant=acme stamped=acme xfcc= key=-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_the_whole_stack_takes_the_forwarded_certificate_and_nothing_else() {
    use portcullis_test_support::{Daemon, curl, free_port, pki};
    let (Some(nginx), Some(_)) = (interop_binary("nginx"), interop_binary("curl")) else {
        return;
    };
    // Plaintext behind nginx, trusting only 127.0.0.1 for its header.
    let served = serve_stack(&[
        ("TLS_CERT", ""),
        ("TLS_KEY", ""),
        ("TLS_CLIENT_CA", ""),
        ("TLS_CLIENT_AUTH", ""),
        ("TRUSTED_PROXY_CIDRS", "127.0.0.1/32"),
        ("FORWARDED_CERT_FORMAT", "nginx"),
        ("FORWARDED_CERT_HEADER", "x-client-cert"),
        ("USE_CERT_AS_PRINCIPAL", "true"),
    ])
    .await;
    let dir = &served.dir;
    let path = dir.path().to_str().unwrap();
    let pki = pki();
    dir.write("ca.pem", pki.ca().cert_pem());
    dir.write("server.pem", pki.end().chain_pem());
    dir.write("server.key", pki.end().key_pem());
    let port = free_port();
    let config = include_str!("../examples/behind_proxy/nginx.conf")
        .replace("/etc/portcullis", path)
        .replace("listen 8443", &format!("listen 127.0.0.1:{port}"))
        .replace("127.0.0.1:8080", &served.addr.to_string())
        .replace("/var/lib/portcullis/nginx", path);
    let conf = dir.write("nginx.conf", config);
    let mut command = std::process::Command::new(nginx);
    command.args(["-e", "stderr", "-p", path, "-c", &conf]);
    let _nginx = Daemon::start(
        "nginx",
        command,
        port,
        dir.join("nginx.log"),
        portcullis_test_support::Readiness::Tls,
    );

    let client_pem = dir.write("client.pem", pki.client().chain_pem());
    let client_key = dir.write("client.key", pki.client().key_pem());
    // A forged nginx header carrying a real (other) certificate.
    let forged_cert =
        portcullis::identity::percent::encode_component(pki.client_spiffe().cert_pem());
    let forgeries = [
        bearer(),
        format!("x-client-cert: {forged_cert}"),
        "x-llm-router-tenant: someone-else".to_owned(),
        format!(
            "x-forwarded-client-cert: Hash={};Subject=\"CN=admin\"",
            "ab".repeat(32)
        ),
    ];
    let run = |mut args: Vec<String>| {
        for header in &forgeries {
            args.extend(["-H".to_owned(), header.clone()]);
        }
        async move {
            tokio::task::spawn_blocking(move || curl(&args))
                .await
                .unwrap()
        }
    };
    let through_nginx = || {
        run(vec![
            "--resolve".to_owned(),
            format!("localhost:{port}:127.0.0.1"),
            "--cacert".to_owned(),
            dir.file("ca.pem"),
            "--cert".to_owned(),
            client_pem.clone(),
            "--key".to_owned(),
            client_key.clone(),
            format!("https://localhost:{port}/"),
        ])
    };
    // Through nginx: the certificate nginx verified names the caller and
    // keys the bucket; nginx's header (one line, its own) is all that is
    // left of the certificate headers, and the forgeries are gone.
    let out = through_nginx().await;
    assert_eq!(out.status, "200", "{}{}", out.body, out.stderr);
    let nginx_header = out
        .body
        .strip_prefix("cn=client.example.com tenant=acme stamped=acme xfcc=")
        .and_then(|rest| rest.strip_suffix(" key=cn"))
        .unwrap_or_else(|| panic!("{}", out.body));
    assert!(
        nginx_header.starts_with("-----BEGIN%20CERTIFICATE-----%0A")
            && !nginx_header.contains(',')
            && !nginx_header.contains(&forged_cert[40..80]),
        "{nginx_header}"
    );
    assert_eq!(through_nginx().await.status, "200");
    assert_eq!(through_nginx().await.status, "429", "acme's burst is 2");

    // Straight to the app from 127.0.0.2, not a trusted proxy: the same
    // forgeries, a real certificate in nginx's header among them, count
    // for nothing; the bearer keys a bucket of its own.
    let out = run(vec![
        "--interface".to_owned(),
        "127.0.0.2".to_owned(),
        format!("http://127.0.0.1:{}/", served.addr.port()),
    ])
    .await;
    assert_eq!(out.status, "200", "{}{}", out.body, out.stderr);
    assert_eq!(out.body, "cn=- tenant=acme stamped=acme xfcc= key=bearer");
}
