//! The PROXY protocol behind real HAProxy in `mode tcp` (`send-proxy` and
//! `send-proxy-v2`), in front of the `axum` and `hyper` examples as a
//! deployment runs them: `/whoami` shows the client's own address, the
//! `ip` rate-limit key gives two clients two buckets, and the same header
//! sent straight from an address not trusted to send it is refused before
//! anything reaches a layer.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit",
    feature = "axum"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use portcullis_test_support::{
    Daemon, Example, Readiness, TempDir, curl, free_port, interop_binary, pki,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// curl with `args`, off the async runtime; status and body.
async fn curl_async(args: &[&str]) -> (String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || curl(&args))
        .await
        .unwrap();
    (out.status, format!("{}{}", out.body, out.stderr))
}

fn client_ip(body: &str) -> String {
    let whoami: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    whoami["client_ip"].as_str().unwrap_or("-").to_owned()
}

/// HAProxy in `mode tcp` on a port of its own, its `bind` line ending in
/// `bind_options` (TLS termination, or nothing), passing each connection to
/// `backend` with `send` (`send-proxy`, `send-proxy-v2`, ...). Ready when a
/// request through it gets an HTTP answer (the example behind it reading
/// the header), or for TLS when a ClientHello gets a handshake back.
fn haproxy(
    dir: &TempDir,
    bind_options: &str,
    backend: SocketAddr,
    send: &str,
    readiness: Readiness,
) -> (Daemon, u16) {
    let haproxy = interop_binary("haproxy").unwrap();
    let port = free_port();
    let config = format!(
        "global\n    maxconn 200\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
         timeout client 30s\n    timeout server 30s\nfrontend front\n    \
         bind 127.0.0.1:{port} {bind_options}\n    default_backend app\nbackend app\n    \
         server app {backend} {send}\n"
    );
    let conf = dir.write("haproxy.cfg", config);
    let mut command = std::process::Command::new(haproxy);
    command.args(["-db", "-f", &conf]);
    let daemon = Daemon::start("haproxy", command, port, dir.join("haproxy.log"), readiness);
    (daemon, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_the_client_is_the_one_the_header_names() {
    if interop_binary("curl").is_none() || interop_binary("haproxy").is_none() {
        return;
    }
    for name in ["axum", "hyper"] {
        for (send, setting) in [("send-proxy", "v1"), ("send-proxy-v2", "v2")] {
            let dir = TempDir::new("proxy-protocol");
            let example = Example::start(
                name,
                &[
                    ("TRUSTED_PROXY_CIDRS", "127.0.0.1/32"),
                    ("PROXY_PROTOCOL", setting),
                    ("RATE_LIMIT_PER_MIN", "60"),
                    ("RATE_LIMIT_BURST", "1"),
                    ("RATE_LIMIT_KEY", "ip"),
                ],
                dir.join("example.log"),
            );
            let (_haproxy, port) = haproxy(&dir, "", example.addr(), send, Readiness::Http);
            let url = format!("http://127.0.0.1:{port}/whoami");
            let mut seen = Vec::new();
            for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
                let (status, body) = curl_async(&["--interface", from, &url]).await;
                let ip = if status == "200" {
                    client_ip(&body)
                } else {
                    "-".to_owned()
                };
                seen.push((status, ip));
            }
            let expected = [("200", "127.0.0.2"), ("429", "-"), ("200", "127.0.0.3")];
            assert_eq!(
                seen.iter()
                    .map(|(s, ip)| (s.as_str(), ip.as_str()))
                    .collect::<Vec<_>>(),
                expected,
                "{name} {send}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_comes_before_the_tls_handshake() {
    if interop_binary("curl").is_none() || interop_binary("haproxy").is_none() {
        return;
    }
    let dir = TempDir::new("proxy-protocol-tls");
    let cert = dir.write("server.pem", pki().end().chain_pem());
    let key = dir.write("server.key", pki().end().key_pem());
    let ca = dir.write("ca.pem", pki().ca().cert_pem());
    let example = Example::start(
        "hyper",
        &[
            ("TLS_CERT", cert.as_str()),
            ("TLS_KEY", key.as_str()),
            ("TRUSTED_PROXY_CIDRS", "127.0.0.1/32"),
            ("PROXY_PROTOCOL", "any"),
        ],
        dir.join("example.log"),
    );
    let (_haproxy, port) = haproxy(&dir, "", example.addr(), "send-proxy-v2", Readiness::Tls);
    let url = format!("https://localhost:{port}/whoami");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let (status, body) = curl_async(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--interface",
        "127.0.0.3",
        &url,
    ])
    .await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(client_ip(&body), "127.0.0.3");
}

/// One raw HTTP/1.1 exchange from `from`, after `prefix`: what came back
/// (empty when the connection was closed without an answer).
async fn raw(to: SocketAddr, from: &str, prefix: &[u8]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let mut request = prefix.to_vec();
    request.extend_from_slice(b"GET /whoami HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_from_an_untrusted_peer_is_refused_and_a_missing_one_from_a_trusted_peer() {
    let dir = TempDir::new("proxy-protocol-untrusted");
    let example = Example::start(
        "axum",
        &[
            ("TRUSTED_PROXY_CIDRS", "127.0.0.1/32"),
            ("PROXY_PROTOCOL", "any"),
        ],
        dir.join("example.log"),
    );
    let forged = b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n";
    // From an address not trusted to send it: closed, no answer.
    assert_eq!(raw(example.addr(), "127.0.0.2", forged).await, "");
    // The same client without a header is its own client.
    let answer = raw(example.addr(), "127.0.0.2", b"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(body.contains("\"client_ip\":\"127.0.0.2\""), "{body}");
    // From the trusted load balancer: the header is required...
    assert_eq!(raw(example.addr(), "127.0.0.1", b"").await, "");
    // ...and believed.
    let answer = raw(example.addr(), "127.0.0.1", forged).await;
    assert!(
        answer.contains("\"client_ip\":\"198.51.100.9\""),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_terminating_mtls_forwards_the_verified_cn() {
    if interop_binary("curl").is_none() || interop_binary("haproxy").is_none() {
        return;
    }
    for (verify, with_certificate) in [("required", true), ("optional", false)] {
        let dir = TempDir::new("proxy-protocol-ssl");
        let pki = pki();
        // HAProxy's crt: the server chain and its key in one file.
        let server = dir.write(
            "haproxy.pem",
            format!("{}{}", pki.end().chain_pem(), pki.end().key_pem()),
        );
        let ca = dir.write("ca.pem", pki.ca().cert_pem());
        let client_pem = dir.write("client.pem", pki.client().chain_pem());
        let client_key = dir.write("client.key", pki.client().key_pem());
        let example = Example::start(
            "axum",
            &[
                ("TRUSTED_PROXY_CIDRS", "127.0.0.1/32"),
                ("PROXY_PROTOCOL", "v2"),
            ],
            dir.join("example.log"),
        );
        let (_haproxy, port) = haproxy(
            &dir,
            &format!("ssl crt {server} ca-file {ca} verify {verify}"),
            example.addr(),
            "send-proxy-v2-ssl-cn",
            Readiness::Tls,
        );
        let url = format!("https://localhost:{port}/whoami");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let mut args = vec![
            "--cacert",
            ca.as_str(),
            "--resolve",
            &resolve,
            "--interface",
            "127.0.0.2",
        ];
        if with_certificate {
            args.extend(["--cert", client_pem.as_str(), "--key", client_key.as_str()]);
        }
        args.push(&url);
        let (status, body) = curl_async(&args).await;
        assert_eq!(status, "200", "{verify}: {body}");
        let whoami: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(whoami["client_ip"], "127.0.0.2", "{body}");
        if with_certificate {
            assert_eq!(whoami["identity"]["source"], "forwarded", "{body}");
            assert_eq!(
                whoami["identity"]["common_name"], "client.example.com",
                "{body}"
            );
        } else {
            assert!(whoami["identity"].is_null(), "{body}");
        }
    }
}
