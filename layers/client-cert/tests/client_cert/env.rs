//! Start-up from the environment: each bad combination and its message.

use portcullis_client_cert::{ClientAuth, ServerTls};
use portcullis_identity::env::Env;
use portcullis_test_support::{TempDir, pki};

/// A scratch directory holding the fixture files these tests name.
fn files(name: &str) -> TempDir {
    let dir = TempDir::new(&format!("env-{name}"));
    let pki = pki();
    for (file, text) in [
        ("cert.pem", pki.end().chain_pem()),
        ("key.pem", pki.end().key_pem()),
        ("ca.pem", pki.ca().cert_pem()),
        ("empty.pem", ""),
        (
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        ),
    ] {
        dir.write(file, text);
    }
    dir
}

fn load(vars: &[(&str, String)]) -> Result<Option<portcullis_client_cert::EnvTls>, String> {
    ServerTls::from_env(&Env::from_pairs(vars.iter().cloned())).map_err(|e| e.to_string())
}

#[test]
fn nothing_set_is_plaintext() {
    assert!(load(&[]).unwrap().is_none());
}

#[test]
fn a_ca_without_a_mode_requires_client_certificates() {
    let f = files("ca-default");
    let env = load(&[
        ("TLS_CERT", f.file("cert.pem")),
        ("TLS_KEY", f.file("key.pem")),
        ("TLS_CLIENT_CA", f.file("ca.pem")),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(env.tls.client_auth(), ClientAuth::Required);
}

#[test]
fn good_combinations() {
    let f = files("good");
    let base = [
        ("TLS_CERT", f.file("cert.pem")),
        ("TLS_KEY", f.file("key.pem")),
    ];
    assert_eq!(
        load(&base).unwrap().unwrap().tls.client_auth(),
        ClientAuth::None
    );
    let mut optional = base.to_vec();
    optional.extend([
        ("TLS_CLIENT_CA", f.file("ca.pem")),
        ("TLS_CLIENT_AUTH", "Optional".to_owned()),
    ]);
    let env = load(&optional).unwrap().unwrap();
    assert_eq!(env.tls.client_auth(), ClientAuth::Optional);
}

#[test]
fn bad_combinations_name_the_variables_and_the_fix() {
    let f = files("bad");
    let cert = ("TLS_CERT", f.file("cert.pem"));
    let key = ("TLS_KEY", f.file("key.pem"));
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            vec![cert.clone()],
            "TLS_CERT: set without TLS_KEY; set both (the server certificate chain and its private key), or neither for plaintext".into(),
        ),
        (
            vec![key.clone()],
            "TLS_KEY: set without TLS_CERT; set both (the server certificate chain and its private key), or neither for plaintext".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_AUTH", "required".into())],
            "TLS_CLIENT_AUTH=\"required\": needs TLS_CLIENT_CA, the CA bundle client certificates are verified against; set it, or set TLS_CLIENT_AUTH=none".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_AUTH", "sometimes".into())],
            "TLS_CLIENT_AUTH=\"sometimes\": not a client-certificate mode; write none, optional or required".into(),
        ),
        (
            vec![("TLS_CLIENT_CA", f.file("ca.pem"))],
            "TLS_CLIENT_CA: set without TLS_CERT and TLS_KEY; client certificates need TLS: set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_CA".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_CA", f.file("empty.pem"))],
            format!(
                "TLS_CLIENT_CA={:?}: no certificates found; it must hold PEM \"CERTIFICATE\" (or \"TRUSTED CERTIFICATE\") blocks, or one DER certificate",
                f.file("empty.pem")
            ),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_CA", f.file("garbage.pem"))],
            format!("TLS_CLIENT_CA={:?}: PEM block 1: its body is not valid base64; re-export the file as PEM", f.file("garbage.pem")),
        ),
        (
            vec![("TLS_CERT", f.file("ca.pem")), key.clone()],
            format!("TLS_KEY={:?}: server certificate and key: the private key is not the key of the first certificate in the chain; check that the key belongs to the leaf certificate at the top of the chain", f.file("key.pem")),
        ),
        (
            vec![cert.clone(), ("TLS_KEY", f.file("cert.pem"))],
            format!("TLS_KEY={:?}: no usable private key", f.file("cert.pem")),
        ),
        (
            vec![cert.clone(), ("TLS_KEY", f.file("missing.pem"))],
            format!("TLS_KEY={:?}: cannot read it: No such file or directory", f.file("missing.pem")),
        ),
    ];
    for (vars, expected) in cases {
        let err = load(&vars).map(|_| ()).unwrap_err();
        assert!(
            err.starts_with(&expected),
            "for {vars:?}\n got: {err}\nwant: {expected}"
        );
    }
}

#[test]
fn every_tls_problem_is_reported_at_once() {
    let f = files("several");
    let err = ServerTls::from_env(&Env::from_pairs([
        ("TLS_CERT", f.file("missing-cert.pem")),
        ("TLS_KEY", f.file("missing-key.pem")),
        ("TLS_CLIENT_CA", f.file("missing-ca.pem")),
        ("TLS_CLIENT_AUTH", "sometimes".to_owned()),
    ]))
    .unwrap_err();
    assert_eq!(
        err.vars().collect::<Vec<_>>(),
        ["TLS_CLIENT_AUTH", "TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"]
    );
    assert_eq!(
        err.problems()[1].value(),
        Some(f.file("missing-cert.pem").as_str())
    );

    let err = load(&[
        ("TLS_CLIENT_CA", f.file("ca.pem")),
        ("TLS_CLIENT_AUTH", "required".to_owned()),
    ])
    .unwrap_err();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "TLS_CLIENT_CA: set without TLS_CERT and TLS_KEY; client certificates need TLS: set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_CA",
            "TLS_CLIENT_AUTH: set without TLS_CERT and TLS_KEY; client certificates need TLS: set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_AUTH",
        ]
    );
}
