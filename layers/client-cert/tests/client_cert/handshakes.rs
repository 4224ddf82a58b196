//! Required, optional and no client auth; wrong CA, expired, revoked;
//! SPIFFE allow-lists — each with the exact outcome.

use http::StatusCode;
use portcullis_client_cert::{
    ClientAuth, ClientCertLayer, Policy, Revocation, RevocationDepth, ServerTls,
};
use portcullis_test_support::{ClientProfile, IssuedCert, ThrowawayPki, pki};

use crate::support::{ClientCert, Http, committed_server, get, spawn};

fn fixture(f: portcullis_test_support::Fixture) -> ClientCert<'static> {
    ClientCert {
        chain_pem: f.chain_pem(),
        key_pem: f.key_pem(),
    }
}

fn issued(cert: &IssuedCert) -> ClientCert<'_> {
    ClientCert {
        chain_pem: &cert.chain_pem,
        key_pem: &cert.key_pem,
    }
}

const ROOT: fn() -> &'static str = || pki().ca().cert_pem();

#[tokio::test]
async fn required_mtls_over_h1_and_h2_shows_the_identity() {
    let server = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new().required(),
    )
    .await;
    for (http, alpn) in [(Http::H1, "http/1.1"), (Http::H2, "h2")] {
        let got = get(server.addr, ROOT(), Some(fixture(pki().client())), http).await;
        assert_eq!(
            got,
            Ok((
                StatusCode::OK,
                format!("cn=client.example.com;spiffe=-;source=tls;alpn={alpn}")
            ))
        );
    }
    let got = get(
        server.addr,
        ROOT(),
        Some(fixture(pki().client_spiffe())),
        Http::H2,
    )
    .await;
    assert_eq!(
        got,
        Ok((
            StatusCode::OK,
            "cn=workload.example.com;spiffe=spiffe://example.org/ns/prod/sa/api;source=tls;alpn=h2"
                .to_owned()
        ))
    );
}

#[tokio::test]
async fn required_refuses_the_handshake_without_a_certificate() {
    let server = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new(),
    )
    .await;
    let err = get(server.addr, ROOT(), None, Http::H1).await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let server = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new(),
    )
    .await;
    let stranger = ThrowawayPki::new("Stranger")
        .unwrap()
        .client(ClientProfile::Plain)
        .unwrap();
    let err = get(server.addr, ROOT(), Some(issued(&stranger)), Http::H1)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownCA"), "{err}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let server = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new(),
    )
    .await;
    let err = get(
        server.addr,
        ROOT(),
        Some(fixture(pki().client_expired())),
        Http::H2,
    )
    .await
    .unwrap_err();
    assert!(err.contains("CertificateExpired"), "{err}");
}

#[tokio::test]
async fn optional_lets_anonymous_clients_in_and_the_layer_decides() {
    let server = spawn(
        committed_server(ClientAuth::Optional),
        ClientCertLayer::new(),
    )
    .await;
    assert_eq!(
        get(server.addr, ROOT(), None, Http::H1).await,
        Ok((StatusCode::OK, "anonymous;alpn=http/1.1".to_owned()))
    );
    let got = get(server.addr, ROOT(), Some(fixture(pki().client())), Http::H1)
        .await
        .unwrap();
    assert_eq!(
        got.1,
        "cn=client.example.com;spiffe=-;source=tls;alpn=http/1.1"
    );

    let strict = spawn(
        committed_server(ClientAuth::Optional),
        ClientCertLayer::new().required(),
    )
    .await;
    assert_eq!(
        get(strict.addr, ROOT(), None, Http::H2).await,
        Ok((
            StatusCode::UNAUTHORIZED,
            "client certificate required\n".to_owned()
        ))
    );
}

#[tokio::test]
async fn no_client_auth_never_yields_an_identity() {
    let server = spawn(committed_server(ClientAuth::None), ClientCertLayer::new()).await;
    let got = get(server.addr, ROOT(), Some(fixture(pki().client())), Http::H1).await;
    assert_eq!(
        got,
        Ok((StatusCode::OK, "anonymous;alpn=http/1.1".to_owned()))
    );
}

