//! `ClientIdentity` on the committed test PKI and on certificates made here.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use portcullis_identity::{CertificateErrorKind, ClientIdentity, Source};
use portcullis_test_support::{ClientProfile, ThrowawayPki, pki};
use rcgen::string::{TeletexString, UniversalString};
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue};
use sha2::{Digest, Sha256};

fn identity(der: &[u8]) -> ClientIdentity {
    ClientIdentity::from_der(der).unwrap()
}

#[test]
fn plain_client() {
    let id = identity(pki().client().der());
    assert_eq!(
        id.subject(),
        "CN=client.example.com,O=Portcullis Test Clients"
    );
    assert_eq!(
        id.issuer(),
        "CN=Portcullis Test Intermediate CA,O=Portcullis Test"
    );
    assert_eq!(id.common_name(), Some("client.example.com"));
    assert_eq!(id.dns_names(), ["client.example.com"]);
    assert!(id.uris().is_empty() && id.emails().is_empty() && id.ips().is_empty());
    assert_eq!(id.spiffe_id(), None);
    assert_eq!(id.source(), &Source::Tls);
    assert_eq!(id.der(), pki().client().der());
    let digest: [u8; 32] = Sha256::digest(pki().client().der()).into();
    assert_eq!(id.fingerprint_sha256(), digest);
    assert_eq!(id.fingerprint_sha256_hex().len(), 64);
    // rcgen's far-future validity: 1975-01-01 to 4096-01-01.
    assert_eq!(
        id.not_before(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(157_766_400)
    );
    assert!(id.not_after() > SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000));
}

#[test]
fn spiffe_client_has_one_uri_and_a_spiffe_id() {
    let id = identity(pki().client_spiffe().der());
    assert_eq!(id.uris(), ["spiffe://example.org/ns/prod/sa/api"]);
    let spiffe = id.spiffe_id().unwrap();
    assert_eq!(spiffe.trust_domain(), "example.org");
    assert_eq!(spiffe.path(), "/ns/prod/sa/api");
}

#[test]
fn several_uri_sans_yield_no_spiffe_id() {
    let id = identity(pki().client_multi_uri().der());
    assert_eq!(
        id.uris(),
        [
            "spiffe://example.org/ns/prod/sa/api",
            "https://example.org/b"
        ]
    );
    assert_eq!(id.spiffe_id(), None);
}

#[test]
fn a_single_non_spiffe_uri_is_no_spiffe_id() {
    let pki = ThrowawayPki::new("uri").unwrap();
    for uri in [
        "https://example.org/a",
        "spiffe://Example.org/a",
        "spiffe://example.org/a/../b",
    ] {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let id = identity(&pki.issue(params).unwrap().der);
        assert_eq!(id.uris(), [uri]);
        assert_eq!(id.spiffe_id(), None, "{uri}");
    }
}

#[test]
fn email_and_ip_sans() {
    assert_eq!(
        identity(pki().client_email().der()).emails(),
        ["alice@example.com"]
    );
    let ips: Vec<IpAddr> = vec![
        "192.0.2.10".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    ];
    assert_eq!(identity(pki().client_ip().der()).ips(), ips.as_slice());
}

#[test]
fn bmp_string_common_name_is_decoded() {
    let id = identity(pki().client_bmp().der());
    assert_eq!(id.common_name(), Some("Zoë Müller 日本"));
    assert_eq!(id.subject(), "CN=Zoë Müller 日本,C=DE");
}

#[test]
fn subject_is_escaped_but_common_name_is_raw() {
    let id = identity(pki().client_escape().der());
    assert_eq!(
        id.subject(),
        r#"CN=\ padded name\ ,OU=R&D=\"Labs\" \<west\>\; a\+b\\c,O=\#Acme\, Inc."#
    );
    assert_eq!(id.common_name(), Some(" padded name "));
}

#[test]
fn expired_certificate_reports_its_dates() {
    let id = identity(pki().client_expired().der());
    // 2000-01-01 and 2001-01-01, UTC.
    assert_eq!(
        id.not_before(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800)
    );
    assert_eq!(
        id.not_after(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200)
    );
}

