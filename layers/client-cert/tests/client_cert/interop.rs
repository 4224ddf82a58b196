//! Real outside clients: curl and openssl s_client.

use std::process::Command;

use portcullis_client_cert::{ClientAuth, ClientCertLayer, ServerTls};
use portcullis_test_support::{TempDir, interop_binary, pki};

use crate::support::{committed_server, spawn};

/// A scratch directory holding the fixture files these tests name.
fn files(name: &str) -> TempDir {
    let dir = TempDir::new(&format!("interop-{name}"));
    let pki = pki();
    for (file, text) in [
        ("ca.pem", pki.ca().cert_pem()),
        ("inter.pem", pki.inter().cert_pem()),
        ("client.pem", pki.client().chain_pem()),
        ("client.key", pki.client().key_pem()),
        ("spiffe.pem", pki.client_spiffe().chain_pem()),
        ("spiffe.key", pki.client_spiffe().key_pem()),
        ("expired.pem", pki.client_expired().chain_pem()),
        ("expired.key", pki.client_expired().key_pem()),
    ] {
        dir.write(file, text);
    }
    dir
}

/// Runs curl in a blocking task; returns (exit code, status code, body).
async fn curl(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || portcullis_test_support::curl(&args))
        .await
        .unwrap();
    (out.code, out.status, out.body)
}

#[tokio::test]
async fn curl_with_and_without_a_client_certificate() {
    if interop_binary("curl").is_none() {
        return;
    }
    let f = files("curl");
    let server = spawn(
        committed_server(ClientAuth::Optional),
        ClientCertLayer::new().required(),
    )
    .await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let base = vec![
        "--resolve".to_owned(),
        resolve,
        "--cacert".to_owned(),
        f.file("ca.pem"),
    ];

    for (flag, alpn) in [("--http1.1", "http/1.1"), ("--http2", "h2")] {
        let mut args = base.clone();
        args.extend([
            flag.to_owned(),
            "--cert".to_owned(),
            f.file("client.pem"),
            "--key".to_owned(),
            f.file("client.key"),
            url.clone(),
        ]);
        let (code, status, body) = curl(args).await;
        assert_eq!((code, status.as_str()), (0, "200"), "{body}");
        assert_eq!(
            body,
            format!("cn=client.example.com;spiffe=-;source=tls;alpn={alpn}")
        );
    }

    let mut args = base.clone();
    args.extend([
        "--cert".to_owned(),
        f.file("spiffe.pem"),
        "--key".to_owned(),
        f.file("spiffe.key"),
        url.clone(),
    ]);
    let (_, status, body) = curl(args).await;
    assert_eq!(status, "200");
    assert!(
        body.contains("spiffe=spiffe://example.org/ns/prod/sa/api"),
        "{body}"
    );

    // Optional TLS, required by the layer: no certificate is a 401.
    let mut args = base.clone();
    args.push(url.clone());
    let (code, status, body) = curl(args).await;
    assert_eq!(
        (code, status.as_str(), body.as_str()),
        (0, "401", "client certificate required\n")
    );

    // An expired certificate fails the handshake: curl exits non-zero, no status.
    let mut args = base;
    args.extend([
        "--cert".to_owned(),
        f.file("expired.pem"),
        "--key".to_owned(),
        f.file("expired.key"),
        url,
    ]);
    let (code, status, _) = curl(args).await;
    assert_ne!(code, 0);
    assert_eq!(status, "000");
}

