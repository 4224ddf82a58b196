//! Each rule of the layer, in process.

use http::StatusCode;
use portcullis_identity::env::{Env, EnvError, Problems};
use portcullis_identity::{ClientIdentity, KnownFields, Source, TrustedProxies};
use portcullis_test_support::pki;
use portcullis_xfcc::{
    CertFormat, ForwardingProxy, Mode, OnMalformed, ParseLimits, XfccLayer, XfccRejection,
    XfccRejectionKind, parse,
};

use crate::support::{Observed, request, run, tls_request};

const XFCC: &str = "x-forwarded-client-cert";
const PROXY: &str = "10.0.0.2:40000";
const STRANGER: &str = "203.0.113.9:40000";

fn proxies() -> TrustedProxies {
    TrustedProxies::new(["10.0.0.0/8".parse().unwrap()])
}

/// An Envoy element for `der`, as Envoy writes it with `cert: true`.
fn element_for(der: &[u8]) -> String {
    let hash = ClientIdentity::from_der(der)
        .unwrap()
        .fingerprint_sha256_hex();
    format!(
        "By=spiffe://example.org/gw;Hash={hash};Cert=\"{}\"",
        CertFormat::Nginx.encode(&[der])
    )
}

#[tokio::test]
async fn trusted_proxy_identity_comes_from_the_last_element() {
    let layer = XfccLayer::new(proxies());
    let header = format!(
        "{},{}",
        element_for(pki().client_email().der()),
        element_for(pki().client_spiffe().der())
    );
    let out = run(&layer, request(Some(PROXY), &[(XFCC, &header)])).await;
    assert_eq!(out.status, StatusCode::OK);
    let id = out.seen().identity.clone().unwrap();
    assert_eq!(
        id.spiffe_id().map(|s| s.as_str()),
        Some("spiffe://example.org/ns/prod/sa/api")
    );
    assert_eq!(
        id.source(),
        &Source::Forwarded {
            proxy: "10.0.0.2".parse().unwrap(),
            header: http::HeaderName::from_static(XFCC)
        }
    );
    assert!(id.known_fields().contains(KnownFields::CERTIFICATE));
    // Passed on as it came.
    assert_eq!(out.header(XFCC), [header]);

    // Configured otherwise: the element before.
    let out = run(
        &layer.clone().element_from_last(1),
        request(
            Some(PROXY),
            &[(
                XFCC,
                &format!(
                    "{},{}",
                    element_for(pki().client_email().der()),
                    element_for(pki().client_spiffe().der())
                ),
            )],
        ),
    )
    .await;
    assert_eq!(out.seen().identity.as_ref().unwrap().emails(), pki_emails());
    let out = run(
        &layer.clone().element_from_last(5),
        request(Some(PROXY), &[(XFCC, &element_for(pki().client().der()))]),
    )
    .await;
    assert!(out.seen().identity.is_none());
}

fn pki_emails() -> Vec<String> {
    ClientIdentity::from_der(pki().client_email().der())
        .unwrap()
        .emails()
        .to_vec()
}