#[tokio::test]
async fn spiffe_trust_domain_allow_list() {
    let layer = ClientCertLayer::new()
        .required()
        .allow_spiffe_trust_domains(["example.org"]);
    let server = spawn(committed_server(ClientAuth::Required), layer).await;
    let allowed = get(
        server.addr,
        ROOT(),
        Some(fixture(pki().client_spiffe())),
        Http::H2,
    )
    .await
    .unwrap();
    assert_eq!(allowed.0, StatusCode::OK);
    assert!(
        allowed
            .1
            .contains("spiffe=spiffe://example.org/ns/prod/sa/api")
    );
    // A certificate without a SPIFFE ID, and one with two URI SANs.
    for denied in [pki().client(), pki().client_multi_uri()] {
        assert_eq!(
            get(server.addr, ROOT(), Some(fixture(denied)), Http::H2).await,
            Ok((
                StatusCode::FORBIDDEN,
                "client certificate identity not allowed\n".to_owned()
            ))
        );
    }
    let other_domain = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new().allow_spiffe_trust_domains(["example.com"]),
    )
    .await;
    let got = get(
        other_domain.addr,
        ROOT(),
        Some(fixture(pki().client_spiffe())),
        Http::H1,
    )
    .await
    .unwrap();
    assert_eq!(got.0, StatusCode::FORBIDDEN);
}

/// A fresh PKI: server cert, a revoked and a good client, CRLs.
struct RevocationSetup {
    pki: ThrowawayPki,
    server: IssuedCert,
    revoked: IssuedCert,
    good: IssuedCert,
}

fn revocation_setup() -> RevocationSetup {
    let pki = ThrowawayPki::new("Revocation").unwrap();
    RevocationSetup {
        server: pki.server().unwrap(),
        revoked: pki.client(ClientProfile::Plain).unwrap(),
        good: pki.client(ClientProfile::Spiffe).unwrap(),
        pki,
    }
}

