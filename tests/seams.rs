//! The seams: the example binaries run as a deployment runs them (their own
//! process, the README's environment, found by the address they print),
//! with real servers in front and behind (nginx with h2, a control plane
//! that counts its calls and connections) and hostile traffic from an
//! untrusted address. Each test failed on the code before its fix.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit",
    feature = "axum"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis::identity::env::Env;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use portcullis::identity::BearerDigest;
use portcullis_test_support::{
    Daemon, Example, Readiness, TempDir, ThrowawayPki, curl, free_port, interop_binary, pki,
};
use serde_json::Value;

/// curl with `args`, off the async runtime; status and body.
async fn curl_async(args: Vec<String>) -> (String, String) {
    let out = tokio::task::spawn_blocking(move || curl(&args))
        .await
        .unwrap();
    (out.status, format!("{}{}", out.body, out.stderr))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The values the application received for header `name` (lower case).
fn header<'a>(whoami: &'a Value, name: &str) -> Vec<&'a str> {
    whoami["headers"][name]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The tenants JSON for one bearer key of `tenant`.
fn tenants_for(token: &str, tenant: &str) -> String {
    format!(
        r#"{{"keys": [{{"sha256": "{}", "tenant_id": "{tenant}", "consumer": "billing"}}]}}"#,
        BearerDigest::of_token(token).to_hex()
    )
}

/// nginx with one TLS server block forwarding to `upstream`; `listen`,
/// `tls` and `location` are the parts a test varies. Waits until nginx
/// answers a TLS handshake on its port (its own protocol, not a bare TCP
/// connect).
fn nginx(dir: &TempDir, listen: &str, tls: &str, location: &str) -> (Daemon, u16) {
    let nginx = interop_binary("nginx").unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let port = free_port();
    let config = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {path}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    log_format proto '$server_protocol $status';
    access_log {path}/access.log proto;
    client_body_temp_path {path}/client_body;
    proxy_temp_path {path}/proxy;
    fastcgi_temp_path {path}/fastcgi;
    uwsgi_temp_path {path}/uwsgi;
    scgi_temp_path {path}/scgi;
    server {{
        listen 127.0.0.1:{port} {listen};
        server_name localhost;
        ssl_certificate {path}/nginx.pem;
        ssl_certificate_key {path}/nginx.key;
        {tls}
        location / {{
            {location}
        }}
    }}
}}
"#
    );
    let conf = dir.write("nginx.conf", config);
    let mut command = std::process::Command::new(nginx);
    command.args(["-e", "stderr", "-p", &path, "-c", &conf]);
    let daemon = Daemon::start(
        "nginx",
        command,
        port,
        dir.join("nginx.log"),
        Readiness::Tls,
    );
    (daemon, port)
}

// --- made-up bearers -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_bearers_are_counted_by_the_callers_address() {
    if interop_binary("curl").is_none() {
        return;
    }
    for name in ["axum", "hyper"] {
        let dir = TempDir::new("seams-bearers");
        // No tenants: nothing authenticates a bearer, so none may name a
        // bucket of its own.
        let example = Example::start(
            name,
            &[("RATE_LIMIT_PER_MIN", "60"), ("RATE_LIMIT_BURST", "2")],
            dir.join("example.log"),
        );
        let url = format!("http://{}/whoami", example.addr());
        let mut statuses = Vec::new();
        for n in 0..8 {
            let (status, body) = curl_async(args(&[
                "--interface",
                "127.0.0.2",
                "-H",
                &format!("authorization: Bearer made-up-{n}"),
                &url,
            ]))
            .await;
            if status == "200" {
                assert_eq!(json(&body)["client_ip"], "127.0.0.2", "{name}: {body}");
            }
            statuses.push(status);
        }
        assert_eq!(
            statuses,
            ["200", "200", "429", "429", "429", "429", "429", "429"],
            "{name}"
        );
    }
}

