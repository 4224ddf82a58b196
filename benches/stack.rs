//! The whole stack under load, against what a user would otherwise deploy,
//! in alternating rounds of the same run:
//!
//! - portcullis: the TLS listener and the four layers from `from_env`
//!   (in-memory stores), against axum-server with the same rustls
//!   configuration and no layers; and, to tell the two costs apart, our
//!   listener with no layers against each;
//! - portcullis in process, against nginx terminating mTLS and proxying to
//!   the same app behind `XfccLayer` (the `behind_proxy` configuration),
//!   and against HAProxy doing the same (`docs/proxies/haproxy.cfg`: the
//!   certificate as base64 DER in `X-Client-Cert`).
//!
//! A load driver that presents client certificates (wrk cannot): 64
//! concurrent clients on loopback, each on its own keep-alive TLS
//! connection, or a new TLS connection per request. Requests/s and
//! latency percentiles; the ratios are what `BENCHMARKS.md` reports.
//!
//! Run: `cargo bench -p portcullis --features axum --bench stack [-- <filter>]`
//! (nginx and haproxy must be installed for the comparisons with them).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use portcullis::identity::env::Env;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{StackFiles, TOKEN};
use portcullis::client_cert::{TlsAcceptor, TlsListener, serve};
use portcullis::xfcc::{CertFormat, ForwardingProxy, XfccLayer};
use portcullis_test_support::client::{ClientCert, Http, connect};
use portcullis_test_support::{Daemon, Readiness, free_port, interop_binary, pki};

const CONCURRENCY: usize = 64;

fn router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// The three servers, on a runtime of their own.
struct Servers {
    bare: SocketAddr,
    /// Our listener and `serve`, with no layers.
    listener: SocketAddr,
    stack: SocketAddr,
    nginx: Option<(SocketAddr, Daemon)>,
    haproxy: Option<(SocketAddr, Daemon)>,
}

