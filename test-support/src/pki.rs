//! The committed test PKI (`test-ca/`) and a throwaway one made with rcgen.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::string::{BmpString, Ia5String};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};

/// One certificate of the committed PKI.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    cert: &'static str,
    der: &'static [u8],
    key: &'static str,
    chain: &'static str,
}

impl Fixture {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> &'static str {
        self.cert
    }

    /// The certificate as DER.
    pub fn der(&self) -> &'static [u8] {
        self.der
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &'static str {
        self.key
    }

    /// The certificate followed by the intermediate, as PEM (what a server
    /// or client sends). For the CAs, just the certificate.
    pub fn chain_pem(&self) -> &'static str {
        self.chain
    }
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            cert: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".cert")),
            der: include_bytes!(concat!("../../test-ca/ecdsa-p256/", $name, ".der")),
            key: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".key")),
            chain: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".chain")),
        }
    };
}

/// The committed test PKI (ECDSA P-256, validity to 4096 but for
/// `client_expired`).
#[derive(Debug, Clone, Copy)]
pub struct TestPki(());

/// The committed test PKI.
pub fn pki() -> TestPki {
    TestPki(())
}

impl TestPki {
    /// `CN=Portcullis Test Root CA`.
    pub fn ca(&self) -> Fixture {
        fixture!("ca")
    }
    /// `CN=Portcullis Test Intermediate CA`, issued by the root.
    pub fn inter(&self) -> Fixture {
        fixture!("inter")
    }
    /// Server certificate for `localhost`, `testserver.example.com`,
    /// `127.0.0.1` and `::1`, issued by the intermediate.
    pub fn end(&self) -> Fixture {
        fixture!("end")
    }
    /// `CN=client.example.com,O=Portcullis Test Clients`, DNS SAN
    /// `client.example.com`.
    pub fn client(&self) -> Fixture {
        fixture!("client")
    }
    /// `CN=workload.example.com`, one URI SAN
    /// `spiffe://example.org/ns/prod/sa/api`.
    pub fn client_spiffe(&self) -> Fixture {
        fixture!("client-spiffe")
    }
    /// Two URI SANs (a SPIFFE ID and an https URI): no SPIFFE ID.
    pub fn client_multi_uri(&self) -> Fixture {
        fixture!("client-multi-uri")
    }
    /// An `rfc822Name` SAN `alice@example.com`.
    pub fn client_email(&self) -> Fixture {
        fixture!("client-email")
    }
    /// IP SANs `192.0.2.10` and `2001:db8::10`.
    pub fn client_ip(&self) -> Fixture {
        fixture!("client-ip")
    }
    /// A BMPString (UTF-16BE) CN `Zoë Müller 日本`.
    pub fn client_bmp(&self) -> Fixture {
        fixture!("client-bmp")
    }
    /// A subject whose values need RFC 4514 escaping.
    pub fn client_escape(&self) -> Fixture {
        fixture!("client-escape")
    }
    /// Expired on 2001-01-01.
    pub fn client_expired(&self) -> Fixture {
        fixture!("client-expired")
    }
}

/// The client certificate shapes of the test PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientProfile {
    /// See [`TestPki::client`].
    Plain,
    /// See [`TestPki::client_spiffe`].
    Spiffe,
    /// See [`TestPki::client_multi_uri`].
    MultiUri,
    /// See [`TestPki::client_email`].
    Email,
    /// See [`TestPki::client_ip`].
    Ip,
    /// See [`TestPki::client_bmp`].
    Bmp,
    /// See [`TestPki::client_escape`].
    Escape,
    /// See [`TestPki::client_expired`].
    Expired,
}

impl ClientProfile {
    /// Every profile.
    pub const ALL: [ClientProfile; 8] = [
        ClientProfile::Plain,
        ClientProfile::Spiffe,
        ClientProfile::MultiUri,
        ClientProfile::Email,
        ClientProfile::Ip,
        ClientProfile::Bmp,
        ClientProfile::Escape,
        ClientProfile::Expired,
    ];