#[tokio::test]
async fn several_lines_from_a_trusted_proxy_are_one_list_in_order() {
    let layer = XfccLayer::new(proxies());
    let out = run(
        &layer,
        request(
            Some(PROXY),
            &[
                (XFCC, &element_for(pki().client_email().der())),
                (XFCC, &element_for(pki().client().der())),
            ],
        ),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    assert_eq!(out.header(XFCC).len(), 2);
}

#[tokio::test]
async fn ipv4_mapped_peers_compare_as_ipv4() {
    let layer = XfccLayer::new(proxies());
    let out = run(
        &layer,
        request(
            Some("[::ffff:10.0.0.2]:40000"),
            &[(XFCC, &element_for(pki().client().der()))],
        ),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
}

#[tokio::test]
async fn untrusted_peers_and_unknown_peers_lose_every_spelling() {
    let forged = element_for(pki().client().der());
    let headers = [
        (XFCC, forged.as_str()),
        (XFCC, forged.as_str()),
        ("x_forwarded_client_cert", forged.as_str()),
        ("X.Forwarded.Client.Cert", forged.as_str()),
        ("xforwardedclientcert", forged.as_str()),
        ("x-forwarded-client", "unrelated, kept"),
    ];
    for layer in [
        XfccLayer::new(proxies()),
        XfccLayer::new(TrustedProxies::none()),
    ] {
        for peer in [Some(STRANGER), None, Some(PROXY)] {
            let out = run(&layer, request(peer, &headers)).await;
            let trusted = peer == Some(PROXY) && !layer_is_none(&layer);
            assert_eq!(out.status, StatusCode::OK);
            assert_eq!(out.seen().identity.is_some(), trusted, "{peer:?}");
            let names: Vec<&str> = out.seen().headers.keys().map(|n| n.as_str()).collect();
            if trusted {
                assert_eq!(names, [XFCC, "x-forwarded-client"]);
            } else {
                assert_eq!(names, ["x-forwarded-client"], "{peer:?}");
            }
        }
    }
}

fn layer_is_none(layer: &XfccLayer) -> bool {
    format!("{layer:?}").contains("nets: []")
}

#[tokio::test]
async fn malformed_from_a_trusted_proxy_is_400_with_the_reason_or_stripped() {
    let layer = XfccLayer::new(proxies());
    let out = run(&layer, request(Some(PROXY), &[(XFCC, "By=a;Hash")])).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert!(out.seen.is_none());
    assert_eq!(
        out.rejection::<XfccRejection>().unwrap().kind(),
        XfccRejectionKind::Malformed
    );
    assert!(
        out.body.starts_with("x-forwarded-client-cert: "),
        "{}",
        out.body
    );
    assert!(out.body.contains("byte 5"), "{}", out.body);

    let wrong_hash = format!(
        "Hash={};Cert=\"{}\"",
        "0".repeat(64),
        CertFormat::Nginx.encode(&[pki().client().der()])
    );
    let out = run(&layer, request(Some(PROXY), &[(XFCC, &wrong_hash)])).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert!(
        out.body.contains("Hash is not the digest of Cert"),
        "{}",
        out.body
    );

    let lenient = layer.clone().on_malformed(OnMalformed::StripAndContinue);
    let out = run(&lenient, request(Some(PROXY), &[(XFCC, "By=a;Hash")])).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.seen().identity.is_none());
    assert!(out.header(XFCC).is_empty());

    // obs-text from a trusted proxy: not a value any format writes.
    let mut req = request(Some(PROXY), &[]);
    req.headers_mut().insert(
        XFCC,
        http::HeaderValue::from_bytes(b"Subject=caf\xe9").unwrap(),
    );
    let out = run(&layer, req).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert_eq!(out.body, "x-forwarded-client-cert is not visible ASCII\n");

    // Over the length limit.
    let small = layer.clone().limits(ParseLimits {
        max_len: 64,
        ..ParseLimits::default()
    });
    let out = run(
        &small,
        request(Some(PROXY), &[(XFCC, &element_for(pki().client().der()))]),
    )
    .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert!(out.body.contains("over the limit of 64"), "{}", out.body);
}

#[tokio::test]
async fn a_connection_header_nominating_a_protected_header_is_refused() {
    let layer = XfccLayer::new(proxies());
    for value in [
        "X-Forwarded-Client-Cert",
        "keep-alive, x_forwarded_client_cert",
        " x-forwarded-client-cert ",
    ] {
        for peer in [PROXY, STRANGER] {
            let out = run(&layer, request(Some(peer), &[("connection", value)])).await;
            assert_eq!(out.status, StatusCode::BAD_REQUEST, "{value}");
            assert_eq!(
                out.rejection::<XfccRejection>().unwrap().kind(),
                XfccRejectionKind::ConnectionNominatesProtected
            );
        }
    }
    let out = run(
        &layer,
        request(Some(PROXY), &[("connection", "keep-alive, upgrade")]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn the_trusted_proxys_own_certificate_is_not_the_client() {
    let layer = XfccLayer::new(proxies());
    let proxy_cert = pki().client_multi_uri().der();
    // The proxy forwards a client.
    let out = run(
        &layer,
        tls_request(
            PROXY,
            &[proxy_cert],
            &[(XFCC, &element_for(pki().client().der()))],
        ),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    assert_eq!(
        out.seen().proxy_identity.as_ref().map(|p| p.der()),
        Some(proxy_cert)
    );
    // The proxy forwards no client certificate: no identity at all.
    let out = run(&layer, tls_request(PROXY, &[proxy_cert], &[])).await;
    assert!(out.seen().identity.is_none());
    assert!(out.seen().proxy_identity.is_some());
    // A direct client keeps its own TLS identity.
    let out = run(&layer, tls_request(STRANGER, &[pki().client().der()], &[])).await;
    assert_eq!(out.seen().identity.as_ref().unwrap().source(), &Source::Tls);
}

#[tokio::test]
async fn fields_without_a_certificate_make_a_partial_identity() {
    let layer = XfccLayer::new(proxies());
    let hash = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";
    let istio = format!(
        r#"By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Subject="CN=web,O=Acme";URI=spiffe://cluster.local/ns/default/sa/web"#
    );
    let out = run(&layer, request(Some(PROXY), &[(XFCC, &istio)])).await;
    let id = out.seen().identity.clone().unwrap();
    assert_eq!(id.common_name(), Some("web"));
    assert_eq!(
        id.spiffe_id().unwrap().as_str(),
        "spiffe://cluster.local/ns/default/sa/web"
    );
    assert!(!id.known_fields().contains(KnownFields::CERTIFICATE));
    // Without Hash or Cert, nothing names one certificate.
    let out = run(&layer, request(Some(PROXY), &[(XFCC, "URI=spiffe://a/b")])).await;
    assert!(out.seen().identity.is_none());
}

#[tokio::test]
async fn sanitize_trusts_no_one() {
    let layer = XfccLayer::new(proxies()).mode(Mode::Sanitize);
    let out = run(
        &layer,
        request(Some(PROXY), &[(XFCC, &element_for(pki().client().der()))]),
    )
    .await;
    assert!(out.seen().identity.is_none());
    assert!(out.header(XFCC).is_empty());
}

#[tokio::test]
async fn sanitize_set_describes_our_own_tls_client() {
    let layer = XfccLayer::new(proxies())
        .mode(Mode::SanitizeSet)
        .by("spiffe://example.org/portcullis")
        .forward_whole_certificate();
    let forged = element_for(pki().client_email().der());
    let out = run(
        &layer,
        tls_request(
            STRANGER,
            &[pki().client_spiffe().der()],
            &[(XFCC, &forged), ("x_forwarded_client_cert", &forged)],
        ),
    )
    .await;
    assert_eq!(out.seen().identity.as_ref().unwrap().source(), &Source::Tls);
    let written = out.header(XFCC);
    assert_eq!(written.len(), 1);
    let elements = parse(&written[0]).unwrap();
    assert_eq!(elements.len(), 1);
    let ours = &elements[0];
    assert_eq!(ours.get("By"), Some("spiffe://example.org/portcullis"));
    assert_eq!(ours.get("URI"), Some("spiffe://example.org/ns/prod/sa/api"));
    let tls = ClientIdentity::from_der(pki().client_spiffe().der()).unwrap();
    assert_eq!(
        ours.get("Hash"),
        Some(tls.fingerprint_sha256_hex().as_str())
    );
    assert_eq!(ours.get("Subject"), Some(tls.subject()));
    // The next hop reads a full identity from it.
    let next = run(
        &XfccLayer::new(proxies()),
        request(Some(PROXY), &[(XFCC, &written[0])]),
    )
    .await;
    assert_eq!(
        next.seen().identity.as_ref().unwrap().der(),
        pki().client_spiffe().der()
    );
    // No TLS client certificate: nothing set.
    let out = run(&layer, request(Some(STRANGER), &[(XFCC, &forged)])).await;
    assert!(out.header(XFCC).is_empty());
}

#[tokio::test]
async fn append_forward_keeps_the_proxys_elements_and_adds_ours() {
    let layer = XfccLayer::new(proxies()).mode(Mode::AppendForward);
    let theirs = element_for(pki().client().der());
    let out = run(
        &layer,
        tls_request(PROXY, &[pki().client_multi_uri().der()], &[(XFCC, &theirs)]),
    )
    .await;
    // The identity is the client the proxy forwarded.
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    let written = out.header(XFCC);
    assert_eq!(written.len(), 1);
    let elements = parse(&written[0]).unwrap();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0], parse(&theirs).unwrap()[0]);
    let proxy = ClientIdentity::from_der(pki().client_multi_uri().der()).unwrap();
    assert_eq!(
        elements[1].get("hash"),
        Some(proxy.fingerprint_sha256_hex().as_str())
    );
    // From a stranger: theirs is dropped, ours alone.
    let out = run(
        &layer,
        tls_request(STRANGER, &[pki().client().der()], &[(XFCC, &theirs)]),
    )
    .await;
    let elements = parse(&out.header(XFCC)[0]).unwrap();
    assert_eq!(elements.len(), 1);
    assert!(elements[0].get("Cert").is_none());
}

#[tokio::test]
async fn dangerous_always_forward_passes_the_header_but_never_an_identity() {
    let layer = XfccLayer::new(proxies()).mode(Mode::DangerousAlwaysForward);
    let forged = element_for(pki().client().der());
    for peer in [PROXY, STRANGER] {
        let out = run(
            &layer,
            request(
                Some(peer),
                &[(XFCC, &forged), ("x_forwarded_client_cert", &forged)],
            ),
        )
        .await;
        assert!(out.seen().identity.is_none());
        assert_eq!(out.header(XFCC), std::slice::from_ref(&forged));
        assert!(out.header("x_forwarded_client_cert").is_empty());
    }
}

#[tokio::test]
async fn every_declared_format_reads_through_the_layer() {
    let leaf = pki().client().der();
    let chain = [leaf, pki().inter().der()];
    for format in CertFormat::ALL
        .into_iter()
        .filter(|f| *f != CertFormat::Envoy)
    {
        let layer = XfccLayer::forwarding(ForwardingProxy::new(proxies(), format));
        let header = format.default_header();
        let value = format.encode(&chain);
        let out = run(&layer, request(Some(PROXY), &[(header, &value)])).await;
        assert_eq!(out.cn().as_deref(), Some("client.example.com"), "{format}");
        // The same value from a stranger is gone.
        let out = run(&layer, request(Some(STRANGER), &[(header, &value)])).await;
        assert!(out.seen().identity.is_none(), "{format}");
        assert!(out.header(header).is_empty(), "{format}");
        // An empty value: the proxy had no client certificate.
        let out = run(&layer, request(Some(PROXY), &[(header, "")])).await;
        assert!(out.seen().identity.is_none(), "{format}");
        // Garbage is refused with the format's name.
        let out = run(&layer, request(Some(PROXY), &[(header, "%%%")])).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{format}");
        assert!(out.body.contains(format.name()), "{format}: {}", out.body);
        // One certificate cannot arrive twice.
        if !format.is_list() {
            let out = run(
                &layer,
                request(Some(PROXY), &[(header, &value), (header, &value)]),
            )
            .await;
            assert_eq!(out.status, StatusCode::BAD_REQUEST, "{format}");
            assert!(out.body.contains("arrived 2 times"), "{}", out.body);
        }
    }
}

#[tokio::test]
async fn the_format_is_declared_never_guessed() {
    // Cloud Foundry's bare base64 in the XFCC header is not Envoy's grammar.
    let b64 = CertFormat::Base64Der.encode(&[pki().client().der()]);
    let envoy = XfccLayer::new(proxies());
    let out = run(&envoy, request(Some(PROXY), &[(XFCC, &b64)])).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST, "{}", out.body);
    let cf = XfccLayer::forwarding(ForwardingProxy::new(proxies(), CertFormat::Base64Der));
    let out = run(&cf, request(Some(PROXY), &[(XFCC, &b64)])).await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
}

#[tokio::test]
async fn several_proxy_tiers_each_with_their_format() {
    let nginx = TrustedProxies::new(["192.168.0.0/16".parse().unwrap()]);
    let layer = XfccLayer::new(proxies()).also(
        ForwardingProxy::new(nginx, CertFormat::Nginx)
            .header(http::HeaderName::from_static("x-ssl-client-cert")),
    );
    let nginx_value = CertFormat::Nginx.encode(&[pki().client().der()]);
    let out = run(
        &layer,
        request(
            Some("192.168.1.1:1"),
            &[("x-ssl-client-cert", &nginx_value)],
        ),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    // The Envoy tier cannot use the nginx tier's header, and vice versa.
    let out = run(
        &layer,
        request(Some(PROXY), &[("x-ssl-client-cert", &nginx_value)]),
    )
    .await;
    assert!(out.seen().identity.is_none());
    assert!(out.header("x-ssl-client-cert").is_empty());
    let out = run(
        &layer,
        request(
            Some("192.168.1.1:1"),
            &[
                (XFCC, &element_for(pki().client().der())),
                ("X_SSL_Client_Cert", "x"),
            ],
        ),
    )
    .await;
    assert!(out.seen().identity.is_none());
    assert!(out.header(XFCC).is_empty());
    assert!(out.header("x_ssl_client_cert").is_empty());
}

#[tokio::test]
async fn rfc9440_companion_chain_is_protected_too() {
    let layer = XfccLayer::forwarding(ForwardingProxy::new(proxies(), CertFormat::Rfc9440));
    let out = run(
        &layer,
        request(
            Some(STRANGER),
            &[("client-cert-chain", ":AAAA:"), ("Client_Cert", ":AAAA:")],
        ),
    )
    .await;
    assert!(out.seen().headers.is_empty(), "{:?}", out.seen().headers);
    // From the trusted proxy the chain passes on with the certificate; a
    // respelling of it still does not.
    let leaf = CertFormat::Rfc9440.encode(&[pki().client().der()]);
    let chain = CertFormat::Rfc9440.encode(&[pki().inter().der()]);
    let out = run(
        &layer,
        request(
            Some(PROXY),
            &[
                ("client-cert", &leaf),
                ("client-cert-chain", &chain),
                ("client_cert_chain", &chain),
            ],
        ),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    let names: Vec<&str> = out.seen().headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["client-cert", "client-cert-chain"]);
}

#[tokio::test]
async fn envoy_documented_two_hop_example_reads_the_last_element() {
    // From Envoy's XFCC documentation: the frontend's element, then ours.
    let header = "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com";
    let out = run(
        &XfccLayer::new(proxies()),
        request(Some(PROXY), &[(XFCC, header)]),
    )
    .await;
    let id = out.seen().identity.clone().unwrap();
    assert_eq!(id.uris(), ["http://frontend.lyft.com"]);
    assert_eq!(
        id.fingerprint_sha256_hex(),
        "9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e"
    );
    // Not a SPIFFE ID, and the legacy `/C=US/...` subject names no CN.
    assert!(id.spiffe_id().is_none());
    let legacy = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#;
    let out = run(
        &XfccLayer::new(proxies()),
        request(Some(PROXY), &[(XFCC, legacy)]),
    )
    .await;
    let id = out.seen().identity.clone().unwrap();
    assert_eq!(
        id.subject(),
        "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"
    );
    assert_eq!(id.common_name(), None);
}

/// The proxies and the layer, as the facade reads them: every problem of
/// both.
fn from_env(pairs: &[(&str, &str)]) -> Result<XfccLayer, EnvError> {
    let env = Env::from_pairs(pairs.iter().copied());
    let mut problems = Problems::new();
    let proxies = problems
        .take(TrustedProxies::from_env(&env))
        .unwrap_or_else(TrustedProxies::none);
    let layer = problems.take(XfccLayer::from_env(&env, &proxies));
    problems.finish(|| layer.expect("no problem, so a layer"))
}

#[test]
fn configuration_from_the_environment_names_the_variable() {
    let layer = from_env(&[
        ("TRUSTED_PROXY_CIDRS", "10.0.0.0/8"),
        ("FORWARDED_CERT_FORMAT", "traefik"),
    ])
    .unwrap();
    let upstream = &layer.upstreams()[0];
    assert!(upstream.proxies().contains("10.1.1.1".parse().unwrap()));
    assert_eq!(upstream.format(), CertFormat::Traefik);
    // Nothing set: nobody trusted.
    assert!(from_env(&[]).unwrap().upstreams()[0].proxies().is_empty());
    for (pairs, var) in [
        (
            &[("TRUSTED_PROXY_CIDRS", "10.0.0.1/8")][..],
            "TRUSTED_PROXY_CIDRS",
        ),
        (
            &[("TRUSTED_PROXY_CIDRS", "0.0.0.0/0")][..],
            "TRUSTED_PROXY_CIDRS",
        ),
        (
            &[("FORWARDED_CERT_HEADER", "bad header")][..],
            "FORWARDED_CERT_HEADER",
        ),
        (
            &[("CLIENT_IP_HEADER", "bad header")][..],
            "CLIENT_IP_HEADER",
        ),
        (
            &[("FORWARDED_CERT_FORMAT", "pem")][..],
            "FORWARDED_CERT_FORMAT",
        ),
    ] {
        let err = from_env(pairs).unwrap_err();
        assert_eq!(err.vars().collect::<Vec<_>>(), [var]);
        assert!(err.to_string().starts_with(&format!("{var}=")), "{err}");
    }
    // Every bad setting at once, in the order they are read.
    let err = from_env(&[
        ("FORWARDED_CERT_FORMAT", "pem"),
        ("TRUSTED_PROXY_CIDRS", "0.0.0.0/0"),
        ("FORWARDED_CERT_HEADER", "bad header"),
    ])
    .unwrap_err();
    assert_eq!(
        err.vars().collect::<Vec<_>>(),
        [
            "TRUSTED_PROXY_CIDRS",
            "FORWARDED_CERT_FORMAT",
            "FORWARDED_CERT_HEADER"
        ]
    );
    assert_eq!(err.problems().len(), 3);
    assert_eq!(err.to_string().lines().count(), 3);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_connect_info_is_the_peer() {
    let mut req = request(None, &[(XFCC, &element_for(pki().client().der()))]);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo::<std::net::SocketAddr>(
            PROXY.parse().unwrap(),
        ));
    let out = run(&XfccLayer::new(proxies()), req).await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
}

#[tokio::test]
async fn a_cached_identity_still_names_the_proxy_that_sent_it() {
    let layer = XfccLayer::new(proxies());
    let header = element_for(pki().client().der());
    for proxy in ["10.0.0.2:1", "10.9.9.9:1", "10.0.0.2:1"] {
        let out = run(&layer, request(Some(proxy), &[(XFCC, &header)])).await;
        let id = out.seen().identity.clone().unwrap();
        assert_eq!(
            id.source(),
            &Source::Forwarded {
                proxy: proxy.parse::<std::net::SocketAddr>().unwrap().ip(),
                header: http::HeaderName::from_static(XFCC)
            }
        );
        assert_eq!(id.der(), pki().client().der());
    }
    // A malformed value is refused every time, not remembered as fine.
    for _ in 0..2 {
        let out = run(&layer, request(Some(PROXY), &[(XFCC, "Hash=zz")])).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn known_cert_headers_are_stripped_but_the_configured_one_passes() {
    let layer = XfccLayer::new(proxies()).strip_known_cert_headers();
    let header = element_for(pki().client().der());
    for peer in [PROXY, STRANGER] {
        let out = run(
            &layer,
            request(
                Some(peer),
                &[
                    (XFCC, &header),
                    ("client-cert", ":Zm9yZ2Vk:"),
                    ("X-SSL-Client-Cert", "forged"),
                    ("x_amzn_mtls_clientcert", "forged"),
                ],
            ),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        for other in ["client-cert", "x-ssl-client-cert", "x_amzn_mtls_clientcert"] {
            assert!(out.header(other).is_empty(), "{other} from {peer}");
        }
        let from_proxy = peer == PROXY;
        assert_eq!(
            out.header(XFCC).len(),
            usize::from(from_proxy),
            "from {peer}"
        );
        assert_eq!(out.seen().identity.is_some(), from_proxy, "from {peer}");
    }
    // Stripping every known header keeps the upstream's own one from the
    // proxy.
    let rfc9440 = XfccLayer::forwarding(ForwardingProxy::new(proxies(), CertFormat::Rfc9440))
        .strip_known_cert_headers();
    let value = format!(
        ":{}:",
        CertFormat::Base64Der.encode(&[pki().client().der()])
    );
    let out = run(
        &rfc9440,
        request(Some(PROXY), &[("client-cert", &value), (XFCC, &header)]),
    )
    .await;
    assert_eq!(out.header("client-cert"), [value]);
    assert!(out.header(XFCC).is_empty());
    assert!(out.seen().identity.is_some());
}

#[tokio::test]
async fn a_builder_after_layer_takes_effect() {
    // The resolved configuration is shared by every service a layer makes;
    // changing a copy afterwards must not reuse the old one.
    let layer = XfccLayer::new(proxies());
    let _ = run(&layer, request(Some(PROXY), &[])).await;
    let stricter = layer
        .clone()
        .also_strip(http::HeaderName::from_static("x-extra"));
    let out = run(&stricter, request(Some(STRANGER), &[("x-extra", "forged")])).await;
    assert!(out.header("x-extra").is_empty());
    let out = run(&layer, request(Some(STRANGER), &[("x-extra", "kept")])).await;
    assert_eq!(out.header("x-extra"), ["kept"]);
}

#[tokio::test]
async fn trust_bound_to_the_proxys_own_certificate() {
    let forwarded = element_for(pki().client().der());
    let headers = [(XFCC, forwarded.as_str())];
    let by_spiffe = XfccLayer::forwarding(
        ForwardingProxy::new(proxies(), CertFormat::Envoy)
            .require_identity(["spiffe://example.org/ns/prod/sa/api"])
            .unwrap(),
    );
    // The proxy with the named SPIFFE ID: its forwarded client counts.
    let out = run(
        &by_spiffe,
        tls_request(PROXY, &[pki().client_spiffe().der()], &headers),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    // Another host in the same CIDR with another certificate, or with none:
    // the header is removed and names nobody.
    for out in [
        run(
            &by_spiffe,
            tls_request(PROXY, &[pki().client_multi_uri().der()], &headers),
        )
        .await,
        run(&by_spiffe, request(Some(PROXY), &headers)).await,
    ] {
        assert_eq!(out.status, StatusCode::OK);
        assert!(out.seen().headers.get(XFCC).is_none());
        assert_ne!(out.cn().as_deref(), Some("client.example.com"));
    }
    // An entry that is not a spiffe:// ID matches the subject's CN.
    let by_cn = XfccLayer::forwarding(
        ForwardingProxy::new(proxies(), CertFormat::Envoy)
            .require_identity(["workload.example.com"])
            .unwrap(),
    );
    let out = run(
        &by_cn,
        tls_request(PROXY, &[pki().client_spiffe().der()], &headers),
    )
    .await;
    assert_eq!(out.cn().as_deref(), Some("client.example.com"));
    let err = ForwardingProxy::new(proxies(), CertFormat::Envoy)
        .require_identity(["spiffe://Example.org/a"])
        .map(XfccLayer::forwarding)
        .unwrap_err();
    assert!(err.contains("is not a valid SPIFFE ID"), "{err}");
}

#[test]
fn proxy_identities_from_the_environment() {
    assert!(
        from_env(&[
            ("TRUSTED_PROXY_CIDRS", "10.0.0.0/8"),
            (
                "TRUSTED_PROXY_IDENTITIES",
                "spiffe://example.org/gw, envoy-gw"
            ),
        ])
        .is_ok()
    );
    let err = from_env(&[("TRUSTED_PROXY_IDENTITIES", "envoy-gw")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("TRUSTED_PROXY_IDENTITIES: set without TRUSTED_PROXY_CIDRS"),
        "{err}"
    );
    let err = from_env(&[
        ("TRUSTED_PROXY_CIDRS", "10.0.0.0/8"),
        ("TRUSTED_PROXY_IDENTITIES", "spiffe://bad/../x"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("is not a valid SPIFFE ID"), "{err}");
}

#[test]
fn a_proxy_principal_with_a_wide_character_near_the_scheme_is_a_cn() {
    // Byte 9 falls inside "é": read as a CN, never a panic.
    assert!(
        ForwardingProxy::new(proxies(), CertFormat::Envoy)
            .require_identity(["spiffe:/é", "spiffe:/ééé"])
            .map(XfccLayer::forwarding)
            .is_ok()
    );
}