// --- certificate side headers ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_side_headers_count_only_from_a_trusted_proxy() {
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("seams-side");
    let example = Example::start(
        "axum",
        &[("TRUSTED_PROXY_CIDRS", "127.0.0.1/32")],
        dir.join("example.log"),
    );
    let url = format!("http://{}/whoami", example.addr());
    let side = [
        "X-Client-Fingerprint: 0123456789abcdef0123456789abcdef01234567",
        "X-Client-Verify: SUCCESS",
        "X-Client-DN: CN=admin",
        "X-SSL-Client-Verify: SUCCESS",
        "X_SSL_Client_S_DN: CN=admin",
    ];
    let call = |from: &'static str| {
        let mut list = args(&["--interface", from]);
        for line in side {
            list.extend(["-H".to_owned(), line.to_owned()]);
        }
        list.push(url.clone());
        curl_async(list)
    };
    // From an untrusted address: every one is gone, whatever its spelling.
    let (status, body) = call("127.0.0.2").await;
    assert_eq!(status, "200", "{body}");
    let seen = json(&body);
    for name in [
        "x-client-fingerprint",
        "x-client-verify",
        "x-client-dn",
        "x-ssl-client-verify",
        "x_ssl_client_s_dn",
    ] {
        assert!(header(&seen, name).is_empty(), "{name} leaked: {body}");
    }
    // From the trusted proxy: its statements pass, under their own names;
    // another spelling of one is still removed.
    let (status, body) = call("127.0.0.1").await;
    assert_eq!(status, "200", "{body}");
    let seen = json(&body);
    assert_eq!(header(&seen, "x-client-verify"), ["SUCCESS"], "{body}");
    assert_eq!(header(&seen, "x-client-dn"), ["CN=admin"], "{body}");
    assert_eq!(header(&seen, "x-ssl-client-verify"), ["SUCCESS"], "{body}");
    assert!(header(&seen, "x_ssl_client_s_dn").is_empty(), "{body}");
}

// --- the deployment guide's nginx template -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_guides_nginx_template_works_as_written() {
    let (Some(_), Some(_)) = (interop_binary("nginx"), interop_binary("curl")) else {
        return;
    };
    let dir = TempDir::new("seams-guide");
    let example = Example::start(
        "axum",
        &[("TRUSTED_PROXY_CIDRS", "127.0.0.1/32")],
        dir.join("example.log"),
    );
    let pki = pki();
    dir.write("nginx.pem", pki.end().chain_pem());
    dir.write("nginx.key", pki.end().key_pem());
    let ca = dir.write("ca.pem", pki.ca().cert_pem());
    // Exactly the guide's lines.
    let location = format!(
        r#"proxy_pass http://{};
            proxy_set_header X-Forwarded-Client-Cert "Subject=\"$ssl_client_s_dn\";Hash=\"$ssl_client_fingerprint\"";
            proxy_set_header X-Client-DN $ssl_client_s_dn;
            proxy_set_header X-Client-Verify $ssl_client_verify;
            proxy_set_header X-Client-Fingerprint $ssl_client_fingerprint;
            proxy_set_header Authorization $http_authorization;"#,
        example.addr()
    );
    let tls = format!(
        "ssl_client_certificate {ca};\n        ssl_verify_client on;\n        ssl_verify_depth 2;"
    );
    let (_nginx, port) = nginx(&dir, "ssl", &tls, &location);
    let client_pem = dir.write("client.pem", pki.client().chain_pem());
    let client_key = dir.write("client.key", pki.client().key_pem());
    let (status, body) = curl_async(args(&[
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "--cacert",
        &ca,
        "--cert",
        &client_pem,
        "--key",
        &client_key,
        "-H",
        "X-Client-Verify: FORGED",
        &format!("https://localhost:{port}/whoami"),
    ]))
    .await;
    assert_eq!(status, "200", "{body}");
    let seen = json(&body);
    let identity = &seen["identity"];
    assert_eq!(identity["source"], "forwarded", "{body}");
    assert_eq!(identity["common_name"], "client.example.com", "{body}");
    // nginx's fingerprint is a SHA-1: never passed off as the SHA-256.
    assert!(identity["fingerprint_sha256"].is_null(), "{body}");
    assert_eq!(header(&seen, "x-client-verify"), ["SUCCESS"], "{body}");
    let sha1 = header(&seen, "x-client-fingerprint");
    assert!(
        sha1.len() == 1 && sha1[0].len() == 40 && sha1[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );

    // The same header straight from an untrusted address names nobody.
    let forged = format!(
        "x-forwarded-client-cert: Subject=\"CN=client.example.com\";Hash=\"{}\"",
        sha1[0]
    );
    let (status, body) = curl_async(args(&[
        "--interface",
        "127.0.0.2",
        "-H",
        &forged,
        "-H",
        "X-Client-Verify: SUCCESS",
        &format!("http://{}/whoami", example.addr()),
    ]))
    .await;
    assert_eq!(status, "200", "{body}");
    let seen = json(&body);
    assert!(seen["identity"].is_null(), "{body}");
    assert!(header(&seen, "x-client-verify").is_empty(), "{body}");
    assert!(
        header(&seen, "x-forwarded-client-cert").is_empty(),
        "{body}"
    );
}

