//! Memory per idle mTLS keep-alive connection: the portcullis listener,
//! `serve` and `ClientCertLayer` against axum-server with the same rustls
//! configuration and the same app (target ≤ 1.1× axum-server's).
//!
//! Each server runs in a process of its own (this bench, started again
//! with `IDLE_BENCH_SERVE` set), so its resident set is its own. The
//! driver opens `IDLE_BENCH_CONNECTIONS` (default 5,000) mTLS connections
//! to it, sends one request on each and keeps them all open, then reads
//! the server's `VmRSS` from `/proc`. Per connection is the growth over
//! the server's resident set after one connection, divided by the count.
//! Three alternating rounds per server; the median is reported.
//!
//! Run: `cargo bench -p portcullis-client-cert --bench idle_connections`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{client_config, server_config, spawn_axum_server, spawn_portcullis, tls_connect};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use portcullis_test_support::median;

const SERVE: &str = "IDLE_BENCH_SERVE";
const ROUNDS: usize = 3;
/// Connections opened at once while filling.
const OPENING: usize = 64;

fn connections() -> usize {
    std::env::var("IDLE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}

/// In the server process: serve, say where, and wait to be killed.
fn serve(kind: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = server_config();
        let addr = match kind {
            "portcullis" => spawn_portcullis(config, true).await,
            "axum-server" => spawn_axum_server(config).await,
            other => panic!("{SERVE}={other}: portcullis or axum-server"),
        };
        println!("listening {addr}");
        std::future::pending::<()>().await;
    });
}

/// A server process of `kind` and its address.
fn start(kind: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(SERVE, kind)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{kind} said {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// The resident set of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// One mTLS connection that has been answered once, kept open.
async fn open(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tls = tls_connect(addr, config).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.into_body().collect().await.unwrap();
    sender
}

/// Bytes of the server's resident set per idle connection.
async fn per_connection(kind: &str, n: usize) -> f64 {
    let (mut child, addr) = start(kind);
    let config = client_config(b"http/1.1");
    let first = open(addr, config.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss(child.id());
    let mut held = vec![first];
    while held.len() < n + 1 {
        let batch = OPENING.min(n + 1 - held.len());
        let opening: Vec<_> = (0..batch)
            .map(|_| tokio::spawn(open(addr, config.clone())))
            .collect();
        for task in opening {
            held.push(task.await.unwrap());
        }
    }
    // Let the server settle (buffers released after the last answer).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    drop(held);
    (after.saturating_sub(before)) as f64 / n as f64
}

fn main() {
    if let Ok(kind) = std::env::var(SERVE) {
        return serve(&kind);
    }
    // Only measure under `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let n = connections();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut axum_server, mut portcullis) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        axum_server.push(rt.block_on(per_connection("axum-server", n)));
        portcullis.push(rt.block_on(per_connection("portcullis", n)));
    }
    let shown = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{n} idle mTLS connections, resident bytes per connection: axum-server {} (median {:.0}); \
         portcullis listener + ClientCertLayer {} (median {:.0}); ratio of medians {:.3}",
        shown(&axum_server),
        median(axum_server.clone()),
        shown(&portcullis),
        median(portcullis.clone()),
        median(portcullis.clone()) / median(axum_server.clone()),
    );
}
