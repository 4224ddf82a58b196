//! The start-up table: each bad environment → the exact problems reported,
//! all at once.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis::identity::env::Env;
async fn problems(vars: &[(&str, &str)]) -> Vec<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match portcullis::from_env(&Env::from_fn(|var| {
        vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }))
    .await
    {
        Ok(_) => Vec::new(),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    }
}

/// One bad setting (or pair) per row, and the problems it must give (one
/// per line).
const TABLE: &[(&[(&str, &str)], &str)] = &[
    (
        &[("TLS_CERT", "/srv/tls/cert.pem")],
        "TLS_CERT: set without TLS_KEY; set both (the server certificate chain and its private key), or neither for plaintext",
    ),
    (
        &[("TLS_CERT", "/nope/cert.pem"), ("TLS_KEY", "/nope/key.pem")],
        concat!(
            "TLS_CERT=\"/nope/cert.pem\": cannot read it: No such file or directory (os error 2); check the path and its permissions\n",
            "TLS_KEY=\"/nope/key.pem\": cannot read it: No such file or directory (os error 2); check the path and its permissions",
        ),
    ),
    (
        &[("TLS_CLIENT_AUTH", "sometimes")],
        "TLS_CLIENT_AUTH=\"sometimes\": not a client-certificate mode; write none, optional or required",
    ),
    (
        &[("USE_CERT_AS_PRINCIPAL", "true")],
        "USE_CERT_AS_PRINCIPAL=\"true\": no certificate can arrive; set TLS_CLIENT_CA (with TLS_CERT and TLS_KEY) to verify client certificates here, or TRUSTED_PROXY_CIDRS for a proxy that forwards them",
    ),
    (
        &[("USE_CERT_AS_PRINCIPAL", "perhaps")],
        "USE_CERT_AS_PRINCIPAL=\"perhaps\": not a switch; write true or false",
    ),
    (
        &[("TRUSTED_PROXY_CIDRS", "10.0.0.1/8")],
        "TRUSTED_PROXY_CIDRS=\"10.0.0.1/8\": trusted proxy entry 1 (\"10.0.0.1/8\"): host bits are set; write the network address (e.g. 10.0.0.0/8)",
    ),
    (
        &[("FORWARDED_CERT_FORMAT", "haproxy")],
        "FORWARDED_CERT_FORMAT=\"haproxy\": unknown forwarded-certificate format \"haproxy\"; expected one of envoy, nginx, base64-der, rfc9440, traefik, aws-alb",
    ),
    (
        &[("CONTROL_PLANE_URL", "https://cp.internal")],
        "CONTROL_PLANE_URL: set without CONTROL_PLANE_INTERNAL_SECRET; set both to use a control plane, or neither",
    ),
    (
        &[
            ("CONTROL_PLANE_URL", "https://cp.internal"),
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            ("SSL_CERT_FILE", "/nope/ca.pem"),
        ],
        "SSL_CERT_FILE=\"/nope/ca.pem\": cannot read it: No such file or directory (os error 2); check the path and its permissions",
    ),
    (
        &[("TENANTS_FILE", "/nope/tenants.json")],
        "TENANTS_FILE=\"/nope/tenants.json\": cannot read it: No such file or directory (os error 2); set it to a readable JSON file",
    ),
    (
        &[("AUTH_POLICY", "cert")],
        "AUTH_POLICY: set, but no tenants are; set TENANTS_FILE or CONTROL_PLANE_URL (with CONTROL_PLANE_INTERNAL_SECRET), or unset AUTH_POLICY",
    ),
    (
        &[("RATE_LIMIT_BURST", "5")],
        "RATE_LIMIT_BURST: set without RATE_LIMIT_PER_MIN; set the rate too, or unset the burst",
    ),
    (
        &[("RATE_LIMIT_PER_MIN", "lots")],
        "RATE_LIMIT_PER_MIN=\"lots\": not a whole number above 0; write one such as 600",
    ),
    (
        &[("RATE_LIMIT_KEY", "cn,spiffe")],
        "RATE_LIMIT_KEY=\"cn,spiffe\": names only certificate keys but no certificate can arrive; add bearer or ip to the chain, or set TLS_CLIENT_CA or TRUSTED_PROXY_CIDRS",
    ),
    (
        &[("RATE_LIMIT_KEY", "tenant")],
        "RATE_LIMIT_KEY=\"tenant\": names tenant but no tenants are configured; set TENANTS_FILE or CONTROL_PLANE_URL, or key by cn, bearer or ip",
    ),
    (
        &[("RATE_LIMIT_ON_STORE_ERROR", "maybe")],
        "RATE_LIMIT_ON_STORE_ERROR=\"maybe\": not a store-failure policy; write open (let requests through uncounted) or closed (refuse them with 503)",
    ),
    (
        &[("SHUTDOWN_GRACE_SECS", "soon")],
        "SHUTDOWN_GRACE_SECS=\"soon\": not a number of seconds; write one such as 60 or 0.5",
    ),
    (
        &[("PROXY_PROTOCOL", "v3")],
        "PROXY_PROTOCOL=\"v3\": not a PROXY protocol setting; write off, v1, v2 or any",
    ),
    (
        &[("PROXY_PROTOCOL", "v2")],
        "PROXY_PROTOCOL=\"v2\": no peer is trusted to send it; set TRUSTED_PROXY_CIDRS to the load balancers' addresses",
    ),
    (
        &[("PROXY_PROTOCOL_ALLOW_MISSING", "true")],
        "PROXY_PROTOCOL_ALLOW_MISSING: set without PROXY_PROTOCOL; set PROXY_PROTOCOL to v1, v2 or any, or unset PROXY_PROTOCOL_ALLOW_MISSING",
    ),
    (
        &[("LISTEN_ADDR", "nowhere")],
        "LISTEN_ADDR=\"nowhere\": not an address and port; write one such as 127.0.0.1:8443",
    ),
];

