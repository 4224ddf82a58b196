//! A client certificate's identity: the leaf parsed once into what callers
//! are keyed and authorised by.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use http::HeaderName;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509CertificateParser;
use x509_parser::extensions::GeneralName;
use x509_parser::nom::Parser;

use crate::SpiffeId;
use crate::dn;
use crate::x509::{ip_from_san, serial_hex, subject_alt_name, system_time};

/// A certificate fingerprint as a proxy forwards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fingerprint {
    /// SHA-256 of the DER certificate (Envoy's XFCC `Hash`, Caddy).
    Sha256([u8; 32]),
    /// SHA-1 of the DER certificate (nginx's `$ssl_client_fingerprint`).
    Sha1([u8; 20]),
}

/// How an identity was learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// From the certificate the client presented in this process's own TLS
    /// handshake.
    Tls,
    /// From a header written by a trusted reverse proxy that terminated TLS.
    Forwarded {
        /// The proxy's address (the TCP peer that was trusted).
        proxy: IpAddr,
        /// The header the certificate arrived in ([`PROXY_PROTOCOL_SSL`](crate::PROXY_PROTOCOL_SSL)
        /// for a PROXY v2 header's SSL TLVs).
        header: HeaderName,
    },
}

impl Source {
    /// `"tls"` or `"forwarded"`, as the examples' `/whoami` reports it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Tls => "tls",
            Source::Forwarded { .. } => "forwarded",
        }
    }
}

/// The identity in a client's leaf certificate.
///
/// Built once per connection (or per forwarded header) by
/// [`ClientIdentity::from_der`] and shared by every request on it: cloning is
/// a reference-count increment, so the extension is stored by value and read
/// with `extensions().get::<ClientIdentity>()`.
///
/// A proxy may forward only some fields of a certificate (Envoy's XFCC
/// without `Cert`): such an identity comes from
/// [`from_forwarded_fields`](Self::from_forwarded_fields), and
/// [`known_fields`](Self::known_fields) says what it holds.
///
/// # Example
///
/// ```
/// use portcullis_identity::{ClientIdentity, Source};
/// # let der = portcullis_test_support::pki().client_spiffe().der().to_vec();
///
/// let identity = ClientIdentity::from_der(&der)?;
/// assert_eq!(identity.common_name(), Some("workload.example.com"));
/// assert_eq!(
///     identity.spiffe_id().map(|id| id.as_str()),
///     Some("spiffe://example.org/ns/prod/sa/api")
/// );
/// assert_eq!(identity.source(), &Source::Tls);
/// # Ok::<(), portcullis_identity::CertificateError>(())
/// ```
#[derive(Clone)]
pub struct ClientIdentity {
    certificate: Arc<Certificate>,
    source: Source,
}

/// Everything read from the DER, kept beside it.
struct Certificate {
    der: Box<[u8]>,
    subject: String,
    issuer: String,
    common_names: Vec<Option<String>>,
    serial_hex: String,
    /// Hashed on first use: most callers key by CN or SPIFFE ID, and
    /// SHA-256 is most of the cost of reading a leaf on CPUs without SHA
    /// instructions.
    fingerprint_sha256: OnceLock<[u8; 32]>,
    /// The SHA-1 fingerprint a proxy forwarded instead of a SHA-256 one.
    fingerprint_sha1: Option<[u8; 20]>,
    /// SHA-256 of the CN and of the SPIFFE ID, on first use: the rate
    /// limiter keys buckets by them on every request of a connection.
    common_name_sha256: OnceLock<Option<[u8; 32]>>,
    spiffe_id_sha256: OnceLock<Option<[u8; 32]>>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    emails: Vec<String>,
    ips: Vec<IpAddr>,
    spiffe_id: Option<SpiffeId>,
    not_before: SystemTime,
    not_after: SystemTime,
    known: KnownFields,
}

/// Which parts of a [`ClientIdentity`] are known.
///
/// An identity read from a certificate knows everything. One that a proxy
/// forwarded as fields, without the certificate itself (Envoy's XFCC with
/// only `Hash`, `Subject`, `URI` and `DNS`, as Istio sends it), knows only
/// what it was given; its other accessors answer empty (and its validity
/// dates the epoch, a period that never was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownFields(u8);

