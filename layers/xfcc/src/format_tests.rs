//! Unit tests of `format.rs`.

use portcullis_test_support::pki;

use super::*;

fn leaf() -> &'static [u8] {
    pki().client().der()
}

#[test]
fn names_round_trip_and_unknown_names_list_the_choices() {
    for format in CertFormat::ALL {
        assert_eq!(format.name().parse::<CertFormat>(), Ok(format));
        assert_eq!(
            format.name().to_uppercase().parse::<CertFormat>(),
            Ok(format)
        );
    }
    let err = "haproxy".parse::<CertFormat>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown forwarded-certificate format \"haproxy\"; expected one of envoy, nginx, base64-der, rfc9440, traefik, aws-alb"
    );
}

#[test]
fn every_format_decodes_what_it_encodes() {
    let chain = [leaf(), pki().inter().der()];
    // Every format, Envoy's too: decode has one meaning for all.
    for format in CertFormat::ALL {
        let text = format.encode(&chain);
        let decoded = format.decode(&text).unwrap();
        assert_eq!(decoded[0], leaf(), "{format}");
        if matches!(format, CertFormat::Nginx | CertFormat::AwsAlb) {
            assert_eq!(decoded.len(), 2, "{format}");
        }
    }
}

#[test]
fn nginx_escaped_cert_as_nginx_writes_it() {
    // nginx escapes with NGX_ESCAPE_URI_COMPONENT: newlines, spaces,
    // `+`, `/` and `=` become %XX.
    let text = url_encode(pki().client().cert_pem());
    assert!(text.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
    assert_eq!(CertFormat::Nginx.decode(&text).unwrap(), [leaf()]);
}

#[test]
fn aws_alb_leaves_plus_equals_slash() {
    // AWS documents: URL-encoded PEM with `+`, `=` and `/` as safe.
    let text = pki()
        .client()
        .cert_pem()
        .replace(' ', "%20")
        .replace('\n', "%0A");
    assert!(text.contains('/') || text.contains('+') || text.contains('='));
    assert_eq!(CertFormat::AwsAlb.decode(&text).unwrap(), [leaf()]);
}

#[test]
fn traefik_reads_v3_and_old_url_encoded_values() {
    let v3 = format!(
        "{}, {}",
        STANDARD.encode(leaf()),
        STANDARD.encode(pki().inter().der())
    );
    let chain = CertFormat::Traefik.decode(&v3).unwrap();
    assert_eq!(chain, [leaf(), pki().inter().der()]);
    let old = url_encode(&STANDARD.encode(leaf()));
    assert!(old.contains('%'));
    assert_eq!(CertFormat::Traefik.decode(&old).unwrap(), [leaf()]);
}

#[test]
fn rfc9440_byte_sequences() {
    let b64 = STANDARD.encode(leaf());
    assert_eq!(
        CertFormat::Rfc9440.decode(&format!(":{b64}:")).unwrap(),
        [leaf()]
    );
    let unpadded = b64.trim_end_matches('=');
    assert_eq!(
        CertFormat::Rfc9440
            .decode(&format!(":{unpadded}:"))
            .unwrap(),
        [leaf()]
    );
    assert_eq!(
        CertFormat::Rfc9440
            .decode(&format!(":{b64}:;a=1;b"))
            .unwrap(),
        [leaf()]
    );
}

#[test]
fn bad_values_are_refused_with_where() {
    let b64 = STANDARD.encode(leaf());
    let cases: Vec<(CertFormat, String, DecodeErrorKind, usize)> = vec![
        (
            CertFormat::Base64Der,
            String::new(),
            DecodeErrorKind::Empty,
            0,
        ),
        (
            CertFormat::Base64Der,
            "!!!!".into(),
            DecodeErrorKind::Base64,
            0,
        ),
        (
            CertFormat::Base64Der,
            b64.trim_end_matches('=').to_owned() + if b64.ends_with('=') { "" } else { "=" },
            DecodeErrorKind::Base64,
            0,
        ),
        (
            CertFormat::Traefik,
            format!("{b64},"),
            DecodeErrorKind::Empty,
            b64.len() + 1,
        ),
        (
            CertFormat::Traefik,
            format!("{b64},%zz"),
            DecodeErrorKind::PercentEncoding,
            b64.len() + 1,
        ),
        (
            CertFormat::Rfc9440,
            b64.clone(),
            DecodeErrorKind::ByteSequence,
            0,
        ),
        (
            CertFormat::Rfc9440,
            format!(":{b64}"),
            DecodeErrorKind::ByteSequence,
            b64.len() + 1,
        ),
        (
            CertFormat::Rfc9440,
            format!(":{b64}:junk"),
            DecodeErrorKind::ByteSequence,
            b64.len() + 2,
        ),
        (CertFormat::Rfc9440, "::".into(), DecodeErrorKind::Empty, 1),
        (
            CertFormat::Nginx,
            "%0".into(),
            DecodeErrorKind::PercentEncoding,
            0,
        ),
        (
            CertFormat::Nginx,
            "a%00".into(),
            DecodeErrorKind::PercentEncoding,
            1,
        ),
        (
            CertFormat::Nginx,
            "plain text".into(),
            DecodeErrorKind::NoCertificate,
            0,
        ),
        (
            CertFormat::Envoy,
            format!("Hash={}", "0a".repeat(32)),
            DecodeErrorKind::NoCertificate,
            0,
        ),
    ];
    for (format, value, kind, offset) in cases {
        let err = format.decode(&value).unwrap_err();
        assert_eq!(
            (err.kind(), err.offset()),
            (&kind, offset),
            "{format} {value:?}: {err}"
        );
        assert_eq!(err.format(), format);
    }
}