#[tokio::test]
async fn each_bad_setting_gives_its_exact_problem() {
    for (vars, expected) in TABLE {
        assert_eq!(problems(vars).await.join("\n"), *expected, "{vars:?}");
        // Typed: the first problem names one of the row's variables.
        let error = portcullis::from_env(&Env::from_pairs(vars.iter().copied()))
            .await
            .err()
            .unwrap_or_else(|| panic!("{vars:?} started"));
        let var = error.problems()[0].var();
        assert!(
            vars.iter().any(|(name, _)| *name == var),
            "{var} for {vars:?}"
        );
    }
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let every: Vec<(&str, &str)> = TABLE
        .iter()
        .flat_map(|(vars, _)| vars.iter().copied())
        // One value per variable: the later rows' TLS pair and key chain.
        .filter(|(var, value)| {
            !matches!(
                (*var, *value),
                ("TLS_CERT", "/srv/tls/cert.pem")
                    | ("RATE_LIMIT_KEY", "cn,spiffe")
                    | ("USE_CERT_AS_PRINCIPAL", "true")
                    | ("CONTROL_PLANE_INTERNAL_SECRET", _)
                    | ("PROXY_PROTOCOL", "v2")
            )
        })
        .collect();
    let found = problems(&every).await;
    // Every reader and every facade check report together, and each
    // reader reports all of its own problems, in the order it reads them.
    let expected = [
        "LISTEN_ADDR=",
        "TLS_CLIENT_AUTH=",
        "TLS_CERT=\"/nope/cert.pem\"",
        "TLS_KEY=\"/nope/key.pem\"",
        "TRUSTED_PROXY_CIDRS=",
        "SHUTDOWN_GRACE_SECS=",
        "PROXY_PROTOCOL=\"v3\"",
        "PROXY_PROTOCOL_ALLOW_MISSING: set without",
        "FORWARDED_CERT_FORMAT=",
        "TENANTS_FILE=\"/nope/tenants.json\"",
        "SSL_CERT_FILE=\"/nope/ca.pem\"",
        "CONTROL_PLANE_URL: set without",
        "RATE_LIMIT_PER_MIN=\"lots\"",
        "USE_CERT_AS_PRINCIPAL=\"perhaps\"",
        "RATE_LIMIT_ON_STORE_ERROR=",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (problem, start) in found.iter().zip(expected) {
        assert!(
            problem.starts_with(start),
            "{start} expected, found {problem}"
        );
    }
    let error = portcullis::from_env(&Env::from_fn(|var| {
        every
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| (*v).to_owned())
    }))
    .await
    .unwrap_err();
    assert!(error.to_string().starts_with(&format!(
        "portcullis cannot start: {} problems in the environment\n  - ",
        found.len()
    )));
}

