//! What one XFCC element says about the client's certificate.

use std::fmt;
use std::net::IpAddr;

use http::HeaderName;
use portcullis_identity::hex;
use portcullis_identity::pem::PemError;
use portcullis_identity::{CertificateError, ClientIdentity, Fingerprint, Source};
use sha2::{Digest, Sha256};

use crate::XfccElement;
use crate::format::PemValueError;

/// The fields of one XFCC element, checked.
///
/// `By`, `URI` and `DNS` may repeat and keep their order; `Hash`, `Cert`,
/// `Chain`, `Subject` and `Issuer` may appear once. `Hash` is 64 hex digits
/// (a SHA-256, as Envoy and Caddy write it) or 40 (a SHA-1, as nginx's
/// `$ssl_client_fingerprint` is), kept as what it is.
/// `Cert` and `Chain` are URL-encoded PEM, decoded strictly (a `%` must
/// start two hex digits, `+` stays `+`, NUL is refused); `Cert` holds one
/// certificate, `Chain` the leaf first. When `Hash` and `Cert` are both
/// present, the hash must be the certificate's digest. Unknown keys are
/// ignored here (they stay in the element).
///
/// # Example
///
/// ```
/// use portcullis_xfcc::{ForwardedCert, parse};
///
/// let element = &parse("By=spiffe://example.org/gw;URI=spiffe://example.org/ns/a;DNS=a.example;DNS=b.example")?[0];
/// let fields = ForwardedCert::from_element(element)?;
/// assert_eq!(fields.uris(), ["spiffe://example.org/ns/a"]);
/// assert_eq!(fields.dns_names(), ["a.example", "b.example"]);
/// assert!(fields.cert_der().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedCert {
    by: Vec<String>,
    uris: Vec<String>,
    dns_names: Vec<String>,
    hash: Option<[u8; 32]>,
    hash_sha1: Option<[u8; 20]>,
    subject: Option<String>,
    issuer: Option<String>,
    cert: Option<Vec<u8>>,
    chain: Vec<Vec<u8>>,
}