#[test]
fn every_profile_parses_from_a_fresh_pki_too() {
    let fresh = ThrowawayPki::new("fresh").unwrap();
    for profile in ClientProfile::ALL {
        let cert = fresh.client(profile).unwrap();
        let id = identity(&cert.der);
        assert_eq!(
            id.issuer(),
            "CN=fresh Intermediate CA,O=Portcullis Test",
            "{profile:?}"
        );
    }
}

#[test]
fn teletex_and_universal_string_names_are_decoded() {
    let pki = ThrowawayPki::new("strings").unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::TeletexString(TeletexString::try_from("Teletex Org").unwrap()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::UniversalString(UniversalString::try_from("Ünïversal 🦀").unwrap()),
    );
    params.distinguished_name = dn;
    let id = identity(&pki.issue(params).unwrap().der);
    assert_eq!(id.common_name(), Some("Ünïversal 🦀"));
    assert_eq!(id.subject(), "CN=Ünïversal 🦀,O=Teletex Org");
}

#[test]
fn no_common_name_is_none() {
    let pki = ThrowawayPki::new("no-cn").unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Only Org");
    let id = identity(&pki.issue(params).unwrap().der);
    assert_eq!(id.common_name(), None);
    assert_eq!(id.subject(), "O=Only Org");
}

#[test]
fn source_can_be_forwarded() {
    let proxy: IpAddr = "10.0.0.2".parse().unwrap();
    let id = identity(pki().client().der()).with_source(Source::Forwarded {
        proxy,
        header: http::HeaderName::from_static("x-forwarded-client-cert"),
    });
    assert_eq!(id.source().as_str(), "forwarded");
    assert_ne!(id, identity(pki().client().der()));
}

#[test]
fn bad_der_is_a_typed_error_never_a_panic() {
    let der = pki().client().der();
    for len in 0..der.len() {
        let err = ClientIdentity::from_der(&der[..len]).unwrap_err();
        let expected = if len == 0 {
            CertificateErrorKind::Empty
        } else {
            CertificateErrorKind::Malformed
        };
        assert_eq!(err.kind(), expected, "truncated to {len}");
    }
    let mut trailing = der.to_vec();
    trailing.push(0);
    let err = ClientIdentity::from_der(&trailing).unwrap_err();
    assert_eq!(err.kind(), CertificateErrorKind::TrailingData);
    assert_eq!(
        err.to_string(),
        "trailing data after certificate: 1 bytes after the certificate"
    );
    // A PEM handed over by mistake.
    let err = ClientIdentity::from_der(pki().client().cert_pem().as_bytes()).unwrap_err();
    assert_eq!(err.kind(), CertificateErrorKind::Malformed);
}

#[test]
fn debug_shows_no_der() {
    let shown = format!("{:?}", identity(pki().client().der()));
    assert!(shown.contains("CN=client.example.com"));
    assert!(!shown.contains("der"));
}

#[test]
fn a_duplicate_or_malformed_subject_alt_name_is_refused() {
    let pki = ThrowawayPki::new("san").unwrap();
    let san_oid = [2, 5, 29, 17];
    // SEQUENCE { [2] "a.example" } — a valid SAN body.
    let valid_san = b"\x30\x0b\x82\x09a.example".to_vec();

    let mut twice = CertificateParams::new(vec!["b.example".to_owned()]).unwrap();
    twice.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &san_oid, valid_san,
    )];
    let err = ClientIdentity::from_der(&pki.issue(twice).unwrap().der).unwrap_err();
    assert_eq!(err.kind(), CertificateErrorKind::InvalidExtension);
    assert_eq!(
        err.to_string(),
        "invalid certificate extension: subjectAltName appears twice"
    );

    let mut broken = CertificateParams::default();
    broken.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &san_oid,
        b"\x30\x05\x82\x09ab".to_vec(),
    )];
    let err = ClientIdentity::from_der(&pki.issue(broken).unwrap().der).unwrap_err();
    assert_eq!(err.kind(), CertificateErrorKind::InvalidExtension);

    let mut alone = CertificateParams::default();
    alone.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &san_oid,
        b"\x30\x0b\x82\x09a.example".to_vec(),
    )];
    assert_eq!(
        identity(&pki.issue(alone).unwrap().der).dns_names(),
        ["a.example"]
    );
}
