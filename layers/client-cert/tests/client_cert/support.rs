//! A server under test and a rustls + hyper client.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use portcullis_client_cert::{
    ClientAuth, ClientCertLayer, ServerTls, TlsAcceptor, TlsListener, serve,
};
use portcullis_identity::{ClientIdentity, TlsConnectInfo};
pub(crate) use portcullis_test_support::client::{ClientCert, Http, get, get_path};
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

/// The committed server certificate; with client CAs from the committed
/// root unless `auth` is `None`.
pub(crate) fn committed_server(auth: ClientAuth) -> ServerTls {
    let pki = portcullis_test_support::pki();
    let tls = ServerTls::from_pem(
        pki.end().chain_pem().as_bytes(),
        pki.end().key_pem().as_bytes(),
    )
    .unwrap();
    match auth {
        ClientAuth::None => tls,
        mode => tls
            .with_client_ca_pem(pki.ca().cert_pem().as_bytes())
            .unwrap()
            .with_client_auth(mode),
    }
}