impl KnownFields {
    /// The whole certificate (DER, issuer, serial, dates, every SAN).
    pub const CERTIFICATE: KnownFields = KnownFields(1);
    /// The SHA-256 fingerprint.
    pub const FINGERPRINT: KnownFields = KnownFields(1 << 1);
    /// The subject (and the common name, when the subject is RFC 4514).
    pub const SUBJECT: KnownFields = KnownFields(1 << 2);
    /// The URI SANs (and the SPIFFE ID).
    pub const URIS: KnownFields = KnownFields(1 << 3);
    /// The DNS SANs.
    pub const DNS_NAMES: KnownFields = KnownFields(1 << 4);
    /// A SHA-1 fingerprint, forwarded instead of the SHA-256 one (nginx's
    /// `$ssl_client_fingerprint`).
    pub const FINGERPRINT_SHA1: KnownFields = KnownFields(1 << 5);
    /// The common name (with the subject, or alone: HAProxy's PROXY v2
    /// SSL TLVs carry the CN and nothing else of the certificate).
    pub const COMMON_NAME: KnownFields = KnownFields(1 << 6);
    const ALL: KnownFields = KnownFields(0b101_1111);

    /// Whether every field of `other` is known.
    pub fn contains(self, other: KnownFields) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for KnownFields {
    type Output = KnownFields;

    fn bitor(self, rhs: KnownFields) -> KnownFields {
        KnownFields(self.0 | rhs.0)
    }
}

/// Context-specific tag of `uniformResourceIdentifier` in `GeneralName`.
const URI_TAG: u32 = 6;

impl ClientIdentity {
    /// Parses one DER-encoded X.509 certificate (the leaf of a chain).
    ///
    /// The bytes must hold exactly one certificate. Nothing here verifies
    /// the certificate: that is the TLS verifier's job (or the trusted
    /// proxy's), and it happens before an identity is built. The source is
    /// [`Source::Tls`]; see [`with_source`](Self::with_source).
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        if der.is_empty() {
            return Err(CertificateError::new(
                CertificateErrorKind::Empty,
                "no bytes",
            ));
        }
        // Only subjectAltName is read, so the other extensions are left as
        // raw bytes instead of being decoded and thrown away.
        let (rest, cert) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(der)
            .map_err(|e| CertificateError::new(CertificateErrorKind::Malformed, e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertificateError::new(
                CertificateErrorKind::TrailingData,
                format!("{} bytes after the certificate", rest.len()),
            ));
        }
        let tbs = &cert.tbs_certificate;

        let mut dns_names = Vec::new();
        let mut uris = Vec::new();
        let mut emails = Vec::new();
        let mut ips = Vec::new();
        let mut uri_entries = 0usize;
        let san = subject_alt_name(tbs.extensions())?;
        for name in san.iter().flat_map(|san| san.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::URI(uri) => {
                    uri_entries += 1;
                    uris.push((*uri).to_owned());
                }
                GeneralName::RFC822Name(email) => emails.push((*email).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_san(bytes) {
                        ips.push(ip);
                    }
                }
                // A URI SAN that is not valid text still counts: one valid
                // and one broken URI is not "exactly one URI SAN".
                GeneralName::Invalid(tag, _) if tag.0 == URI_TAG => uri_entries += 1,
                _ => {}
            }
        }
        // An X509-SVID carries exactly one URI SAN; anything else is ambiguous.
        let spiffe_id = match uris.as_slice() {
            [only] if uri_entries == 1 => SpiffeId::parse(only).ok(),
            _ => None,
        };