impl RevocationSetup {
    fn tls(&self, crls: &[String], revocation: Revocation) -> ServerTls {
        let mut tls = ServerTls::from_pem(
            self.server.chain_pem.as_bytes(),
            self.server.key_pem.as_bytes(),
        )
        .unwrap()
        .with_client_ca_pem(self.pki.ca_pem().as_bytes())
        .unwrap()
        .with_client_auth(ClientAuth::Required)
        .with_revocation(revocation);
        for crl in crls {
            tls = tls.with_crl_pem(crl.as_bytes()).unwrap();
        }
        tls
    }
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_and_the_issuing_ca_crl_alone_suffices() {
    let setup = revocation_setup();
    let crl = setup.pki.inter_crl(&[&setup.revoked], false).unwrap();
    // Default: leaf only, so the intermediate's CRL covers a chain through it.
    let server = spawn(
        setup.tls(std::slice::from_ref(&crl), Revocation::default()),
        ClientCertLayer::new(),
    )
    .await;
    let root = setup.pki.ca_pem();
    let err = get(server.addr, &root, Some(issued(&setup.revoked)), Http::H1)
        .await
        .unwrap_err();
    assert!(err.contains("CertificateRevoked"), "{err}");
    let ok = get(server.addr, &root, Some(issued(&setup.good)), Http::H1)
        .await
        .unwrap();
    assert_eq!(ok.0, StatusCode::OK);

    // Whole-chain checking needs the root's CRL for the intermediate too.
    let chain = Revocation {
        depth: RevocationDepth::Chain,
        ..Revocation::default()
    };
    let strict = spawn(
        setup.tls(std::slice::from_ref(&crl), chain),
        ClientCertLayer::new(),
    )
    .await;
    let err = get(strict.addr, &root, Some(issued(&setup.good)), Http::H1)
        .await
        .unwrap_err();
    assert!(err.contains("alert"), "{err}");
    let ca_crl = setup.pki.ca_crl(&[]).unwrap();
    let complete = spawn(setup.tls(&[crl, ca_crl], chain), ClientCertLayer::new()).await;
    assert_eq!(
        get(complete.addr, &root, Some(issued(&setup.good)), Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_crl_refuses_by_default_and_can_be_allowed() {
    let setup = revocation_setup();
    let expired = setup.pki.inter_crl(&[], true).unwrap();
    let root = setup.pki.ca_pem();
    let server = spawn(
        setup.tls(std::slice::from_ref(&expired), Revocation::default()),
        ClientCertLayer::new(),
    )
    .await;
    let err = get(server.addr, &root, Some(issued(&setup.good)), Http::H1)
        .await
        .unwrap_err();
    assert!(err.contains("alert"), "{err}");
    let lenient = Revocation {
        expired_crl: Policy::Allow,
        ..Revocation::default()
    };
    let server = spawn(setup.tls(&[expired], lenient), ClientCertLayer::new()).await;
    assert_eq!(
        get(server.addr, &root, Some(issued(&setup.good)), Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_certificate_whose_issuer_has_no_crl_is_refused_by_default() {
    let setup = revocation_setup();
    // Only the root's CRL: the leaf's issuer (the intermediate) has none.
    let only_root = setup.pki.ca_crl(&[]).unwrap();
    let root = setup.pki.ca_pem();
    let server = spawn(
        setup.tls(std::slice::from_ref(&only_root), Revocation::default()),
        ClientCertLayer::new(),
    )
    .await;
    assert!(
        get(server.addr, &root, Some(issued(&setup.good)), Http::H1)
            .await
            .is_err()
    );
    let allow_unknown = Revocation {
        unknown_status: Policy::Allow,
        ..Revocation::default()
    };
    let server = spawn(
        setup.tls(&[only_root], allow_unknown),
        ClientCertLayer::new(),
    )
    .await;
    assert_eq!(
        get(server.addr, &root, Some(issued(&setup.good)), Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_on_one_connection_share_one_parse_of_the_leaf() {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use portcullis_client_cert::{TlsAcceptor, TlsListener, serve};
    use portcullis_identity::ClientIdentity;
    use portcullis_test_support::client::connect;
    use tower::ServiceBuilder;

    let seen: Arc<Mutex<Vec<ClientIdentity>>> = Arc::default();
    let record = seen.clone();
    let listener = TlsListener::bind(
        "127.0.0.1:0",
        TlsAcceptor::new(committed_server(ClientAuth::Required).build().unwrap()),
    )
    .await
    .unwrap();
    let addr = listener.local_addr();
    let app = ServiceBuilder::new()
        .layer(ClientCertLayer::new().required())
        .service_fn(move |req: Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let identity = req.extensions().get::<ClientIdentity>().cloned().unwrap();
                record.lock().unwrap().push(identity);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
    tokio::spawn(serve(listener, app, std::future::pending()));

    for http in [Http::H1, Http::H2] {
        let mut conn = connect(addr, ROOT(), Some(fixture(pki().client())), http)
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(conn.get("/").await.unwrap().0, StatusCode::OK);
        }
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6);
    // Within a connection: one parse. Across connections: separate ones.
    assert!(
        ClientIdentity::ptr_eq(&seen[0], &seen[1]) && ClientIdentity::ptr_eq(&seen[1], &seen[2])
    );
    assert!(
        ClientIdentity::ptr_eq(&seen[3], &seen[4]) && ClientIdentity::ptr_eq(&seen[4], &seen[5])
    );
    assert!(!ClientIdentity::ptr_eq(&seen[2], &seen[3]));
    assert_eq!(seen[2], seen[3]);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_serve_returns_once_connections_close() {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use portcullis_client_cert::{TlsAcceptor, TlsListener, serve};
    use portcullis_test_support::client::connect;
    use tokio::sync::oneshot;

    let listener = TlsListener::bind(
        "127.0.0.1:0",
        TlsAcceptor::new(committed_server(ClientAuth::None).build().unwrap()),
    )
    .await
    .unwrap();
    let addr = listener.local_addr();
    let app = tower::service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let mut open = connect(addr, ROOT(), None, Http::H2).await.unwrap();
    assert_eq!(open.get("/").await.unwrap().0, StatusCode::OK);

    stop.send(()).unwrap();
    // The h2 connection is told to go away; serve returns once it has.
    drop(open);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "the listener must be closed after shutdown"
    );
}
