//! Clients that connect and say nothing must not hold up anyone else, and
//! are dropped at the handshake deadline.

use std::time::Duration;

use http::StatusCode;
use portcullis_client_cert::{ClientAuth, ClientCertLayer, TlsAcceptor};
use portcullis_test_support::pki;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::{ClientCert, Http, committed_server, get, spawn_with};

#[tokio::test]
async fn five_hundred_silent_sockets_block_no_one_and_are_closed_at_the_deadline() {
    let pki = pki();
    let tls = committed_server(ClientAuth::Required);
    let deadline = Duration::from_secs(2);
    let acceptor = TlsAcceptor::new(tls.build().unwrap()).with_handshake_timeout(deadline);
    let server = spawn_with(acceptor, ClientCertLayer::new().required()).await;

    let mut silent = Vec::new();
    for _ in 0..500 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // A real client is served while all 500 are still connected and silent.
    let client = ClientCert {
        chain_pem: pki.client().chain_pem(),
        key_pem: pki.client().key_pem(),
    };
    let got = get(server.addr, pki.ca().cert_pem(), Some(client), Http::H2)
        .await
        .unwrap();
    assert_eq!(got.0, StatusCode::OK);
    assert!(got.1.starts_with("cn=client.example.com"));

    // Every silent socket is then closed by the server (EOF or reset), and
    // not before the deadline could have passed for it.
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(deadline * 10, socket.read(&mut byte)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            other => panic!("silent socket not closed by the server: {other:?}"),
        }
    }
}

/// A consumer that stops accepting bounds the finished connections waiting
/// for it: with room for 2, a third client's handshake does not complete
/// until one is taken.
#[tokio::test]
async fn an_idle_consumer_bounds_waiting_connections() {
    use portcullis_client_cert::TlsListener;

    let pki = pki();
    let acceptor = TlsAcceptor::new(committed_server(ClientAuth::None).build().unwrap());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut listener = TlsListener::with_max_handshakes(tcp, acceptor, 2);

    let connect =
        move || portcullis_test_support::client::connect(addr, pki.ca().cert_pem(), None, Http::H1);
    let first = connect().await.unwrap();
    let second = connect().await.unwrap();
    // Nobody has called accept(): the third handshake must not finish.
    let third = tokio::spawn(async move { connect().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was handshaken while two waited"
    );
    // Taking one lets it through.
    let (_taken, _) = listener.accept().await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), third)
            .await
            .unwrap()
            .unwrap(),
        Ok(())
    );
    drop((first, second));
}

/// `ServeOptions`: past `max_connections` a connection waits unserved; an
/// HTTP/1.1 keep-alive connection left idle past the header-read timeout is
/// closed by the server, which lets the waiting one in.
#[tokio::test]
async fn connections_are_capped_and_an_idle_keep_alive_one_is_closed() {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use portcullis_client_cert::{ServeOptions, TlsListener};

    let pki = pki();
    let acceptor = TlsAcceptor::new(committed_server(ClientAuth::None).build().unwrap());
    let listener = TlsListener::bind("127.0.0.1:0", acceptor).await.unwrap();
    let addr = listener.local_addr();
    let app = tower::service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    tokio::spawn(
        ServeOptions::default()
            .max_connections(1)
            .header_read_timeout(Duration::from_secs(2))
            .serve(listener, app, std::future::pending()),
    );
    let connect =
        move || portcullis_test_support::client::connect(addr, pki.ca().cert_pem(), None, Http::H1);
    let mut first = connect().await.unwrap();
    assert_eq!(first.get("/").await.unwrap().0, StatusCode::OK);
    // The listener finishes the second handshake, but no one serves it
    // while the first connection is open.
    let second = tokio::spawn(async move { connect().await?.get("/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served past max_connections(1)"
    );
    // The first, idle past the 2 s header-read timeout, is closed; the
    // second is served then.
    let got = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.0, StatusCode::OK);
    assert!(
        first.get("/").await.is_err(),
        "the idle connection is still open"
    );
}
