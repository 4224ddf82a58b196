//! A real TLS client for tests and the demo: rustls (with or without a
//! client certificate) and hyper, HTTP/1.1 or h2 chosen by ALPN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// Which HTTP version the client asks for with ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// `http/1.1`.
    H1,
    /// `h2`.
    H2,
}

/// A client certificate: chain PEM and key PEM.
#[derive(Debug, Clone, Copy)]
pub struct ClientCert<'a> {
    /// The certificate then its intermediates, PEM.
    pub chain_pem: &'a str,
    /// Its private key, PEM.
    pub key_pem: &'a str,
}

/// GET / over a fresh TLS connection. `Err` carries the TLS or HTTP error
/// text, e.g. `received fatal alert: CertificateRequired`.
pub async fn get(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    http: Http,
) -> Result<(StatusCode, String), String> {
    get_path(addr, root_pem, cert, http, "/").await
}

/// GET `path` over a fresh TLS connection; see [`get`].
pub async fn get_path(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    http: Http,
    path: &str,
) -> Result<(StatusCode, String), String> {
    connect(addr, root_pem, cert, http).await?.get(path).await
}

/// An open HTTP connection over TLS, for several requests.
#[derive(Debug)]
pub struct Connection {
    sender: Sender,
    conn: Option<tokio::task::JoinHandle<Result<(), hyper::Error>>>,
}

#[derive(Debug)]
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// A TLS connection to `addr` (as `localhost`, trusting `root_pem`), with
/// `cert` as the client certificate if any, offering `alpn`: the raw
/// stream, for tests that write bytes of their own.
pub async fn tls_stream(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(root.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?,
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    connector
        .connect(
            ServerName::try_from("localhost").map_err(|e| e.to_string())?,
            tcp,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Opens a TLS connection (with `cert` as the client certificate, if any)
/// and an HTTP/1.1 or h2 session on it.
pub async fn connect(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    http: Http,
) -> Result<Connection, String> {
    let alpn: &[u8] = match http {
        Http::H1 => b"http/1.1",
        Http::H2 => b"h2",
    };
    let tls = tls_stream(addr, root_pem, cert, &[alpn]).await?;
    let io = TokioIo::new(tls);
    let (sender, conn) = match http {
        Http::H1 => {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(error_chain)?;
            (Sender::H1(sender), tokio::spawn(conn))
        }
        Http::H2 => {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(error_chain)?;
            (Sender::H2(sender), tokio::spawn(conn))
        }
    };
    Ok(Connection {
        sender,
        conn: Some(conn),
    })
}

impl Connection {
    /// GET `path`; the status and the body as text.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, String), String> {
        let res = self.send(&[], path).await?;
        Ok((res.status(), res.into_body()))
    }

    /// GET `path` with extra `headers`; the whole response, body as text.
    pub async fn send(
        &mut self,
        headers: &[(&str, &str)],
        path: &str,
    ) -> Result<http::Response<String>, String> {
        let mut req = Request::builder()
            .uri(format!("https://localhost{path}"))
            .header("host", "localhost");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            let sent = match &mut self.sender {
                Sender::H1(sender) => sender.send_request(req).await,
                Sender::H2(sender) => sender.send_request(req).await,
            };
            let res = match sent {
                Ok(res) => res,
                // The TLS alert that refuses a client surfaces in the
                // connection task, not in `send_request`: report that.
                Err(error) => {
                    return Err(match self.conn.take() {
                        Some(conn) => connection_error(conn, error).await,
                        None => error_chain(error),
                    });
                }
            };
            let (parts, body) = res.into_parts();
            let body = body.collect().await.map_err(error_chain)?.to_bytes();
            Ok(http::Response::from_parts(
                parts,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        })
        .await;
        result.unwrap_or_else(|_| Err("timed out".to_owned()))
    }
}

/// The connection task's error when it has one, else the request's.
async fn connection_error(
    conn: tokio::task::JoinHandle<Result<(), hyper::Error>>,
    request_error: hyper::Error,
) -> String {
    match tokio::time::timeout(Duration::from_secs(5), conn).await {
        Ok(Ok(Err(conn_error))) => error_chain(conn_error),
        _ => error_chain(request_error),
    }
}

/// An error and its sources, so the TLS alert under a hyper error shows.
fn error_chain(error: impl std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
