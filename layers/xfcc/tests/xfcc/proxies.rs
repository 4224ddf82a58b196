//! Behind real nginx, Caddy and HAProxy: each terminates mTLS with the test
//! PKI and forwards the client certificate to an app behind `XfccLayer`.
//!
//! The proxies connect to the app from 127.0.0.1, the one trusted address;
//! the "direct" client connects from 127.0.0.2, which is not trusted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_identity::{ClientIdentity, PeerAddr, TrustedProxies};
use portcullis_test_support::{
    CurlOutput, Daemon, Readiness, TempDir, curl, free_port, interop_binary, pki, serve_plain,
};
use portcullis_xfcc::{CertFormat, ForwardingProxy, XfccLayer};
use tower::ServiceBuilder;

/// What the app reports: the identity it saw and every header it received.
async fn whoami(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut report = String::new();
    match req.extensions().get::<ClientIdentity>() {
        Some(id) => report.push_str(&format!(
            "identity {} cn={} spiffe={}\n",
            id.source().as_str(),
            id.common_name().unwrap_or("-"),
            id.spiffe_id().map_or("-", |s| s.as_str())
        )),
        None => report.push_str("identity none\n"),
    }
    for (name, value) in req.headers() {
        report.push_str(&format!(
            "header {name}: {}\n",
            value.to_str().unwrap_or("<bytes>")
        ));
    }
    Ok(Response::new(Full::new(Bytes::from(report))))
}

/// The app, trusting only 127.0.0.1, on a port of its own.
async fn app(layer: XfccLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_plain(listener, move |peer| {
        ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            })
            .layer(layer.clone())
            .service_fn(whoami)
    }));
    addr
}

fn trusted() -> TrustedProxies {
    TrustedProxies::new(["127.0.0.1/32".parse().unwrap()])
}

/// Certificates and keys, as the proxies' configurations name them.
fn files(name: &str) -> TempDir {
    let dir = TempDir::new(&format!("proxy-{name}"));
    let pki = pki();
    dir.write("ca.pem", pki.ca().cert_pem());
    dir.write("server.pem", pki.end().chain_pem());
    dir.write("server.key", pki.end().key_pem());
    dir.write(
        "server-with-key.pem",
        format!("{}{}", pki.end().chain_pem(), pki.end().key_pem()),
    );
    dir.write("client.pem", pki.client().chain_pem());
    dir.write("client.key", pki.client().key_pem());
    dir.write("spiffe.pem", pki.client_spiffe().chain_pem());
    dir.write("spiffe.key", pki.client_spiffe().key_pem());
    dir
}

async fn run_curl(args: Vec<String>) -> CurlOutput {
    tokio::task::spawn_blocking(move || curl(&args))
        .await
        .unwrap()
}

/// What a client with `cert` gets through the proxy on `port`, sending
/// `extra` headers (forgeries).
async fn through(dir: &TempDir, port: u16, cert: &str, extra: &[(&str, String)]) -> CurlOutput {
    let mut args = vec![
        "--resolve".to_owned(),
        format!("localhost:{port}:127.0.0.1"),
        "--cacert".to_owned(),
        dir.file("ca.pem"),
        "--cert".to_owned(),
        dir.file(&format!("{cert}.pem")),
        "--key".to_owned(),
        dir.file(&format!("{cert}.key")),
    ];
    for (name, value) in extra {
        args.extend(["-H".to_owned(), format!("{name}: {value}")]);
    }
    args.push(format!("https://localhost:{port}/whoami"));
    run_curl(args).await
}

/// The same forgeries sent straight to the app from 127.0.0.2.
async fn direct(app: SocketAddr, extra: &[(&str, String)]) -> CurlOutput {
    let mut args = vec!["--interface".to_owned(), "127.0.0.2".to_owned()];
    for (name, value) in extra {
        args.extend(["-H".to_owned(), format!("{name}: {value}")]);
    }
    args.push(format!("http://127.0.0.1:{}/whoami", app.port()));
    run_curl(args).await
}

/// Forgeries of `header` in `format`: another client's certificate, under
/// the exact name, an underscore spelling, and twice.
fn forgeries(header: &str, format: CertFormat) -> Vec<(&'static str, String)> {
    let forged = format.encode(&[pki().client_email().der()]);
    let underscore: &'static str = Box::leak(header.replace('-', "_").into_boxed_str());
    let exact: &'static str = Box::leak(header.to_owned().into_boxed_str());
    vec![
        (exact, forged.clone()),
        (exact, forged.clone()),
        (underscore, forged),
    ]
}