/// Runs `openssl s_client`, sends a GET and returns everything it printed.
async fn s_client(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .arg("s_client")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        // s_client exits when the server closes; keep stdin open until then.
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn openssl_s_client_tls12_and_tls13_with_alpn() {
    if interop_binary("openssl").is_none() {
        return;
    }
    let f = files("s_client");
    let server = spawn(
        committed_server(ClientAuth::Required),
        ClientCertLayer::new().required(),
    )
    .await;
    let connect = format!("127.0.0.1:{}", server.addr.port());
    for (version, protocol) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let args = vec![
            "-connect".to_owned(),
            connect.clone(),
            "-servername".to_owned(),
            "localhost".to_owned(),
            version.to_owned(),
            "-alpn".to_owned(),
            "http/1.1".to_owned(),
            "-CAfile".to_owned(),
            f.file("ca.pem"),
            // s_client sends only the first certificate of -cert; the
            // intermediate goes in -cert_chain.
            "-cert".to_owned(),
            f.file("client.pem"),
            "-cert_chain".to_owned(),
            f.file("inter.pem"),
            "-key".to_owned(),
            f.file("client.key"),
            "-verify_return_error".to_owned(),
            "-ign_eof".to_owned(),
        ];
        let (_, text) = s_client(args).await;
        assert!(
            text.contains(&format!("Protocol  : {protocol}"))
                || text.contains(&format!("New, {protocol}")),
            "{text}"
        );
        assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
        assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
        assert!(
            text.contains("cn=client.example.com;spiffe=-;source=tls;alpn=http/1.1"),
            "{text}"
        );
    }
    // Without a certificate the server refuses the handshake.
    let args = vec![
        "-connect".to_owned(),
        connect,
        "-servername".to_owned(),
        "localhost".to_owned(),
        "-tls1_3".to_owned(),
        "-CAfile".to_owned(),
        f.file("ca.pem"),
        "-ign_eof".to_owned(),
    ];
    let (_, text) = s_client(args).await;
    assert!(
        text.contains("alert certificate required") || text.contains("certificate required"),
        "{text}"
    );
    assert!(!text.contains("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn curl_wrong_ca_revoked_and_spiffe_deny() {
    use portcullis_test_support::{ClientProfile, ThrowawayPki};

    if interop_binary("curl").is_none() {
        return;
    }
    let f = files("curl-deny");
    let pki = ThrowawayPki::new("Curl").unwrap();
    let server_cert = pki.server().unwrap();
    let revoked = pki.client(ClientProfile::Spiffe).unwrap();
    let good = pki.client(ClientProfile::Spiffe).unwrap();
    let plain = pki.client(ClientProfile::Plain).unwrap();
    let stranger = ThrowawayPki::new("Stranger")
        .unwrap()
        .client(ClientProfile::Spiffe)
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = f.file(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = write("curl-ca.pem", &pki.ca_pem());
    let tls = ServerTls::from_pem(
        server_cert.chain_pem.as_bytes(),
        server_cert.key_pem.as_bytes(),
    )
    .unwrap()
    .with_client_ca_pem(pki.ca_pem().as_bytes())
    .unwrap()
    .with_crl_pem(pki.inter_crl(&[&revoked], false).unwrap().as_bytes())
    .unwrap()
    .with_client_auth(ClientAuth::Required);
    let server = spawn(
        tls,
        ClientCertLayer::new().allow_spiffe_trust_domains(["example.org"]),
    )
    .await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let run = |name: &str, cert: &portcullis_test_support::IssuedCert| {
        let cert_path = write(&format!("{name}.pem"), &cert.chain_pem);
        let key_path = write(&format!("{name}.key"), &cert.key_pem);
        vec![
            "--resolve".to_owned(),
            resolve.clone(),
            "--cacert".to_owned(),
            ca.clone(),
            "--cert".to_owned(),
            cert_path,
            "--key".to_owned(),
            key_path,
            url.clone(),
        ]
    };

    let (code, status, body) = curl(run("good", &good)).await;
    assert_eq!((code, status.as_str()), (0, "200"), "{body}");
    assert!(
        body.contains("spiffe=spiffe://example.org/ns/prod/sa/api"),
        "{body}"
    );
    // No SPIFFE ID: allowed by TLS, denied by the layer.
    assert_eq!(
        curl(run("plain", &plain)).await,
        (
            0,
            "403".to_owned(),
            "client certificate identity not allowed\n".to_owned()
        )
    );
    // Revoked and wrong-CA certificates fail the handshake: no HTTP status.
    for (name, cert) in [("revoked", &revoked), ("stranger", &stranger)] {
        let (code, status, _) = curl(run(name, cert)).await;
        assert_ne!(code, 0, "{name}");
        assert_eq!(status, "000", "{name}");
    }
}

/// Server keys in SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`),
/// written by openssl, load and serve.
#[tokio::test]
async fn sec1_and_pkcs1_server_keys_load() {
    use crate::support::{Http, get};

    if interop_binary("openssl").is_none() {
        return;
    }
    let f = files("keys");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(f.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The committed server key (PKCS#8) rewritten as SEC1.
    std::fs::write(f.join("end.key"), pki().end().key_pem()).unwrap();
    openssl(&["ec", "-in", "end.key", "-out", "end.sec1.key"]);
    let sec1 = std::fs::read_to_string(f.join("end.sec1.key")).unwrap();
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
    let tls = ServerTls::from_pem(pki().end().chain_pem().as_bytes(), sec1.as_bytes()).unwrap();
    let server = spawn(tls, ClientCertLayer::new()).await;
    assert_eq!(
        get(server.addr, pki().ca().cert_pem(), None, Http::H1)
            .await
            .unwrap()
            .0,
        http::StatusCode::OK
    );

    // An RSA leaf with a PKCS#1 key, issued by the committed intermediate.
    std::fs::write(f.join("inter.key"), pki().inter().key_pem()).unwrap();
    std::fs::write(
        f.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "rsa.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "rsa.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "rsa.csr",
        "-CA",
        "inter.pem",
        "-CAkey",
        "inter.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "rsa.pem",
    ]);
    let key = std::fs::read_to_string(f.join("rsa.key")).unwrap();
    assert!(key.contains("BEGIN RSA PRIVATE KEY"), "{key}");
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(f.join("rsa.pem")).unwrap(),
        pki().inter().cert_pem()
    );
    let tls = ServerTls::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let server = spawn(tls, ClientCertLayer::new()).await;
    assert_eq!(
        get(server.addr, pki().ca().cert_pem(), None, Http::H2)
            .await
            .unwrap()
            .0,
        http::StatusCode::OK
    );
}
