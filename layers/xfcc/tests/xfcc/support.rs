//! A service that reports what the application saw.

use std::net::SocketAddr;

use http::{HeaderMap, Request};
use portcullis_identity::{ClientIdentity, PeerAddr, TlsConnectInfo};
use portcullis_test_support::{Recorded, through_layer};
use portcullis_xfcc::{ProxyIdentity, XfccLayer};

/// What the application received.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) identity: Option<ClientIdentity>,
    pub(crate) proxy_identity: Option<ClientIdentity>,
    pub(crate) headers: HeaderMap,
}

/// The answer, and what the app saw when it ran.
pub(crate) type Outcome = Recorded<Seen>;

/// Readings of what the app saw.
pub(crate) trait Observed {
    /// The identity's common name.
    fn cn(&self) -> Option<String>;
    /// Every value of `name` the app received, in order.
    fn header(&self, name: &str) -> Vec<String>;
}

impl Observed for Outcome {
    fn cn(&self) -> Option<String> {
        self.seen()
            .identity
            .as_ref()
            .and_then(|id| id.common_name().map(str::to_owned))
    }

    fn header(&self, name: &str) -> Vec<String> {
        values(&self.seen().headers, name)
    }
}

pub(crate) fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A request from `peer` (none: no connection info at all).
pub(crate) fn request(peer: Option<&str>, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().uri("/whoami");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder.body(()).unwrap();
    if let Some(peer) = peer {
        req.extensions_mut()
            .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    }
    req
}

/// A request on a TLS connection from `peer` that presented `chain`.
pub(crate) fn tls_request(peer: &str, chain: &[&[u8]], headers: &[(&str, &str)]) -> Request<()> {
    let mut req = request(None, headers);
    let info = TlsConnectInfo::builder(peer.parse().unwrap(), "127.0.0.1:8443".parse().unwrap())
        .peer_chain(
            chain
                .iter()
                .map(|der| rustls_pki_types::CertificateDer::from(der.to_vec()))
                .collect(),
        )
        .build();
    if let Some(identity) = info.client_identity() {
        // What ClientCertLayer puts there.
        req.extensions_mut().insert(identity.clone());
    }
    req.extensions_mut().insert(info);
    req
}

/// Runs `req` through `layer` and an app that records what it saw.
pub(crate) async fn run(layer: &XfccLayer, req: Request<()>) -> Outcome {
    through_layer(layer, req, |req| Seen {
        identity: req.extensions().get::<ClientIdentity>().cloned(),
        proxy_identity: req.extensions().get::<ProxyIdentity>().map(|p| p.0.clone()),
        headers: req.headers().clone(),
    })
    .await
}