// --- principal kinds ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_common_name_that_reads_like_a_spiffe_id_is_not_one() {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
        SanType, string::Ia5String,
    };
    if interop_binary("curl").is_none() {
        return;
    }
    let alice = "spiffe://e2e.example/ns/a/sa/alice";
    let throwaway = ThrowawayPki::new("seams").unwrap();
    let client = |cn: &str, uri: Option<&str>| {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(uri).unwrap())];
        }
        throwaway.issue(params).unwrap()
    };
    let impostor = client(alice, None);
    let svid = client("alice-workload", Some(alice));
    let server = throwaway.server().unwrap();
    let dir = TempDir::new("seams-kinds");
    let ca = dir.write("ca.pem", throwaway.ca_pem());
    let tenants = dir.write(
        "tenants.json",
        format!(r#"{{"keys": [{{"principal": "{alice}", "tenant_id": "alice-tenant"}}]}}"#),
    );
    let example = Example::start(
        "axum",
        &[
            ("TLS_CERT", &dir.write("server.pem", &server.chain_pem)),
            ("TLS_KEY", &dir.write("server.key", &server.key_pem)),
            ("TLS_CLIENT_CA", &ca),
            ("TENANTS_FILE", &tenants),
            ("AUTH_POLICY", "cert"),
        ],
        dir.join("example.log"),
    );
    let call = |name: &str, cert: &portcullis_test_support::IssuedCert| {
        let pem = dir.write(&format!("{name}.pem"), &cert.chain_pem);
        let key = dir.write(&format!("{name}.key"), &cert.key_pem);
        curl_async(args(&[
            "--resolve",
            &format!("localhost:{}:127.0.0.1", example.addr().port()),
            "--cacert",
            &ca,
            "--cert",
            &pem,
            "--key",
            &key,
            &format!("https://localhost:{}/whoami", example.addr().port()),
        ]))
    };
    let (status, body) = call("impostor", &impostor).await;
    assert_eq!(status, "401", "{body}");
    let (status, body) = call("svid", &svid).await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(json(&body)["tenant"]["id"], "alice-tenant", "{body}");
}

// --- the control plane -------------------------------------------------

/// A control plane of the test's own making: counts calls, the most in
/// flight at once and connections; answers after `delay`; knows `known`.
#[derive(Clone, Default)]
struct CountingControlPlane {
    calls: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl CountingControlPlane {
    async fn start(
        &self,
        delay: Duration,
        known: &'static str,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        // An address of its own: once it is killed, no listener of a test
        // running beside it (they bind 127.0.0.1) can be given its port.
        let listener = tokio::net::TcpListener::bind("127.0.0.77:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let known = BearerDigest::of_token(known).to_hex();
        let this = self.clone();
        let task = tokio::spawn(portcullis_test_support::serve_plain(
            listener,
            move |_peer| {
                this.connections.fetch_add(1, Ordering::SeqCst);
                let this = this.clone();
                let known = known.clone();
                tower::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let this = this.clone();
                    let known = known.clone();
                    async move {
                        this.calls.fetch_add(1, Ordering::SeqCst);
                        let now = this.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        this.most_in_flight.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        this.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let authorized = req
                            .headers()
                            .get("x-internal-secret")
                            .is_some_and(|v| v == "s3cret");
                        let query = req.uri().query().unwrap_or_default();
                        let (status, body) = if !authorized {
                            (StatusCode::FORBIDDEN, String::new())
                        } else if query == format!("sha256={known}") {
                            (
                                StatusCode::OK,
                                r#"{"active": true, "tenant_id": "acme", "consumer": "billing"}"#
                                    .to_owned(),
                            )
                        } else {
                            (StatusCode::NOT_FOUND, String::new())
                        };
                        let mut res = Response::new(Full::new(Bytes::from(body)));
                        *res.status_mut() = status;
                        Ok::<_, std::convert::Infallible>(res)
                    }
                })
            },
        ));
        (addr, task)
    }
}