impl ForwardedCert {
    /// Reads and checks an element's fields.
    pub fn from_element(element: &XfccElement) -> Result<Self, FieldError> {
        let mut fields = ForwardedCert::default();
        for (key, value) in element.pairs() {
            let once = |slot_taken: bool, key: &'static str| {
                if slot_taken {
                    Err(FieldError::Duplicate { key })
                } else {
                    Ok(())
                }
            };
            if key.eq_ignore_ascii_case("By") {
                fields.by.push(value.to_owned());
            } else if key.eq_ignore_ascii_case("URI") {
                fields.uris.push(value.to_owned());
            } else if key.eq_ignore_ascii_case("DNS") {
                fields.dns_names.push(value.to_owned());
            } else if key.eq_ignore_ascii_case("Hash") {
                once(fields.hash.is_some() || fields.hash_sha1.is_some(), "Hash")?;
                match value.len() {
                    40 => {
                        fields.hash_sha1 =
                            Some(hex::decode_array(value).ok_or(FieldError::InvalidHash)?)
                    }
                    _ => {
                        fields.hash =
                            Some(hex::decode_sha256(value).ok_or(FieldError::InvalidHash)?)
                    }
                }
            } else if key.eq_ignore_ascii_case("Subject") {
                once(fields.subject.is_some(), "Subject")?;
                fields.subject = Some(value.to_owned());
            } else if key.eq_ignore_ascii_case("Issuer") {
                once(fields.issuer.is_some(), "Issuer")?;
                fields.issuer = Some(value.to_owned());
            } else if key.eq_ignore_ascii_case("Cert") {
                once(fields.cert.is_some(), "Cert")?;
                let mut certs = decode_pem(value, "Cert")?;
                if certs.len() != 1 {
                    return Err(FieldError::CertCount { found: certs.len() });
                }
                fields.cert = certs.pop();
            } else if key.eq_ignore_ascii_case("Chain") {
                once(!fields.chain.is_empty(), "Chain")?;
                fields.chain = decode_pem(value, "Chain")?;
            }
        }
        if let (Some(hash), Some(cert)) = (&fields.hash, &fields.cert) {
            let digest: [u8; 32] = Sha256::digest(cert).into();
            if &digest != hash {
                return Err(FieldError::HashMismatch);
            }
        }
        if let (Some(hash), Some(cert)) = (&fields.hash_sha1, &fields.cert) {
            let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
            if digest.as_ref() != hash {
                return Err(FieldError::HashMismatch);
            }
        }
        Ok(fields)
    }

    /// `By`: the proxies' own identities, in order.
    pub fn by(&self) -> &[String] {
        &self.by
    }

    /// `URI` SANs of the client certificate, in order.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// `DNS` SANs of the client certificate, in order.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// `Hash`: SHA-256 of the client certificate, when it was 64 digits.
    pub fn hash(&self) -> Option<&[u8; 32]> {
        self.hash.as_ref()
    }

    /// `Hash`: SHA-1 of the client certificate, when it was 40 digits
    /// (nginx's `$ssl_client_fingerprint`).
    pub fn hash_sha1(&self) -> Option<&[u8; 20]> {
        self.hash_sha1.as_ref()
    }

    /// `Subject`, as the proxy wrote it.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// `Issuer`, as the proxy wrote it.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `Cert`, decoded to DER.
    pub fn cert_der(&self) -> Option<&[u8]> {
        self.cert.as_deref()
    }

    /// `Chain`, decoded to DER, leaf first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The identity this element forwards, recorded as learnt from `proxy`
    /// through `header`.
    ///
    /// With `Cert` (or `Chain`) it is the full identity of that certificate.
    /// Without one, Envoy still sends `Hash` and whichever of `Subject`,
    /// `URI` and `DNS` it was told to: the identity is built from those
    /// fields and [`known_fields`](ClientIdentity::known_fields) says which
    /// it has. `Ok(None)` when the element has neither a certificate nor a
    /// `Hash`: nothing in it names one certificate.
    pub fn identity(
        &self,
        proxy: IpAddr,
        header: HeaderName,
    ) -> Result<Option<ClientIdentity>, FieldError> {
        if let Some(der) = self
            .cert
            .as_deref()
            .or(self.chain.first().map(Vec::as_slice))
        {
            let identity = ClientIdentity::from_der(der).map_err(FieldError::Certificate)?;
            return Ok(Some(
                identity.with_source(Source::Forwarded { proxy, header }),
            ));
        }
        let fingerprint = match (self.hash, self.hash_sha1) {
            (Some(sha256), _) => Fingerprint::Sha256(sha256),
            (None, Some(sha1)) => Fingerprint::Sha1(sha1),
            (None, None) => return Ok(None),
        };
        Ok(Some(ClientIdentity::from_forwarded_fields(
            proxy,
            header,
            fingerprint,
            self.subject.as_deref(),
            self.uris.clone(),
            self.dns_names.clone(),
        )))
    }
}

/// `Cert` or `Chain`: URL-encoded PEM, every certificate in order.
fn decode_pem(value: &str, key: &'static str) -> Result<Vec<Vec<u8>>, FieldError> {
    crate::format::url_encoded_pem(value).map_err(|error| match error {
        PemValueError::PercentEncoding { offset } => FieldError::PercentEncoding { key, offset },
        PemValueError::Pem(error) => FieldError::Pem { key, error },
        PemValueError::NoCertificate => FieldError::CertCount { found: 0 },
    })
}

