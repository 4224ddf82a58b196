//! A server under test and a rustls + hyper client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_client_cert::{ClientCertLayer, ServerTls, TlsAcceptor, TlsListener, serve};
use portcullis_identity::{ClientIdentity, TlsConnectInfo};
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tower::ServiceBuilder;

/// What the handler saw, as one line: `cn=..;spiffe=..;source=..;alpn=..`
/// or `anonymous;alpn=..`.
pub(crate) fn describe(req: &Request<hyper::body::Incoming>) -> String {
    let alpn = req
        .extensions()
        .get::<TlsConnectInfo>()
        .and_then(|info| info.alpn().map(|a| String::from_utf8_lossy(a).into_owned()))
        .unwrap_or_default();
    match req.extensions().get::<ClientIdentity>() {
        Some(id) => format!(
            "cn={};spiffe={};source={};alpn={alpn}",
            id.common_name().unwrap_or("-"),
            id.spiffe_id().map_or("-".to_owned(), |s| s.to_string()),
            id.source().as_str()
        ),
        None => format!("anonymous;alpn={alpn}"),
    }
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn spawn(tls: ServerTls, layer: ClientCertLayer) -> Server {
    spawn_with(TlsAcceptor::new(tls.build().unwrap()), layer).await
}

pub(crate) async fn spawn_with(acceptor: TlsAcceptor, layer: ClientCertLayer) -> Server {
    let listener = TlsListener::bind("127.0.0.1:0", acceptor).await.unwrap();
    let addr = listener.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = ServiceBuilder::new().layer(layer).service_fn(
        |req: Request<hyper::body::Incoming>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(describe(&req)))))
        },
    );
    tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
    }
}

/// Which HTTP version the client asks for with ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Http {
    H1,
    H2,
}

/// A client certificate: chain PEM and key PEM.
pub(crate) struct ClientCert<'a> {
    pub(crate) chain_pem: &'a str,
    pub(crate) key_pem: &'a str,
}

/// GET / over a fresh TLS connection. `Err` carries the TLS or HTTP error
/// text, e.g. `received fatal alert: CertificateRequired`.
pub(crate) async fn get(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    http: Http,
) -> Result<(StatusCode, String), String> {
    get_path(addr, root_pem, cert, http, "/").await
}

/// GET `path` over a fresh TLS connection; see [`get`].
pub(crate) async fn get_path(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<ClientCert<'_>>,
    http: Http,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![match http {
        Http::H1 => b"http/1.1".to_vec(),
        Http::H2 => b"h2".to_vec(),
    }];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let req = Request::builder()
        .uri(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let res = match http {
            Http::H1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(error_chain)?;
                tokio::spawn(conn);
                sender.send_request(req).await.map_err(error_chain)?
            }
            Http::H2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .map_err(error_chain)?;
                tokio::spawn(conn);
                sender.send_request(req).await.map_err(error_chain)?
            }
        };
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(error_chain)?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await;
    result.unwrap_or_else(|_| Err("timed out".to_owned()))
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