/// A keep-alive HTTP/1.1 client whose connections leave from `from`.
fn client_from(
    from: IpAddr,
) -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(from));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

async fn status_of(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    >,
    addr: SocketAddr,
    token: &str,
) -> StatusCode {
    let req = Request::get(format!("http://{addr}/whoami"))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let _ = res.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_behind_nginx_speaking_h2_resolves_keys() {
    let (Some(_), Some(_)) = (interop_binary("nginx"), interop_binary("curl")) else {
        return;
    };
    let dir = TempDir::new("seams-h2");
    let pki = pki();
    let ca = dir.write("ca.pem", pki.ca().cert_pem());
    dir.write("nginx.pem", pki.end().chain_pem());
    dir.write("nginx.key", pki.end().key_pem());
    let control_plane = Example::start(
        "control_plane",
        &[
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            (
                "TENANTS_FILE",
                &dir.write("cp-tenants.json", tenants_for("sk-h2-acme", "acme")),
            ),
        ],
        dir.join("control_plane.log"),
    );
    // Any Go, Envoy or nginx control plane picks h2 when offered.
    let (_nginx, port) = nginx(
        &dir,
        "ssl http2",
        "",
        &format!("proxy_pass http://{};", control_plane.addr()),
    );
    let example = Example::start(
        "axum",
        &[
            ("CONTROL_PLANE_URL", &format!("https://localhost:{port}")),
            // A Kubernetes secret made from a file ends in a newline.
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret\n"),
            ("PORTCULLIS_CA_CERTIFICATE", &ca),
        ],
        dir.join("example.log"),
    );
    let (status, body) = curl_async(args(&[
        "-H",
        "authorization: Bearer sk-h2-acme",
        &format!("http://{}/whoami", example.addr()),
    ]))
    .await;
    assert_eq!(status, "200", "{body}\n{}", example.log_text());
    assert_eq!(json(&body)["tenant"]["id"], "acme", "{body}");
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(access.contains("HTTP/2.0 200"), "not h2: {access}");
    // The guard checks the same trimmed secret the control plane got.
    let (status, body) = curl_async(args(&[
        "-H",
        "x-internal-secret: s3cret",
        &format!("http://{}/internal/usage", example.addr()),
    ]))
    .await;
    assert_eq!(status, "200", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_to_a_slow_control_plane_are_bounded_and_pooled() {
    let dir = TempDir::new("seams-slow-cp");
    let counting = CountingControlPlane::default();
    let (cp, _cp_task) = counting.start(Duration::from_secs(1), "sk-known").await;
    let example = Example::start(
        "axum",
        &[
            ("CONTROL_PLANE_URL", &format!("http://{cp}")),
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
        ],
        dir.join("example.log"),
    );
    let client = client_from(IpAddr::from([127, 0, 0, 1]));
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..300 {
        let client = client.clone();
        let addr = example.addr();
        requests.spawn(async move { status_of(&client, addr, &format!("sk-unknown-{n}")).await });
    }
    let mut unknown = 0;
    let mut unavailable = 0;
    while let Some(status) = requests.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => unknown += 1,
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let most = counting.most_in_flight.load(Ordering::SeqCst);
    let connections = counting.connections.load(Ordering::SeqCst);
    let calls = counting.calls.load(Ordering::SeqCst);
    assert!(most <= 32, "{most} lookups in flight at once");
    assert!(
        connections <= 32,
        "{connections} connections to the control plane"
    );
    // Every lookup that started was answered (unknown); the rest were
    // refused at once rather than queued.
    assert_eq!(unknown, calls);
    assert!(unavailable > 0, "none refused: {unknown} unknown");
    assert_eq!(unknown + unavailable, 300);
    // Pooled: a second round reuses the connections.
    let before = counting.connections.load(Ordering::SeqCst);
    assert_eq!(
        status_of(&client, example.addr(), "sk-known").await,
        StatusCode::OK
    );
    assert_eq!(counting.connections.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_unknown_keys_never_evicts_a_known_one() {
    let dir = TempDir::new("seams-spray");
    let counting = CountingControlPlane::default();
    let (cp, cp_task) = counting.start(Duration::ZERO, "sk-known").await;
    let example = Example::start(
        "axum",
        &[
            ("CONTROL_PLANE_URL", &format!("http://{cp}")),
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            ("CONTROL_PLANE_CACHE_TTL_SECS", "1"),
            ("CONTROL_PLANE_NEGATIVE_TTL_SECS", "600"),
        ],
        dir.join("example.log"),
    );
    let addr = example.addr();
    let local = client_from(IpAddr::from([127, 0, 0, 1]));
    assert_eq!(status_of(&local, addr, "sk-known").await, StatusCode::OK);
    // 11,000 made-up keys from 16 addresses, 16 at a time.
    let mut sprayers = tokio::task::JoinSet::new();
    for client in 0..16u8 {
        sprayers.spawn(async move {
            let from = client_from(IpAddr::from([127, 0, 0, 10 + client]));
            let mut statuses = Vec::new();
            for n in (usize::from(client)..11_000).step_by(16) {
                statuses.push(status_of(&from, addr, &format!("sk-spray-{n}")).await);
            }
            statuses
        });
    }
    while let Some(statuses) = sprayers.join_next().await {
        for status in statuses.unwrap() {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    // The control plane goes down, past the known answer's freshness: it
    // still stands in, within the stale grace.
    cp_task.abort();
    let _ = cp_task.await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(status_of(&local, addr, "sk-known").await, StatusCode::OK);
}

// --- slow clients ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_one_header_byte_at_a_time_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = pki();
    for name in ["axum", "hyper"] {
        let dir = TempDir::new("seams-slowloris");
        let ca = dir.write("ca.pem", pki.ca().cert_pem());
        let example = Example::start(
            name,
            &[
                ("TLS_CERT", &dir.write("server.pem", pki.end().chain_pem())),
                ("TLS_KEY", &dir.write("server.key", pki.end().key_pem())),
                ("TLS_CLIENT_CA", &ca),
                ("TLS_CLIENT_AUTH", "required"),
                ("HEADER_READ_TIMEOUT_SECS", "1"),
            ],
            dir.join("example.log"),
        );
        let cert = portcullis_test_support::client::ClientCert {
            chain_pem: pki.client().chain_pem(),
            key_pem: pki.client().key_pem(),
        };
        let stream = portcullis_test_support::client::tls_stream(
            example.addr(),
            pki.ca().cert_pem(),
            Some(cert),
            &[b"http/1.1"],
        )
        .await
        .unwrap();
        let (mut read, mut write) = tokio::io::split(stream);
        let request = b"GET /whoami HTTP/1.1\r\nhost: localhost\r\nx-slow: 1\r\n";
        let closed = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            // Whatever the server says (a 408, or nothing), then the end.
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let mut sent = 0;
        for byte in request {
            if closed.is_finished() || write.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // 1 s of header-read time is 4 or 5 bytes at this pace, nowhere
        // near the whole head.
        assert!(
            sent < request.len(),
            "{name}: the whole slow head ({sent} bytes) went in and the connection is still open"
        );
        closed.await.unwrap();
    }
}

// --- plain axum::serve -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_plain_axum_serve_the_peer_comes_from_connect_info() {
    use axum::routing::get;
    use portcullis::PortcullisExt;
    if interop_binary("curl").is_none() {
        return;
    }
    // No glue: the layers read axum's ConnectInfo<SocketAddr> themselves,
    // so an anonymous caller is counted by its address (it was 401 "no
    // rate-limit key").
    let vars = [("RATE_LIMIT_PER_MIN", "60"), ("RATE_LIMIT_BURST", "1")];
    let stack = portcullis::from_env(&Env::from_fn(|var| {
        vars.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| (*v).to_owned())
    }))
    .await
    .unwrap();
    let app = axum::Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(tower::ServiceBuilder::new().portcullis(stack.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{addr}/");
    let mut statuses = Vec::new();
    for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
        statuses.push(curl_async(args(&["--interface", from, &url])).await.0);
    }
    assert_eq!(statuses, ["200", "429", "200"]);
}