/// Why an element's fields were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A single-valued key appeared twice.
    Duplicate {
        /// The key.
        key: &'static str,
    },
    /// `Hash` is neither 64 hex digits (SHA-256) nor 40 (SHA-1).
    InvalidHash,
    /// A bad `%` escape or a NUL in `Cert` or `Chain`.
    PercentEncoding {
        /// The key.
        key: &'static str,
        /// Byte offset in the value.
        offset: usize,
    },
    /// `Cert` or `Chain` is not PEM.
    Pem {
        /// The key.
        key: &'static str,
        /// The PEM problem.
        error: PemError,
    },
    /// `Cert` must hold exactly one certificate (`Chain` at least one).
    CertCount {
        /// How many it held.
        found: usize,
    },
    /// `Hash` is not the digest of `Cert`.
    HashMismatch,
    /// The forwarded certificate is not a certificate.
    Certificate(CertificateError),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Duplicate { key } => {
                write!(f, "XFCC {key} appears more than once in one element")
            }
            FieldError::InvalidHash => {
                f.write_str("XFCC Hash is neither 64 hex digits (a SHA-256) nor 40 (a SHA-1)")
            }
            FieldError::PercentEncoding { key, offset } => {
                write!(
                    f,
                    "XFCC {key} has a bad percent escape or a NUL at byte {offset}"
                )
            }
            FieldError::Pem { key, error } => write!(f, "XFCC {key} is not PEM: {error}"),
            FieldError::CertCount { found } => {
                write!(f, "XFCC Cert must hold one certificate, found {found}")
            }
            FieldError::HashMismatch => f.write_str("XFCC Hash is not the digest of Cert"),
            FieldError::Certificate(error) => write!(f, "XFCC certificate: {error}"),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use portcullis_identity::KnownFields;
    use portcullis_test_support::pki;

    use super::*;
    use crate::parse;

    use crate::format::url_encode;

    fn fields(header: &str) -> Result<ForwardedCert, FieldError> {
        ForwardedCert::from_element(&parse(header).unwrap()[0])
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn envoy_documented_fields() {
        let f = fields(r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"#).unwrap();
        assert_eq!(f.by(), ["http://frontend.lyft.com"]);
        assert_eq!(f.uris(), ["http://testclient.lyft.com"]);
        assert_eq!(f.dns_names(), ["lyft.com", "www.lyft.com"]);
        assert_eq!(
            f.subject(),
            Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client")
        );
        assert_eq!(
            f.hash().map(|h| hex(h)).as_deref(),
            Some("468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688")
        );
    }

    #[test]
    fn a_forwarded_certificate_becomes_a_full_identity() {
        let leaf = pki().client_spiffe();
        let hash = hex(&Sha256::digest(leaf.der()));
        let header = format!(
            "Hash={hash};Cert=\"{}\";Chain=\"{}\"",
            url_encode(leaf.cert_pem()),
            url_encode(leaf.chain_pem())
        );
        let f = fields(&header).unwrap();
        assert_eq!(f.cert_der(), Some(leaf.der()));
        assert_eq!(f.chain_der().len(), 2);
        assert_eq!(f.chain_der()[0], leaf.der());
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let name = HeaderName::from_static("x-forwarded-client-cert");
        let identity = f.identity(proxy, name.clone()).unwrap().unwrap();
        assert_eq!(
            identity.spiffe_id().map(|s| s.as_str()),
            Some("spiffe://example.org/ns/prod/sa/api")
        );
        assert_eq!(
            identity.source(),
            &Source::Forwarded {
                proxy,
                header: name
            }
        );
        // Neither a certificate nor a hash: no identity.
        assert_eq!(
            fields("URI=spiffe://example.org/x")
                .unwrap()
                .identity(proxy, HeaderName::from_static("x")),
            Ok(None)
        );
    }

    #[test]
    fn fields_without_a_certificate_become_a_partial_identity() {
        // What Istio's sidecar sends: By, Hash, Subject, URI.
        let hash = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";
        let f = fields(&format!(
            r#"By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Subject="CN=client.example.com,O=Acme\, Inc.";URI=spiffe://cluster.local/ns/default/sa/web"#
        ))
        .unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let id = f
            .identity(proxy, HeaderName::from_static("x-forwarded-client-cert"))
            .unwrap()
            .unwrap();
        assert_eq!(id.common_name(), Some("client.example.com"));
        assert_eq!(id.subject(), r"CN=client.example.com,O=Acme\, Inc.");
        assert_eq!(
            id.spiffe_id().map(|s| s.as_str()),
            Some("spiffe://cluster.local/ns/default/sa/web")
        );
        assert_eq!(id.fingerprint_sha256_hex(), hash);
        let known = id.known_fields();
        assert!(
            known.contains(KnownFields::FINGERPRINT | KnownFields::SUBJECT | KnownFields::URIS)
        );
        assert!(!known.contains(KnownFields::CERTIFICATE));
        assert!(!known.contains(KnownFields::DNS_NAMES));
        assert_eq!(id.source().as_str(), "forwarded");
        assert!(id.der().is_empty());
    }

    #[test]
    fn plus_and_unencoded_pem_characters_are_kept() {
        // An AWS-ALB-style value: only some characters encoded, '+' '/' '=' raw.
        let pem = pki().client().cert_pem();
        let partly = pem.replace('\n', "%0A").replace(' ', "%20");
        let f = fields(&format!("Cert=\"{partly}\"")).unwrap();
        assert_eq!(f.cert_der(), Some(pki().client().der()));
    }

    #[test]
    fn refusals() {
        let leaf = pki().client();
        let cert = url_encode(leaf.cert_pem());
        let wrong_hash = hex(&Sha256::digest(b"not the certificate"));
        let cases: Vec<(String, FieldError)> = vec![
            (
                format!("Hash={wrong_hash};Cert={cert}"),
                FieldError::HashMismatch,
            ),
            ("Hash=abc".to_owned(), FieldError::InvalidHash),
            (format!("Hash={}", "g".repeat(64)), FieldError::InvalidHash),
            (
                "Subject=a;Subject=b".to_owned(),
                FieldError::Duplicate { key: "Subject" },
            ),
            (
                format!("Cert={cert};cert={cert}"),
                FieldError::Duplicate { key: "Cert" },
            ),
            (
                "Cert=%G1".to_owned(),
                FieldError::PercentEncoding {
                    key: "Cert",
                    offset: 0,
                },
            ),
            (
                "Cert=abc%4".to_owned(),
                FieldError::PercentEncoding {
                    key: "Cert",
                    offset: 3,
                },
            ),
            (
                "Cert=a%00b".to_owned(),
                FieldError::PercentEncoding {
                    key: "Cert",
                    offset: 1,
                },
            ),
            (
                // A raw NUL is reported where it stands, too.
                "Cert=ab\0c".to_owned(),
                FieldError::PercentEncoding {
                    key: "Cert",
                    offset: 2,
                },
            ),
            (
                "Cert=nothing".to_owned(),
                FieldError::CertCount { found: 0 },
            ),
            (
                format!("Cert={}", url_encode(leaf.chain_pem())),
                FieldError::CertCount { found: 2 },
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(fields(&header), Err(expected), "{header}");
        }
        let garbage = url_encode("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n");
        let f = fields(&format!("Cert={garbage}")).unwrap();
        let err = f
            .identity("10.0.0.1".parse().unwrap(), HeaderName::from_static("x"))
            .unwrap_err();
        assert!(matches!(err, FieldError::Certificate(_)), "{err}");
    }

    #[test]
    fn a_forty_digit_hash_is_a_sha1_fingerprint_never_the_sha256() {
        let der = pki().client().der();
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let sha1_hex = hex(sha1.as_ref());
        // nginx's template: Subject and $ssl_client_fingerprint.
        let f = fields(&format!(
            "Subject=\"CN=client.example.com,O=Portcullis Test Clients\";Hash=\"{sha1_hex}\""
        ))
        .unwrap();
        assert_eq!(f.hash(), None);
        assert_eq!(f.hash_sha1().map(|h| h.as_slice()), Some(sha1.as_ref()));
        let proxy = "10.0.0.2".parse().unwrap();
        let header = HeaderName::from_static("x-forwarded-client-cert");
        let id = f.identity(proxy, header.clone()).unwrap().unwrap();
        assert_eq!(id.common_name(), Some("client.example.com"));
        assert_eq!(
            id.fingerprint_sha1().map(|h| h.to_vec()),
            Some(sha1.as_ref().to_vec())
        );
        assert!(id.known_fields().contains(KnownFields::FINGERPRINT_SHA1));
        assert!(!id.known_fields().contains(KnownFields::FINGERPRINT));
        assert_eq!(id.fingerprint_sha256(), [0; 32]);
        assert_eq!(id.known_fingerprint_sha256(), None);
        let full = ClientIdentity::from_der(der).unwrap();
        assert_eq!(
            full.known_fingerprint_sha256(),
            Some(full.fingerprint_sha256())
        );
        assert_eq!(id.source(), &Source::Forwarded { proxy, header });
        // With the certificate, a SHA-1 must match it too.
        let cert = url_encode(&crate::format::pem(der));
        assert!(fields(&format!("Hash={sha1_hex};Cert=\"{cert}\"")).is_ok());
        let wrong = "ab".repeat(20);
        assert_eq!(
            fields(&format!("Hash={wrong};Cert=\"{cert}\"")).unwrap_err(),
            FieldError::HashMismatch
        );
        // Neither length is refused, with the reason.
        let err = fields("Hash=abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "XFCC Hash is neither 64 hex digits (a SHA-256) nor 40 (a SHA-1)"
        );
    }
}
