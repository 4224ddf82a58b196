//! Unit tests of `certificate.rs`.

use super::*;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::x509::from_unix_seconds;
use x509_parser::time::ASN1Time;

#[test]
fn serial_drops_sign_padding_only() {
    assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
    assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[]), "");
}

#[test]
fn san_ips_are_canonical() {
    let mapped = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets();
    assert_eq!(ip_from_san(&mapped), Some(IpAddr::from([192, 0, 2, 7])));
    assert_eq!(
        ip_from_san(&[192, 0, 2, 1]),
        Some(IpAddr::from([192, 0, 2, 1]))
    );
    assert_eq!(ip_from_san(&[1, 2, 3]), None);
}

#[test]
fn times_before_1970_do_not_wrap() {
    let t = ASN1Time::from_timestamp(-86_400).unwrap();
    assert_eq!(
        system_time(&t),
        SystemTime::UNIX_EPOCH - Duration::from_secs(86_400)
    );
}

#[test]
fn times_at_the_ends_of_the_range_do_not_panic() {
    // Whether the platform holds them or not, the answer is the time
    // itself or the epoch, never a panic.
    for seconds in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let magnitude = Duration::from_secs(seconds.unsigned_abs());
        let exact = if seconds >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(magnitude)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(magnitude)
        };
        assert_eq!(
            from_unix_seconds(seconds),
            exact.unwrap_or(SystemTime::UNIX_EPOCH)
        );
    }
    assert_eq!(
        from_unix_seconds(86_400),
        SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
    );
}

#[test]
fn garbage_is_a_typed_error() {
    assert_eq!(
        ClientIdentity::from_der(&[]).unwrap_err().kind(),
        CertificateErrorKind::Empty
    );
    assert_eq!(
        ClientIdentity::from_der(b"not a certificate")
            .unwrap_err()
            .kind(),
        CertificateErrorKind::Malformed
    );
    assert_eq!(
        ClientIdentity::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01])
            .unwrap_err()
            .kind(),
        CertificateErrorKind::Malformed
    );
}
