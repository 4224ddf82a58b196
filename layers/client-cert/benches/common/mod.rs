//! Servers and the load driver shared by the listener benches.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use portcullis_client_cert::{
    ClientAuth, ClientCertLayer, ProxyProtocol, ServerTls, TlsAcceptor, TlsListener, serve,
};
use portcullis_test_support::pki;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

pub const CONNECTIONS: u64 = 16;
pub const HANDSHAKERS: u64 = 8;

pub fn server_config() -> Arc<rustls::ServerConfig> {
    let pki = pki();
    ServerTls::from_pem(
        pki.end().chain_pem().as_bytes(),
        pki.end().key_pem().as_bytes(),
    )
    .unwrap()
    .with_client_ca_pem(pki.ca().cert_pem().as_bytes())
    .unwrap()
    .with_client_auth(ClientAuth::Required)
    .build()
    .unwrap()
}

pub fn client_config(alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let pki = pki();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca().der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(pki.client().chain_pem().as_bytes())
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(pki.client().key_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    // Every connection a full handshake.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

pub fn router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_connect_after(addr, config, &[]).await
}

/// A PROXY v2 header for 203.0.113.7:51000 → 10.0.0.1:443, as HAProxy's
/// `send-proxy-v2` writes one.
pub const PROXY_V2: &[u8] = &[
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
    203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x01, 0xBB,
];

/// [`tls_connect`] after writing `prefix` (a PROXY header) on the TCP
/// connection.
pub async fn tls_connect_after(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    prefix: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    if !prefix.is_empty() {
        tcp.write_all(prefix).await.unwrap();
    }
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends `total` GETs over `CONNECTIONS` keep-alive HTTP/1.1 connections;
/// times only the requests.
pub async fn drive_requests(addr: SocketAddr, total: u64) -> Duration {
    let config = client_config(b"http/1.1");
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        let tls = tls_connect(addr, config.clone()).await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut sender)| {
            let share = total / CONNECTIONS + u64::from((i as u64) < total % CONNECTIONS);
            tokio::spawn(async move {
                for _ in 0..share {
                    let req = Request::get("/")
                        .header("host", "localhost")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let res = sender.send_request(req).await.unwrap();
                    assert!(res.status().is_success());
                    res.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// `total` new mTLS connections from `HANDSHAKERS` concurrent clients, each
/// waiting for the server's two-byte greeting (so the server finished).
pub async fn drive_handshakes(addr: SocketAddr, total: u64) -> Duration {
    drive_handshakes_after(addr, total, &[]).await
}

/// [`drive_handshakes`], each connection starting with `prefix`.
pub async fn drive_handshakes_after(
    addr: SocketAddr,
    total: u64,
    prefix: &'static [u8],
) -> Duration {
    let config = client_config(b"http/1.1");
    let start = Instant::now();
    let tasks: Vec<_> = (0..HANDSHAKERS)
        .map(|i| {
            let config = config.clone();
            let share = total / HANDSHAKERS + u64::from(i < total % HANDSHAKERS);
            tokio::spawn(async move {
                for _ in 0..share {
                    let mut tls = tls_connect_after(addr, config.clone(), prefix).await;
                    let mut greeting = [0u8; 2];
                    tls.read_exact(&mut greeting).await.unwrap();
                    assert_eq!(&greeting, b"ok");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

pub async fn spawn_axum_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(config);
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(std_listener, tls)
            .unwrap()
            .serve(router().into_make_service())
            .await
    });
    addr
}

pub async fn spawn_portcullis(config: Arc<rustls::ServerConfig>, layer: bool) -> SocketAddr {
    let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(config))
        .await
        .unwrap();
    let addr = listener.local_addr();
    if layer {
        let app = ServiceBuilder::new()
            .layer(ClientCertLayer::new().required())
            .service(router());
        tokio::spawn(serve(listener, app, std::future::pending()));
    } else {
        tokio::spawn(serve(listener, router(), std::future::pending()));
    }
    addr
}

pub async fn spawn_bare_accept_loop(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tcp.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    // The same socket options as TlsAcceptor, so the ratio
                    // measures the listener's machinery alone.
                    let _ = tls.get_ref().0.set_nodelay(true);
                    let _ = tls.write_all(b"ok").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

pub async fn spawn_listener_greeter(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    spawn_listener_greeter_with(config, ProxyProtocol::default()).await
}

/// [`spawn_listener_greeter`] reading the PROXY protocol as `proxy` says.
pub async fn spawn_listener_greeter_with(
    config: Arc<rustls::ServerConfig>,
    proxy: ProxyProtocol,
) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = TlsListener::with_proxy_protocol(tcp, TlsAcceptor::new(config), proxy);
    let addr = listener.local_addr();
    tokio::spawn(async move {
        while let Some((mut tls, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tls.write_all(b"ok").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
