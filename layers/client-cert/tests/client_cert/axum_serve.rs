//! Plain `axum::serve` over the TLS listener: handlers get the identity
//! through the extractor, whichever HTTP version carried the request.

use axum::Router;
use axum::routing::get as route_get;
use http::StatusCode;
use portcullis_client_cert::{
    ClientAuth, ClientCertLayer, TlsAcceptor, TlsListener, WithTlsConnectInfo,
};
use portcullis_identity::ClientIdentity;
use portcullis_test_support::pki;

use crate::support::{ClientCert, Http, committed_server, get, get_path};

async fn whoami(identity: Option<ClientIdentity>) -> String {
    match identity {
        Some(id) => format!("cn={}", id.common_name().unwrap_or("-")),
        None => "anonymous".to_owned(),
    }
}

async fn strict(identity: ClientIdentity) -> String {
    format!("strict cn={}", identity.common_name().unwrap_or("-"))
}

#[tokio::test]
async fn axum_serve_with_the_tls_listener() {
    let pki = pki();
    let tls = committed_server(ClientAuth::Optional);
    let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(tls.build().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr();
    let app = Router::new()
        .route("/", route_get(whoami))
        .route("/strict", route_get(strict))
        .layer(ClientCertLayer::new());
    tokio::spawn(async move { axum::serve(listener, WithTlsConnectInfo::new(app)).await });

    let client = || ClientCert {
        chain_pem: pki.client().chain_pem(),
        key_pem: pki.client().key_pem(),
    };
    for http in [Http::H1, Http::H2] {
        assert_eq!(
            get(addr, pki.ca().cert_pem(), Some(client()), http).await,
            Ok((StatusCode::OK, "cn=client.example.com".to_owned()))
        );
        assert_eq!(
            get(addr, pki.ca().cert_pem(), None, http).await,
            Ok((StatusCode::OK, "anonymous".to_owned()))
        );
        assert_eq!(
            get_path(addr, pki.ca().cert_pem(), Some(client()), http, "/strict").await,
            Ok((StatusCode::OK, "strict cn=client.example.com".to_owned()))
        );
        // The extractor itself answers 401 when the identity is missing.
        let (status, body) = get_path(addr, pki.ca().cert_pem(), None, http, "/strict")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.starts_with("client certificate required"), "{body}");
    }
}
