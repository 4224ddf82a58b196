//! Outbound trust from memory: a CA made at start-up (as a deployment's
//! own throwaway PKI is) and added with `OutboundTrust::add_roots` is
//! what lets a real handshake with a server it issued succeed; the
//! platform's roots alone refuse it.

use std::sync::Arc;

use portcullis_identity::OutboundTrust;
use portcullis_test_support::ThrowawayPki;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

/// A TLS server for `localhost` issued by `pki`, accepting handshakes.
async fn server(pki: &ThrowawayPki) -> std::net::SocketAddr {
    let issued = pki.server().unwrap();
    let chain = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    addr
}

async fn handshake(trust: &OutboundTrust, addr: std::net::SocketAddr) -> Result<(), String> {
    let connector = tokio_rustls::TlsConnector::from(trust.client_config().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn roots_made_in_memory_are_trusted_beside_the_platforms() {
    let pki = ThrowawayPki::new("outbound").unwrap();
    let addr = server(&pki).await;

    let platform = OutboundTrust::platform().unwrap();
    let refused = handshake(&platform, addr).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    let platform_count = platform.platform_count();
    let trust = platform
        .add_roots([CertificateDer::from(pki.ca_der())])
        .unwrap();
    assert_eq!(trust.extra_count(), 1);
    assert_eq!(trust.platform_count(), platform_count);
    handshake(&trust, addr).await.unwrap();
}

#[test]
fn a_root_that_is_not_a_certificate_is_refused_by_its_position() {
    let error = OutboundTrust::platform()
        .unwrap()
        .add_roots([CertificateDer::from(b"not DER".to_vec())])
        .unwrap_err();
    assert!(
        error.to_string().contains("root 1 given in memory"),
        "{error}"
    );
}
