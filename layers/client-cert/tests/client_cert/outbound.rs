//! Outbound trust with real handshakes: a private CA from the environment
//! is added to the platform's roots; host names are still verified.

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_client_cert::{ClientCertLayer, ServerTls, TlsAcceptor};
use portcullis_identity::OutboundTrust;
use portcullis_identity::env::Env;
use portcullis_test_support::{TempDir, ThrowawayPki};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::support::{Server, spawn_with};

async fn private_server(pki: &ThrowawayPki) -> Server {
    let cert = pki.server().unwrap();
    let tls = ServerTls::from_pem(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    spawn_with(
        TlsAcceptor::new(tls.build().unwrap()),
        ClientCertLayer::new(),
    )
    .await
}

async fn handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn trust(vars: &[(&str, &str)]) -> Result<OutboundTrust, String> {
    OutboundTrust::from_env_prefixed(&Env::from_pairs(vars.iter().copied()), "TESTAPP")
        .map_err(|e| e.to_string())
}

fn files(pki: &ThrowawayPki) -> TempDir {
    let dir = TempDir::new("outbound");
    dir.write("private-ca.pem", pki.ca_pem());
    dir.write("empty.pem", "");
    dir.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n",
    );
    dir
}

#[tokio::test]
async fn a_private_ca_from_the_environment_is_added_to_the_platform_roots() {
    let pki = ThrowawayPki::new("Private").unwrap();
    let server = private_server(&pki).await;
    let files = files(&pki);
    let ca = files.file("private-ca.pem");

    let with = trust(&[("TESTAPP_CA_CERTIFICATE", &ca)]).unwrap();
    assert_eq!(with.extra_count(), 1);
    assert_eq!(
        with.extra_source().map(|(var, _)| var),
        Some("TESTAPP_CA_CERTIFICATE")
    );
    // Added to, not instead of, the platform store.
    assert!(
        with.platform_count() > 0,
        "no platform roots: is ca-certificates installed?"
    );
    assert_eq!(
        handshake(server.addr, with.client_config().unwrap(), "localhost").await,
        Ok(())
    );

    // Host names are still checked.
    let err = handshake(
        server.addr,
        with.client_config().unwrap(),
        "wrong.example.com",
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("not valid for name \"wrong.example.com\""),
        "{err}"
    );

    // Without it, the private CA is unknown.
    let without = trust(&[]).unwrap();
    assert_eq!(without.extra_count(), 0);
    let err = handshake(server.addr, without.client_config().unwrap(), "localhost")
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn ssl_cert_file_is_the_fallback_and_the_prefixed_variable_wins() {
    let pki = ThrowawayPki::new("Fallback").unwrap();
    let server = private_server(&pki).await;
    let files = files(&pki);

    let fallback = trust(&[("SSL_CERT_FILE", &files.file("private-ca.pem"))]).unwrap();
    assert_eq!(
        fallback.extra_source().map(|(var, _)| var),
        Some("SSL_CERT_FILE")
    );
    assert!(fallback.platform_count() > 0);
    assert_eq!(
        handshake(server.addr, fallback.client_config().unwrap(), "localhost").await,
        Ok(())
    );

    // The prefixed variable is used; a broken SSL_CERT_FILE is then not read.
    let both = trust(&[
        ("TESTAPP_CA_CERTIFICATE", &files.file("private-ca.pem")),
        ("SSL_CERT_FILE", &files.file("garbage.pem")),
    ])
    .unwrap();
    assert_eq!(
        both.extra_source().map(|(var, _)| var),
        Some("TESTAPP_CA_CERTIFICATE")
    );
    assert_eq!(
        handshake(server.addr, both.client_config().unwrap(), "localhost").await,
        Ok(())
    );
}

#[test]
fn bad_bundles_get_exact_errors() {
    let pki = ThrowawayPki::new("Errors").unwrap();
    let files = files(&pki);
    let empty = files.file("empty.pem");
    assert_eq!(
        trust(&[("TESTAPP_CA_CERTIFICATE", &empty)]).unwrap_err(),
        format!(
            "TESTAPP_CA_CERTIFICATE={empty:?}: no certificates found; it must hold PEM \"CERTIFICATE\" \
             (or \"TRUSTED CERTIFICATE\") blocks, or one DER certificate"
        )
    );
    let garbage = files.file("garbage.pem");
    assert_eq!(
        trust(&[("TESTAPP_CA_CERTIFICATE", &garbage)]).unwrap_err(),
        format!(
            "TESTAPP_CA_CERTIFICATE={garbage:?}: PEM block 1: its body is not valid base64; re-export the file as PEM"
        )
    );
    let missing = files.file("missing.pem");
    assert_eq!(
        trust(&[("SSL_CERT_FILE", &missing)]).unwrap_err(),
        format!(
            "SSL_CERT_FILE={missing:?}: cannot read it: No such file or directory (os error 2); \
             check the path and its permissions"
        )
    );
}