/// The checks every proxy must pass.
async fn check_proxy(
    name: &str,
    dir: &TempDir,
    port: u16,
    app: SocketAddr,
    header: &str,
    format: CertFormat,
) {
    // A client with a certificate gets its own identity back.
    let out = through(dir, port, "client", &[]).await;
    assert_eq!(
        (out.code, out.status.as_str()),
        (0, "200"),
        "{name}: {}{}",
        out.body,
        out.stderr
    );
    assert!(
        out.body
            .starts_with("identity forwarded cn=client.example.com "),
        "{name}: {}",
        out.body
    );
    let out = through(dir, port, "spiffe", &[]).await;
    assert!(
        out.body
            .contains("spiffe=spiffe://example.org/ns/prod/sa/api"),
        "{name}: {}",
        out.body
    );

    // Forgeries through the proxy: the real certificate still wins, and
    // the underscore spelling never reaches the app.
    let forged = forgeries(header, format);
    let out = through(dir, port, "client", &forged).await;
    assert_eq!(out.status, "200", "{name}: {}", out.body);
    assert!(
        out.body
            .starts_with("identity forwarded cn=client.example.com "),
        "{name}: {}",
        out.body
    );
    assert!(
        !out.body.contains("email.example.com"),
        "{name}: {}",
        out.body
    );
    let underscore = header.replace('-', "_");
    assert!(
        !out.body.contains(&format!("header {underscore}")),
        "{name}: {}",
        out.body
    );
    assert_eq!(
        out.body.matches(&format!("header {header}:")).count(),
        1,
        "{name}: {}",
        out.body
    );

    // The same forgeries straight to the app, from an untrusted address.
    let out = direct(app, &forged).await;
    assert_eq!(out.status, "200", "{name}: {}{}", out.body, out.stderr);
    assert!(
        out.body.starts_with("identity none\n"),
        "{name}: {}",
        out.body
    );
    assert!(
        !out.body
            .to_ascii_lowercase()
            .contains(&header.replace('-', "")),
        "{name}: {}",
        out.body
    );
    assert!(
        !out.body.contains(&format!("header {header}")),
        "{name}: {}",
        out.body
    );
    assert!(
        !out.body.contains(&format!("header {underscore}")),
        "{name}: {}",
        out.body
    );
}

/// The header every proxy here writes the certificate in.
const HEADER: &str = "x-client-cert";

/// One proxy's test: its binary, its files, the app behind it (reading
/// `format`) and the port it will listen on.
struct Setup {
    binary: std::path::PathBuf,
    dir: TempDir,
    app: SocketAddr,
    port: u16,
    format: CertFormat,
}

impl Setup {
    /// `None` (with a printed notice) when `proxy` or curl is absent.
    async fn new(proxy: &str, format: CertFormat) -> Option<Setup> {
        let binary = interop_binary(proxy)?;
        interop_binary("curl")?;
        let app = app(XfccLayer::forwarding(
            ForwardingProxy::new(trusted(), format).header(http::HeaderName::from_static(HEADER)),
        ))
        .await;
        Some(Setup {
            binary,
            dir: files(proxy),
            app,
            port: free_port(),
            format,
        })
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// Starts the proxy with `args` and runs every check through it.
    async fn check(&self, name: &str, args: &[&str], env: &[(&str, std::path::PathBuf)]) {
        let mut command = Command::new(&self.binary);
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let daemon = Daemon::start(
            name,
            command,
            self.port,
            self.dir.join(&format!("{name}.log")),
            Readiness::Tls,
        );
        check_proxy(
            daemon.name(),
            &self.dir,
            self.port,
            self.app,
            HEADER,
            self.format,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx() {
    let Some(s) = Setup::new("nginx", CertFormat::Nginx).await else {
        return;
    };
    // The example's own configuration, pointed at this test's files and ports.
    let config = include_str!("../../../../examples/behind_proxy/nginx.conf")
        .replace("/etc/portcullis", s.path())
        .replace("listen 8443", &format!("listen 127.0.0.1:{}", s.port))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", s.app.port()))
        .replace("/var/lib/portcullis/nginx", s.path());
    let conf = s.dir.write("nginx.conf", config);
    s.check("nginx", &["-e", "stderr", "-p", s.path(), "-c", &conf], &[])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy() {
    let Some(s) = Setup::new("haproxy", CertFormat::Base64Der).await else {
        return;
    };
    // The documented configuration, pointed at this test's files and ports.
    let config = include_str!("../../../../docs/proxies/haproxy.cfg")
        .replace("/etc/portcullis/", &format!("{}/", s.path()))
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{}", s.port))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", s.app.port()));
    let conf = s.dir.write("haproxy.cfg", config);
    s.check("haproxy", &["-db", "-f", &conf], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy() {
    let Some(s) = Setup::new("caddy", CertFormat::Base64Der).await else {
        return;
    };
    // The documented configuration, pointed at this test's files and ports.
    let config = include_str!("../../../../docs/proxies/Caddyfile")
        .replace("/etc/portcullis/", &format!("{}/", s.path()))
        .replace(
            "/var/lib/portcullis/caddy",
            &s.dir.join("storage").display().to_string(),
        )
        .replace("localhost:8443", &format!("localhost:{}", s.port))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", s.app.port()));
    let conf = s.dir.write("Caddyfile", config);
    let home = s.dir.path().to_path_buf();
    s.check(
        "caddy",
        &["run", "--adapter", "caddyfile", "--config", &conf],
        &[
            ("HOME", home.clone()),
            ("XDG_DATA_HOME", home.join("data")),
            ("XDG_CONFIG_HOME", home.join("config")),
        ],
    )
    .await;
}
