//! Start-up from the environment: each bad combination and its message.

use std::collections::HashMap;

use portcullis_client_cert::{ClientAuth, ServerTls};
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
    let vars: HashMap<&str, String> = vars.iter().cloned().collect();
    ServerTls::from_env_with(|var| vars.get(var).cloned()).map_err(|e| e.to_string())
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
    assert!(!env.use_cert_as_principal);
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
        ("USE_CERT_AS_PRINCIPAL", "true".to_owned()),
    ]);
    let env = load(&optional).unwrap().unwrap();
    assert_eq!(env.tls.client_auth(), ClientAuth::Optional);
    assert!(env.use_cert_as_principal);
}

#[test]
fn bad_combinations_name_the_variables_and_the_fix() {
    let f = files("bad");
    let cert = ("TLS_CERT", f.file("cert.pem"));
    let key = ("TLS_KEY", f.file("key.pem"));
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            vec![cert.clone()],
            "TLS_CERT is set but TLS_KEY is not: set both (the server certificate chain and its private key), or neither for plaintext".into(),
        ),
        (
            vec![key.clone()],
            "TLS_KEY is set but TLS_CERT is not: set both (the server certificate chain and its private key), or neither for plaintext".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_AUTH", "required".into())],
            "TLS_CLIENT_AUTH=required needs TLS_CLIENT_CA, the CA bundle client certificates are verified against; set it, or set TLS_CLIENT_AUTH=none".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_AUTH", "sometimes".into())],
            "TLS_CLIENT_AUTH=\"sometimes\" is not valid; expected one of: none, optional, required".into(),
        ),
        (
            vec![("TLS_CLIENT_CA", f.file("ca.pem"))],
            "TLS_CLIENT_CA is set but TLS_CERT and TLS_KEY are not: client certificates need TLS; set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_CA".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("USE_CERT_AS_PRINCIPAL", "maybe".into())],
            "USE_CERT_AS_PRINCIPAL=\"maybe\" is not valid; expected one of: true, false".into(),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_CA", f.file("empty.pem"))],
            format!(
                "TLS_CLIENT_CA ({}): no certificates found; it must hold PEM \"CERTIFICATE\" (or \"TRUSTED CERTIFICATE\") blocks, or one DER certificate",
                f.file("empty.pem")
            ),
        ),
        (
            vec![cert.clone(), key.clone(), ("TLS_CLIENT_CA", f.file("garbage.pem"))],
            format!("TLS_CLIENT_CA ({}): PEM block 1: its body is not valid base64; re-export the file as PEM", f.file("garbage.pem")),
        ),
        (
            vec![("TLS_CERT", f.file("ca.pem")), key.clone()],
            "server certificate and key: the private key is not the key of the first certificate in the chain; check that TLS_KEY belongs to the leaf certificate at the top of TLS_CERT".into(),
        ),
        (
            vec![cert.clone(), ("TLS_KEY", f.file("cert.pem"))],
            format!("TLS_KEY ({}): no usable private key", f.file("cert.pem")),
        ),
        (
            vec![cert.clone(), ("TLS_KEY", f.file("missing.pem"))],
            format!("TLS_KEY ({0}): cannot read {0}: No such file or directory", f.file("missing.pem")),
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
    let err = ServerTls::from_env_with(|var| match var {
        "TLS_CERT" => Some(f.file("missing-cert.pem")),
        "TLS_KEY" => Some(f.file("missing-key.pem")),
        "TLS_CLIENT_CA" => Some(f.file("missing-ca.pem")),
        "TLS_CLIENT_AUTH" => Some("sometimes".to_owned()),
        "USE_CERT_AS_PRINCIPAL" => Some("maybe".to_owned()),
        _ => None,
    })
    .unwrap_err();
    let each: Vec<String> = err.into_each().iter().map(ToString::to_string).collect();
    let starts = [
        "TLS_CLIENT_AUTH=\"sometimes\" is not valid",
        "USE_CERT_AS_PRINCIPAL=\"maybe\" is not valid",
        "TLS_CERT (",
        "TLS_KEY (",
        "TLS_CLIENT_CA (",
    ];
    assert_eq!(each.len(), starts.len(), "{each:#?}");
    for (problem, start) in each.iter().zip(starts) {
        assert!(problem.starts_with(start), "{problem}");
    }

    let err = load(&[
        ("TLS_CLIENT_CA", f.file("ca.pem")),
        ("TLS_CLIENT_AUTH", "required".to_owned()),
        ("USE_CERT_AS_PRINCIPAL", "true".to_owned()),
    ])
    .unwrap_err();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "TLS_CLIENT_CA is set but TLS_CERT and TLS_KEY are not: client certificates need TLS; set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_CA",
            "TLS_CLIENT_AUTH is set but TLS_CERT and TLS_KEY are not: client certificates need TLS; set TLS_CERT and TLS_KEY, or unset TLS_CLIENT_AUTH",
            "USE_CERT_AS_PRINCIPAL is set but TLS_CERT and TLS_KEY are not: client certificates need TLS; set TLS_CERT and TLS_KEY, or unset USE_CERT_AS_PRINCIPAL",
        ]
    );
}
