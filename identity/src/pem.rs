//! A PEM/DER bundle reader that sees every block.
//!
//! `rustls-pki-types` skips blocks it does not know, among them OpenSSL's
//! `TRUSTED CERTIFICATE`, so a CA bundle of those loads as empty. This reader
//! sorts each block: `CERTIFICATE` is a certificate, `TRUSTED CERTIFICATE` is
//! the certificate at its start (the auxiliary trust data after it is
//! dropped), `X509 CRL` is a CRL, and anything else is reported as skipped.
//! A block that does not decode is an error naming its position.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

/// What a bundle held.
#[derive(Debug, Default, Clone)]
pub struct Bundle {
    /// Certificates, in file order (`TRUSTED CERTIFICATE` blocks included).
    pub certificates: Vec<CertificateDer<'static>>,
    /// CRLs, in file order.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Labels of blocks that were neither (private keys, parameters, ...),
    /// with their 1-based block positions.
    pub skipped: Vec<(usize, String)>,
}

/// Reads a bundle: PEM with any number of blocks, or one DER certificate.
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, PemError> {
    let mut bundle = Bundle::default();
    if bytes.first() == Some(&0x30) {
        // A raw DER certificate (what `openssl x509 -outform DER` writes).
        bundle
            .certificates
            .push(CertificateDer::from(bytes.to_vec()));
        return Ok(bundle);
    }
    for (index, block) in blocks(bytes).enumerate() {
        let position = index + 1;
        let (label, der) = block.map_err(|reason| PemError { position, reason })?;
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                bundle.certificates.push(CertificateDer::from(der))
            }
            "TRUSTED CERTIFICATE" => {
                let leading = leading_sequence(&der).ok_or(PemError {
                    position,
                    reason: PemErrorReason::NoCertificateInTrusted,
                })?;
                bundle
                    .certificates
                    .push(CertificateDer::from(leading.to_vec()));
            }
            "X509 CRL" => bundle.crls.push(CertificateRevocationListDer::from(der)),
            _ => bundle.skipped.push((position, label)),
        }
    }
    Ok(bundle)
}

/// Each `-----BEGIN X-----` … `-----END X-----` block, decoded.
fn blocks(bytes: &[u8]) -> impl Iterator<Item = Result<(String, Vec<u8>), PemErrorReason>> + '_ {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text
        .lines()
        .map(|line| line.trim().to_owned())
        .collect::<Vec<_>>()
        .into_iter();
    std::iter::from_fn(move || {
        let label = lines.by_ref().find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
                .map(str::to_owned)
        })?;
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == end {
                return Some(
                    STANDARD
                        .decode(body.as_bytes())
                        .map(|der| (label, der))
                        .map_err(|_| PemErrorReason::InvalidBase64),
                );
            }
            if line.starts_with("-----") {
                return Some(Err(PemErrorReason::Unterminated { label }));
            }
            // RFC 7468 allows no headers in these blocks; legacy ones have
            // `Key: value` lines we do not need.
            if !line.contains(':') {
                body.push_str(&line);
            }
        }
        Some(Err(PemErrorReason::Unterminated { label }))
    })
}

/// The first DER `SEQUENCE` in `der` (tag, length, contents).
fn leading_sequence(der: &[u8]) -> Option<&[u8]> {
    if der.first() != Some(&0x30) {
        return None;
    }
    let first = *der.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let len = der
            .get(2..2 + count)?
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (2 + count, len)
    };
    der.get(..header.checked_add(len)?)
}

/// A block of a PEM bundle that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemError {
    /// 1-based position of the block in the file.
    pub position: usize,
    /// What was wrong with it.
    pub reason: PemErrorReason,
}

/// What was wrong with a PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemErrorReason {
    /// Its body is not base64.
    InvalidBase64,
    /// No matching `-----END ...-----` line.
    Unterminated {
        /// The block's label.
        label: String,
    },
    /// A `TRUSTED CERTIFICATE` that does not start with a certificate.
    NoCertificateInTrusted,
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PEM block {}: ", self.position)?;
        match &self.reason {
            PemErrorReason::InvalidBase64 => f.write_str("its body is not valid base64"),
            PemErrorReason::Unterminated { label } => {
                write!(f, "\"-----BEGIN {label}-----\" has no matching END line")
            }
            PemErrorReason::NoCertificateInTrusted => {
                f.write_str("TRUSTED CERTIFICATE does not start with a DER certificate")
            }
        }
    }
}