#[tokio::test]
async fn redis_that_cannot_be_reached_is_named() {
    let found = problems(&[("REDIS_URL", "redis://:hunter2@127.0.0.1:1/")]).await;
    assert_eq!(found.len(), 1);
    assert!(!found[0].contains("hunter2"), "{found:?}");
    if cfg!(feature = "redis") {
        assert!(
            found[0].starts_with("REDIS_URL: rate-limit store unavailable: ")
                && found[0].ends_with(
                    "; check the address and that Redis is running, or unset REDIS_URL to keep limits in memory"
                ),
            "{found:?}"
        );
    } else {
        assert_eq!(
            found[0],
            "REDIS_URL is set but portcullis was built without the `redis` feature: enable it, or unset REDIS_URL to keep limits in memory"
        );
    }
}

#[tokio::test]
async fn nothing_set_is_a_plaintext_stack_on_the_default_address() {
    let stack = portcullis::from_env(&Env::from_fn(|_| None)).await.unwrap();
    assert!(stack.tls().is_none());
    assert_eq!(stack.listen_addr().to_string(), "127.0.0.1:8443");
    assert!(stack.trusted_proxies().is_empty());
}

#[tokio::test]
async fn settings_that_work_but_surprise_are_warned_of() {
    let dir = portcullis_test_support::TempDir::new("startup-warnings");
    let pki = portcullis_test_support::pki();
    let cert = dir.write("server.pem", pki.end().chain_pem());
    let key = dir.write("server.key", pki.end().key_pem());
    let ca = dir.write("ca.pem", pki.ca().cert_pem());
    let stack = portcullis::from_env(&Env::from_pairs([
        ("TLS_CERT", cert.as_str()),
        ("TLS_KEY", key.as_str()),
        ("TLS_CLIENT_CA", ca.as_str()),
    ]))
    .await
    .unwrap();
    let warnings: Vec<(&str, String)> = stack
        .warnings()
        .iter()
        .map(|w| (w.var(), w.to_string()))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_eq!(warnings[0].0, "TLS_CLIENT_CA");
    assert!(
        warnings[0]
            .1
            .contains("client certificates are now required"),
        "{warnings:?}"
    );
    assert_eq!(warnings[1].0, "TENANTS_FILE");
    assert!(
        warnings[1]
            .1
            .contains("every client whose certificate verifies is admitted"),
        "{warnings:?}"
    );
    // Said outright, neither surprises.
    let tenants = dir.write("tenants.json", r#"{"keys": []}"#);
    let stack = portcullis::from_env(&Env::from_pairs([
        ("TLS_CERT", cert.as_str()),
        ("TLS_KEY", key.as_str()),
        ("TLS_CLIENT_CA", ca.as_str()),
        ("TLS_CLIENT_AUTH", "required"),
        ("TENANTS_FILE", tenants.as_str()),
    ]))
    .await
    .unwrap();
    assert!(stack.warnings().is_empty(), "{:?}", stack.warnings());
}
