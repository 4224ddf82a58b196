//! Pieces of a leaf certificate, read with x509-parser: the
//! subjectAltName extension, the serial, SAN addresses and times.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use x509_parser::extensions::SubjectAlternativeName;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::{CertificateError, CertificateErrorKind};

/// The one subjectAltName extension, decoded; a second one is an error, as
/// RFC 5280 allows each extension once.
pub(crate) fn subject_alt_name<'a>(
    extensions: &[x509_parser::extensions::X509Extension<'a>],
) -> Result<Option<SubjectAlternativeName<'a>>, CertificateError> {
    let invalid =
        |detail: String| CertificateError::new(CertificateErrorKind::InvalidExtension, detail);
    let mut found = None;
    for extension in extensions
        .iter()
        .filter(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
    {
        if found.is_some() {
            return Err(invalid("subjectAltName appears twice".to_owned()));
        }
        let (rest, san) = SubjectAlternativeName::from_der(extension.value)
            .map_err(|e| invalid(format!("subjectAltName: {e}")))?;
        if !rest.is_empty() {
            return Err(invalid("subjectAltName: trailing data".to_owned()));
        }
        found = Some(san);
    }
    Ok(found)
}

pub(crate) fn serial_hex(raw: &[u8]) -> String {
    // DER integers carry a leading zero byte when the top bit is set.
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    crate::hex::encode(&raw[start..])
}

pub(crate) fn ip_from_san(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b)).to_canonical()),
        // Name constraints use 8/32-byte address+mask forms; not an address.
        _ => None,
    }
}

pub(crate) fn system_time(time: &ASN1Time) -> SystemTime {
    from_unix_seconds(time.timestamp())
}

/// Seconds since the epoch as a `SystemTime`; a time the platform cannot
/// represent (checked, never a panic on a stranger's certificate) is the
/// epoch itself, a period that never was.
pub(crate) fn from_unix_seconds(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    let time = if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(SystemTime::UNIX_EPOCH)
}