impl std::error::Error for PemError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn sorts_blocks_and_reports_skips() {
        let cert = portcullis_test_support::pki().ca().der();
        let mut trusted = cert.to_vec();
        trusted.extend_from_slice(&[0x30, 0x03, 0x06, 0x01, 0x00]); // trailing aux data
        let text = format!(
            "junk before\n{}{}{}{}",
            pem("CERTIFICATE", cert),
            pem("TRUSTED CERTIFICATE", &trusted),
            pem("X509 CRL", &[0x30, 0x00]),
            pem("PRIVATE KEY", &[0x30, 0x00]),
        );
        let bundle = parse_bundle(text.as_bytes()).unwrap();
        assert_eq!(bundle.certificates.len(), 2);
        assert_eq!(bundle.certificates[0].as_ref(), cert);
        assert_eq!(bundle.certificates[1].as_ref(), cert, "aux data dropped");
        assert_eq!(bundle.crls.len(), 1);
        assert_eq!(bundle.skipped, vec![(4, "PRIVATE KEY".to_owned())]);
    }

    #[test]
    fn bad_blocks_are_named() {
        let err = parse_bundle(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "PEM block 1: its body is not valid base64");
        let text = format!(
            "{}-----BEGIN CERTIFICATE-----\nMAA=\n",
            pem("CERTIFICATE", &[0x30, 0])
        );
        let err = parse_bundle(text.as_bytes()).unwrap_err();
        assert_eq!(err.position, 2);
        assert!(matches!(err.reason, PemErrorReason::Unterminated { .. }));
        let err = parse_bundle(pem("TRUSTED CERTIFICATE", &[0x04, 0x00]).as_bytes()).unwrap_err();
        assert_eq!(err.reason, PemErrorReason::NoCertificateInTrusted);
    }

    #[test]
    fn raw_der_is_one_certificate_and_empty_is_empty() {
        let der = portcullis_test_support::pki().client().der();
        assert_eq!(parse_bundle(der).unwrap().certificates.len(), 1);
        let empty = parse_bundle(b"").unwrap();
        assert!(empty.certificates.is_empty() && empty.crls.is_empty());
    }

    #[test]
    fn leading_sequence_handles_long_lengths_and_truncation() {
        assert_eq!(
            leading_sequence(&[0x30, 0x01, 0xAA, 0xBB]),
            Some(&[0x30, 0x01, 0xAA][..])
        );
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        assert_eq!(leading_sequence(&long).map(<[u8]>::len), Some(0x83));
        assert_eq!(leading_sequence(&[0x30, 0x05, 0x00]), None);
        assert_eq!(leading_sequence(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_bundle(&bytes);
        }

        #[test]
        fn every_encoded_block_comes_back_in_order(
            blocks in prop::collection::vec((0usize..3, prop::collection::vec(any::<u8>(), 1..64)), 0..6),
        ) {
            let mut text = String::new();
            let mut certs = Vec::new();
            let mut crls = Vec::new();
            for (kind, body) in &blocks {
                // A body that is a DER SEQUENCE, so TRUSTED CERTIFICATE works.
                let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
                der.extend_from_slice(body);
                let label = ["CERTIFICATE", "X509 CRL", "TRUSTED CERTIFICATE"][*kind];
                text.push_str(&format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", STANDARD.encode(&der)));
                if *kind == 1 { crls.push(der) } else { certs.push(der) }
            }
            let bundle = parse_bundle(text.as_bytes()).unwrap();
            prop_assert_eq!(bundle.certificates.iter().map(|c| c.to_vec()).collect::<Vec<_>>(), certs);
            prop_assert_eq!(bundle.crls.iter().map(|c| c.to_vec()).collect::<Vec<_>>(), crls);
        }
    }
}