        let mut common_names = Vec::new();
        let certificate = Certificate {
            der: der.into(),
            subject: dn::format_name_collecting(&tbs.subject, &mut common_names),
            issuer: dn::format_name(&tbs.issuer),
            common_names,
            serial_hex: serial_hex(tbs.raw_serial()),
            fingerprint_sha256: OnceLock::new(),
            fingerprint_sha1: None,
            common_name_sha256: OnceLock::new(),
            spiffe_id_sha256: OnceLock::new(),
            dns_names,
            uris,
            emails,
            ips,
            spiffe_id,
            not_before: system_time(&tbs.validity.not_before),
            not_after: system_time(&tbs.validity.not_after),
            known: KnownFields::ALL,
        };
        Ok(ClientIdentity {
            certificate: Arc::new(certificate),
            source: Source::Tls,
        })
    }

    /// An identity a trusted proxy forwarded as fields, without the
    /// certificate: its fingerprint, and whichever of subject, URI and DNS
    /// SANs it sent. The source is always [`Source::Forwarded`], from
    /// `proxy` through `header`: such an identity can never pass for one
    /// this process's own handshake verified.
    ///
    /// The fingerprint is required: it is what Envoy always sends, and it
    /// keys the identity when nothing else does. It is a SHA-256 (Envoy,
    /// Caddy) or, from nginx's `$ssl_client_fingerprint`, a SHA-1, recorded
    /// as one ([`fingerprint_sha1`](Self::fingerprint_sha1)) and never as
    /// the SHA-256. The subject is kept as the proxy wrote it; the common
    /// name is read from it when it is an RFC 4514 string (Envoy and nginx
    /// write that form) and is `None` otherwise. The SPIFFE ID comes from
    /// the URIs under the same one-URI rule as a certificate's.
    /// [`known_fields`](Self::known_fields) says what is known; the rest
    /// answers empty.
    ///
    /// ```
    /// use portcullis_identity::{ClientIdentity, Fingerprint, KnownFields, Source};
    ///
    /// let proxy = "10.0.0.2".parse()?;
    /// let header = http::HeaderName::from_static("x-forwarded-client-cert");
    /// let id = ClientIdentity::from_forwarded_fields(
    ///     proxy,
    ///     header.clone(),
    ///     Fingerprint::Sha256([7; 32]),
    ///     Some("CN=client.example.com,O=Acme"),
    ///     vec!["spiffe://example.org/ns/a".into()],
    ///     vec![],
    /// );
    /// assert_eq!(id.common_name(), Some("client.example.com"));
    /// assert_eq!(id.spiffe_id().map(|s| s.as_str()), Some("spiffe://example.org/ns/a"));
    /// assert_eq!(id.source(), &Source::Forwarded { proxy, header });
    /// assert!(!id.known_fields().contains(KnownFields::CERTIFICATE));
    /// assert!(id.der().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_forwarded_fields(
        proxy: IpAddr,
        header: HeaderName,
        fingerprint: Fingerprint,
        subject: Option<&str>,
        uris: Vec<String>,
        dns_names: Vec<String>,
    ) -> Self {
        let (mut known, sha256, sha1) = match fingerprint {
            Fingerprint::Sha256(digest) => (KnownFields::FINGERPRINT, digest, None),
            // No SHA-256 is known: zeros, never a value a certificate has.
            Fingerprint::Sha1(digest) => (KnownFields::FINGERPRINT_SHA1, [0; 32], Some(digest)),
        };
        if subject.is_some() {
            known = known | KnownFields::SUBJECT | KnownFields::COMMON_NAME;
        }
        if !uris.is_empty() {
            known = known | KnownFields::URIS;
        }
        if !dns_names.is_empty() {
            known = known | KnownFields::DNS_NAMES;
        }
        let spiffe_id = match uris.as_slice() {
            [only] => SpiffeId::parse(only).ok(),
            _ => None,
        };
        let subject = subject.unwrap_or_default();
        let certificate = Certificate {
            der: Box::default(),
            common_names: dn::common_names_from_rfc4514(subject).unwrap_or_default(),
            subject: subject.to_owned(),
            issuer: String::new(),
            serial_hex: String::new(),
            fingerprint_sha256: OnceLock::from(sha256),
            fingerprint_sha1: sha1,
            common_name_sha256: OnceLock::new(),
            spiffe_id_sha256: OnceLock::new(),
            dns_names,
            uris,
            emails: Vec::new(),
            ips: Vec::new(),
            spiffe_id,
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            known,
        };
        ClientIdentity {
            certificate: Arc::new(certificate),
            source: Source::Forwarded { proxy, header },
        }
    }

    /// The identity a trusted layer-4 load balancer's PROXY v2 SSL TLVs name
    /// (HAProxy's `send-proxy-v2-ssl-cn`, sent only once it verified the
    /// client's certificate): the common name alone, learnt from `proxy`,
    /// recorded as [`Source::Forwarded`] through the pseudo-header
    /// [`PROXY_PROTOCOL_SSL`](crate::PROXY_PROTOCOL_SSL).
    ///
    /// ```
    /// use portcullis_identity::{ClientIdentity, KnownFields};
    ///
    /// let id = ClientIdentity::from_proxy_protocol("10.0.0.2".parse()?, "client.example.com");
    /// assert_eq!(id.common_name(), Some("client.example.com"));
    /// assert_eq!(id.known_fields(), KnownFields::COMMON_NAME);
    /// assert_eq!(id.known_fingerprint_sha256(), None);
    /// assert_eq!(id.source().as_str(), "forwarded");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_proxy_protocol(proxy: IpAddr, common_name: &str) -> Self {
        let mut identity = Self::from_forwarded_fields(
            proxy,
            HeaderName::from_static(crate::PROXY_PROTOCOL_SSL),
            Fingerprint::Sha256([0; 32]),
            None,
            Vec::new(),
            Vec::new(),
        );
        if let Some(certificate) = Arc::get_mut(&mut identity.certificate) {
            certificate.common_names = vec![Some(common_name.to_owned())];
            certificate.known = KnownFields::COMMON_NAME;
        }
        identity
    }

    /// Which fields are known: everything for an identity read from a
    /// certificate, less for one built by
    /// [`from_forwarded_fields`](Self::from_forwarded_fields).
    pub fn known_fields(&self) -> KnownFields {
        self.certificate.known
    }

    /// The same identity, recorded as learnt from `source`.
    #[must_use]
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// The subject as an RFC 4514 string, most specific RDN first, escaped,
    /// e.g. `CN=api\, v2,O=Acme,C=DE` (as `openssl x509 -nameopt
    /// RFC2253,-esc_msb` prints it).
    pub fn subject(&self) -> &str {
        &self.certificate.subject
    }

    /// The subject's common name, decoded from whichever string type it was
    /// written in (UTF8String, PrintableString, BMPString, TeletexString, ...).
    ///
    /// With several CN attributes this is the most specific one (the last in
    /// the certificate, the first in [`subject`](Self::subject)), as Go's
    /// `crypto/x509` reads it. `None` when there is no CN or it is not a
    /// decodable string: an undecodable name never becomes a principal.
    pub fn common_name(&self) -> Option<&str> {
        self.certificate.common_names.last()?.as_deref()
    }

    /// Every CN attribute in certificate order; `None` for one that is not a
    /// decodable string.
    pub fn common_names(&self) -> impl Iterator<Item = Option<&str>> {
        self.certificate.common_names.iter().map(Option::as_deref)
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer(&self) -> &str {
        &self.certificate.issuer
    }

    /// The serial number as lower-case hex without separators or leading
    /// zero bytes, e.g. `"1a2b"`.
    pub fn serial_hex(&self) -> &str {
        &self.certificate.serial_hex
    }

    /// SHA-256 of the certificate's DER encoding.
    ///
    /// Computed on first use and kept. All zeros for an identity a proxy
    /// forwarded with only a SHA-1 fingerprint: check
    /// [`known_fields`](Self::known_fields) for
    /// [`KnownFields::FINGERPRINT`] before keying anything by it.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        *self
            .certificate
            .fingerprint_sha256
            .get_or_init(|| Sha256::digest(&self.certificate.der).into())
    }

    /// [`fingerprint_sha256`](Self::fingerprint_sha256) when it is known:
    /// `None` for an identity a proxy forwarded with only a SHA-1
    /// fingerprint, so nothing is ever keyed by the zeros it stands in for.
    pub fn known_fingerprint_sha256(&self) -> Option<[u8; 32]> {
        self.certificate
            .known
            .contains(KnownFields::FINGERPRINT)
            .then(|| self.fingerprint_sha256())
    }

    /// The SHA-1 fingerprint a proxy forwarded in place of the SHA-256 one
    /// (nginx's `$ssl_client_fingerprint`); `None` otherwise.
    pub fn fingerprint_sha1(&self) -> Option<[u8; 20]> {
        self.certificate.fingerprint_sha1
    }

    /// SHA-256 of [`common_name`](Self::common_name), computed on first use
    /// and kept with the certificate (so once per connection, or per
    /// forwarded header value).
    pub fn common_name_sha256(&self) -> Option<[u8; 32]> {
        *self
            .certificate
            .common_name_sha256
            .get_or_init(|| self.common_name().map(|cn| Sha256::digest(cn).into()))
    }

    /// SHA-256 of the [SPIFFE ID](Self::spiffe_id), computed on first use
    /// and kept with the certificate.
    pub fn spiffe_id_sha256(&self) -> Option<[u8; 32]> {
        *self.certificate.spiffe_id_sha256.get_or_init(|| {
            self.spiffe_id()
                .map(|id| Sha256::digest(id.as_str()).into())
        })
    }

    /// [`fingerprint_sha256`](Self::fingerprint_sha256) as 64 lower-case hex
    /// digits, the form Envoy's XFCC `Hash` uses.
    pub fn fingerprint_sha256_hex(&self) -> String {
        crate::hex::encode(&self.fingerprint_sha256())
    }

    /// `dNSName` subject alternative names, in certificate order.
    pub fn dns_names(&self) -> &[String] {
        &self.certificate.dns_names
    }

    /// `uniformResourceIdentifier` subject alternative names, in order.
    pub fn uris(&self) -> &[String] {
        &self.certificate.uris
    }

    /// `rfc822Name` subject alternative names, in order. (A legacy
    /// `emailAddress` attribute in the subject shows in
    /// [`subject`](Self::subject) only.)
    pub fn emails(&self) -> &[String] {
        &self.certificate.emails
    }

    /// `iPAddress` subject alternative names, in order; IPv4-mapped IPv6
    /// addresses are given as IPv4.
    pub fn ips(&self) -> &[IpAddr] {
        &self.certificate.ips
    }

    /// The SPIFFE ID, when the certificate has exactly one URI SAN and it is
    /// a valid SPIFFE ID.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.certificate.spiffe_id.as_ref()
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.certificate.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.certificate.not_after
    }

    /// How this identity was learnt.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The certificate's DER encoding, as received.
    pub fn der(&self) -> &[u8] {
        &self.certificate.der
    }

    /// Whether `a` and `b` are handles to one parse of a certificate (as
    /// all requests of one connection are), not merely equal.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.certificate, &b.certificate)
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.certificate, &*other.certificate);
        self.source == other.source
            && a.known == b.known
            && a.der == b.der
            && (a.known.contains(KnownFields::CERTIFICATE)
                || (self.fingerprint_sha256() == other.fingerprint_sha256()
                    && a.fingerprint_sha1 == b.fingerprint_sha1
                    && a.subject == b.subject
                    && a.uris == b.uris
                    && a.dns_names == b.dns_names))
    }
}

impl Eq for ClientIdentity {}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject())
            .field("spiffe_id", &self.spiffe_id())
            .field("serial", &self.serial_hex())
            .field("fingerprint_sha256", &self.fingerprint_sha256_hex())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a usable certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateError {
    kind: CertificateErrorKind,
    detail: String,
}

/// The kind of a [`CertificateError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateErrorKind {
    /// No bytes at all.
    Empty,
    /// Not a DER X.509 certificate.
    Malformed,
    /// Bytes left over after one certificate.
    TrailingData,
    /// An extension this crate reads (subjectAltName) is malformed or
    /// appears twice.
    InvalidExtension,
}

impl CertificateError {
    pub(crate) fn new(kind: CertificateErrorKind, detail: impl Into<String>) -> Self {
        CertificateError {
            kind,
            detail: detail.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> CertificateErrorKind {
        self.kind
    }
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            CertificateErrorKind::Empty => "empty certificate",
            CertificateErrorKind::Malformed => "malformed certificate",
            CertificateErrorKind::TrailingData => "trailing data after certificate",
            CertificateErrorKind::InvalidExtension => "invalid certificate extension",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for CertificateError {}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