fn start_servers(files: &StackFiles) -> Servers {
    let mut vars = files.env();
    vars.push(("LISTEN_ADDR", "127.0.0.1:0".to_owned()));
    let app_port = free_port();
    let haproxy_app_port = free_port();
    let (bare, listener, stack) = portcullis_test_support::on_own_thread(move || async move {
        // portcullis: the listener and the four layers from the environment.
        let env = portcullis::from_env(&Env::from_fn(|var| {
            vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone())
        }))
        .await
        .unwrap();
        // The rustls configuration the environment describes, for every
        // server here.
        let tls = env.tls().unwrap().tls.build().unwrap();
        // axum-server with the same rustls configuration, no layers.
        let bare_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.clone());
        tokio::spawn(
            axum_server::bind_rustls(bare_addr, config).serve(router().into_make_service()),
        );
        // The same listener and `serve`, with no layers.
        let plain = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(tls.clone()))
            .await
            .unwrap();
        let plain_addr = plain.local_addr();
        tokio::spawn(serve(plain, router(), std::future::pending()));
        let listener = TlsListener::bind(env.listen_addr(), TlsAcceptor::new(tls))
            .await
            .unwrap();
        let stack_addr = listener.local_addr();
        // Around the router, not inside it: layered once, not per route.
        let service = tower::ServiceBuilder::new()
            .layer(env.layer())
            .service(router());
        tokio::spawn(serve(listener, service, std::future::pending()));
        // The apps the proxies forward to: XfccLayer reading each one's
        // header (nginx's escaped PEM, HAProxy's base64 DER).
        for (port, format) in [
            (app_port, CertFormat::Nginx),
            (haproxy_app_port, CertFormat::Base64Der),
        ] {
            let app = router().layer(XfccLayer::forwarding(
                ForwardingProxy::new("127.0.0.1/32".parse().unwrap(), format)
                    .header(http::HeaderName::from_static("x-client-cert")),
            ));
            // (XfccLayer reads the peer from axum's ConnectInfo.)
            let app_listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            tokio::spawn(async move {
                axum::serve(
                    app_listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        (bare_addr, plain_addr, stack_addr)
    });
    let nginx = interop_binary("nginx").map(|binary| {
        let port = free_port();
        let path = files.dir.path().to_str().unwrap().to_owned();
        let config = include_str!("../examples/behind_proxy/nginx.conf")
            .replace("/etc/portcullis", &path)
            .replace("listen 8443", &format!("listen 127.0.0.1:{port}"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{app_port}"))
            .replace("/var/lib/portcullis/nginx", &path)
            .replace("worker_connections 64", "worker_connections 1024");
        let conf = files.dir.write("nginx.conf", config);
        start_proxy(
            files,
            "nginx",
            binary,
            &["-e", "stderr", "-p", &path, "-c", &conf],
            port,
        )
    });
    let haproxy = interop_binary("haproxy").map(|binary| {
        let port = free_port();
        let pki = pki();
        files.dir.write(
            "server-with-key.pem",
            format!("{}{}", pki.end().chain_pem(), pki.end().key_pem()),
        );
        let config = include_str!("../docs/proxies/haproxy.cfg")
            .replace(
                "/etc/portcullis/",
                &format!("{}/", files.dir.path().display()),
            )
            .replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{haproxy_app_port}"));
        let conf = files.dir.write("haproxy.cfg", config);
        start_proxy(files, "haproxy", binary, &["-db", "-f", &conf], port)
    });
    Servers {
        bare,
        listener,
        stack,
        nginx,
        haproxy,
    }
}

/// A proxy daemon terminating TLS on `port`, ready once it completes a
/// handshake; its log beside the bench's files.
fn start_proxy(
    files: &StackFiles,
    name: &str,
    binary: std::path::PathBuf,
    args: &[&str],
    port: u16,
) -> (SocketAddr, Daemon) {
    let mut command = std::process::Command::new(binary);
    command.args(args);
    let log = files.dir.join(&format!("{name}.log"));
    let daemon = Daemon::start(name, command, port, log, Readiness::Tls);
    (SocketAddr::from(([127, 0, 0, 1], port)), daemon)
}

/// One load run: requests/s and every latency.
struct Run {
    per_second: f64,
    latencies: Vec<Duration>,
}

async fn load(addr: SocketAddr, new_connections: bool, run_for: Duration) -> Run {
    let pki = pki();
    let root: &'static str = pki.ca().cert_pem();
    let cert = ClientCert {
        chain_pem: pki.client().chain_pem(),
        key_pem: pki.client().key_pem(),
    };
    let authorization: &'static str = Box::leak(format!("Bearer {TOKEN}").into_boxed_str());
    let start = Instant::now();
    let deadline = start + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut connection = None;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if connection.is_none() || new_connections {
                    connection = Some(connect(addr, root, Some(cert), Http::H1).await.unwrap());
                }
                let res = connection
                    .as_mut()
                    .unwrap()
                    .send(&[("authorization", authorization)], "/")
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{}", res.body());
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Alternating rounds of `baseline` and `candidate`: totals, ratio, and
/// the p50/p99 of each side.
fn compare(
    rt: &tokio::runtime::Runtime,
    name: &str,
    baseline: (&str, SocketAddr),
    candidate: (&str, SocketAddr),
    new_connections: bool,
) {
    // `cargo bench --bench stack -- <filter>` runs the comparisons whose
    // name contains the filter.
    if let Some(filter) = portcullis_test_support::bench_filter()
        && !name.contains(&filter)
    {
        return;
    }
    // Many short alternating rounds: on two shared vCPUs one round can be
    // 25% off either way, so the median of paired ratios is reported too.
    let rounds = if new_connections { 8 } else { 12 };
    let run_for = Duration::from_millis(if new_connections { 2000 } else { 1500 });
    // Warm both.
    rt.block_on(load(
        baseline.1,
        new_connections,
        Duration::from_millis(500),
    ));
    rt.block_on(load(
        candidate.1,
        new_connections,
        Duration::from_millis(500),
    ));
    let (mut base_runs, mut cand_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_candidate in order {
            let addr = if is_candidate {
                candidate.1
            } else {
                baseline.1
            };
            let run = rt.block_on(load(addr, new_connections, run_for));
            if is_candidate {
                cand_runs.push(run);
            } else {
                base_runs.push(run);
            }
        }
    }
    let summary = |runs: &[Run]| {
        let rate = runs.iter().map(|r| r.per_second).sum::<f64>() / runs.len() as f64;
        let mut all: Vec<Duration> = runs
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        all.sort_unstable();
        (rate, percentile(&all, 0.5), percentile(&all, 0.99))
    };
    let (b_rate, b_p50, b_p99) = summary(&base_runs);
    let (c_rate, c_p50, c_p99) = summary(&cand_runs);
    let mut ratios: Vec<f64> = base_runs
        .iter()
        .zip(&cand_runs)
        .map(|(b, c)| c.per_second / b.per_second)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = (ratios[(ratios.len() - 1) / 2] + ratios[ratios.len() / 2]) / 2.0;
    println!(
        "{name}: {} {b_rate:.0}/s (p50 {b_p50:?}, p99 {b_p99:?}) -> {} {c_rate:.0}/s (p50 {c_p50:?}, p99 {c_p99:?}); \
         ratio of means {:.3}, median of {} paired rounds {median:.3} (range {:.3}-{:.3}); p99 added {:?}",
        baseline.0,
        candidate.0,
        c_rate / b_rate,
        ratios.len(),
        ratios[0],
        ratios[ratios.len() - 1],
        c_p99.saturating_sub(b_p99),
    );
}

fn main() {
    // `cargo bench --no-run` builds this; `cargo test --benches` would run
    // it with --bench absent: only run when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let files = StackFiles::new("stack-bench");
    let servers = start_servers(&files);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{CONCURRENCY} concurrent clients with client certificates, HTTP/1.1 over TLS, loopback"
    );
    for new_connections in [false, true] {
        let mode = if new_connections {
            "new connection per request"
        } else {
            "keep-alive"
        };
        compare(
            &rt,
            &format!(
                "{mode}: axum-server vs portcullis's TLS listener and serve, neither with layers"
            ),
            ("axum-server", servers.bare),
            ("listener", servers.listener),
            new_connections,
        );
        compare(
            &rt,
            &format!("{mode}: portcullis's listener without layers vs with the four layers"),
            ("listener", servers.listener),
            ("portcullis", servers.stack),
            new_connections,
        );
        compare(
            &rt,
            &format!(
                "{mode}: axum-server (same rustls config, no layers) vs portcullis (TLS listener + four layers)"
            ),
            ("axum-server", servers.bare),
            ("portcullis", servers.stack),
            new_connections,
        );
        for (name, proxy) in [("nginx", &servers.nginx), ("haproxy", &servers.haproxy)] {
            if let Some((proxy, _)) = proxy {
                compare(
                    &rt,
                    &format!(
                        "{mode}: {name} (mTLS, proxy to the app with XfccLayer) vs portcullis in process"
                    ),
                    (name, *proxy),
                    ("portcullis", servers.stack),
                    new_connections,
                );
            }
        }
    }
}