    /// The fixture file stem (`client`, `client-spiffe`, ...).
    pub fn file_stem(self) -> &'static str {
        match self {
            ClientProfile::Plain => "client",
            ClientProfile::Spiffe => "client-spiffe",
            ClientProfile::MultiUri => "client-multi-uri",
            ClientProfile::Email => "client-email",
            ClientProfile::Ip => "client-ip",
            ClientProfile::Bmp => "client-bmp",
            ClientProfile::Escape => "client-escape",
            ClientProfile::Expired => "client-expired",
        }
    }

    fn params(self) -> Result<CertificateParams, rcgen::Error> {
        let mut params = CertificateParams::default();
        // The default carries a placeholder CN that would fix the RDN order.
        params.distinguished_name = DistinguishedName::new();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let dn = &mut params.distinguished_name;
        let uri = |s: &str| Ia5String::try_from(s).map(SanType::URI);
        match self {
            ClientProfile::Plain => {
                dn.push(DnType::OrganizationName, "Portcullis Test Clients");
                dn.push(DnType::CommonName, "client.example.com");
                params.subject_alt_names =
                    vec![SanType::DnsName(Ia5String::try_from("client.example.com")?)];
            }
            ClientProfile::Spiffe => {
                dn.push(DnType::CommonName, "workload.example.com");
                params.subject_alt_names = vec![uri("spiffe://example.org/ns/prod/sa/api")?];
            }
            ClientProfile::MultiUri => {
                dn.push(DnType::CommonName, "multi-uri.example.com");
                params.subject_alt_names = vec![
                    uri("spiffe://example.org/ns/prod/sa/api")?,
                    uri("https://example.org/b")?,
                ];
            }
            ClientProfile::Email => {
                dn.push(DnType::CommonName, "Alice Example");
                params.subject_alt_names = vec![SanType::Rfc822Name(Ia5String::try_from(
                    "alice@example.com",
                )?)];
            }
            ClientProfile::Ip => {
                dn.push(DnType::CommonName, "ip-client");
                params.subject_alt_names = ["192.0.2.10", "2001:db8::10"]
                    .iter()
                    .filter_map(|ip| ip.parse::<IpAddr>().ok())
                    .map(SanType::IpAddress)
                    .collect();
            }
            ClientProfile::Bmp => {
                dn.push(
                    DnType::CountryName,
                    DnValue::PrintableString("DE".try_into()?),
                );
                dn.push(
                    DnType::CommonName,
                    DnValue::BmpString(BmpString::try_from("Zoë Müller 日本")?),
                );
            }
            ClientProfile::Escape => {
                dn.push(DnType::OrganizationName, "#Acme, Inc.");
                dn.push(
                    DnType::OrganizationalUnitName,
                    "R&D=\"Labs\" <west>; a+b\\c",
                );
                dn.push(DnType::CommonName, " padded name ");
            }
            ClientProfile::Expired => {
                dn.push(DnType::CommonName, "expired.example.com");
                params.not_before = date_time_ymd(2000, 1, 1);
                params.not_after = date_time_ymd(2001, 1, 1);
            }
        }
        Ok(params)
    }
}

/// A certificate made by [`ThrowawayPki`], with its key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate followed by its issuing intermediate, PEM.
    pub chain_pem: String,
    /// The serial number, big-endian.
    pub serial: Vec<u8>,
}

/// A root CA and an intermediate made fresh with rcgen, issuing server and
/// client certificates in the shapes of the committed PKI.
pub struct ThrowawayPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    inter: CertifiedIssuer<'static, KeyPair>,
    next_serial: AtomicU64,
}

impl std::fmt::Debug for ThrowawayPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayPki").finish_non_exhaustive()
    }
}

impl ThrowawayPki {
    /// Makes a root `CN=<name> Root CA` and an intermediate
    /// `CN=<name> Intermediate CA`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let ca = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} Root CA")),
            KeyPair::generate()?,
        )?;
        let inter = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} Intermediate CA")),
            KeyPair::generate()?,
            &ca,
        )?;
        Ok(ThrowawayPki {
            ca,
            inter,
            next_serial: AtomicU64::new(0x1000),
        })
    }

    /// The root certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The root certificate, DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// The root's key, PKCS#8 PEM.
    pub fn ca_key_pem(&self) -> String {
        self.ca.key().serialize_pem()
    }

    /// The intermediate certificate, PEM.
    pub fn inter_pem(&self) -> String {
        self.inter.pem()
    }

    /// The intermediate certificate, DER.
    pub fn inter_der(&self) -> Vec<u8> {
        self.inter.der().to_vec()
    }

    /// The intermediate's key, PKCS#8 PEM.
    pub fn inter_key_pem(&self) -> String {
        self.inter.key().serialize_pem()
    }

    /// A server certificate for `localhost`, `testserver.example.com`,
    /// `127.0.0.1` and `::1`.
    pub fn server(&self) -> Result<IssuedCert, rcgen::Error> {
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "testserver.example.com".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "testserver.example.com");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// A client certificate of `profile`.
    pub fn client(&self, profile: ClientProfile) -> Result<IssuedCert, rcgen::Error> {
        self.issue(profile.params()?)
    }

    /// A certificate from arbitrary parameters, issued by the intermediate.
    /// Without a serial in `params`, the next of this PKI's counter is used,
    /// so tests know it (see [`IssuedCert::serial`]).
    pub fn issue(&self, mut params: CertificateParams) -> Result<IssuedCert, rcgen::Error> {
        let serial = params
            .serial_number
            .get_or_insert_with(|| {
                SerialNumber::from(self.next_serial.fetch_add(1, Ordering::Relaxed))
            })
            .to_bytes();
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.inter)?;
        Ok(IssuedCert {
            chain_pem: format!("{}{}", cert.pem(), self.inter.pem()),
            cert_pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }

    /// A CRL from the intermediate (the issuer of every leaf) revoking
    /// `revoked`, PEM. `expired` puts its `nextUpdate` in 2001.
    pub fn inter_crl(
        &self,
        revoked: &[&IssuedCert],
        expired: bool,
    ) -> Result<String, rcgen::Error> {
        crl(&self.inter, revoked, expired)
    }

    /// A CRL from the root (the issuer of the intermediate), PEM.
    pub fn ca_crl(&self, revoked: &[&IssuedCert]) -> Result<String, rcgen::Error> {
        crl(&self.ca, revoked, false)
    }
}

fn crl(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    revoked: &[&IssuedCert],
    expired: bool,
) -> Result<String, rcgen::Error> {
    let (this_update, next_update) = if expired {
        (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1))
    } else {
        (date_time_ymd(2020, 1, 1), date_time_ymd(4000, 1, 1))
    };
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|cert| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&cert.serial),
                revocation_time: date_time_ymd(2020, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer)?.pem()
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Portcullis Test");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}
