//! The other ways proxies forward a client certificate: one header, one
//! encoding each. No tower or http types here, so each decoder can be
//! fuzzed alone.
//!
//! | format | who writes it | value |
//! |---|---|---|
//! | [`Envoy`](CertFormat::Envoy) | Envoy, Istio | XFCC elements (see [`parse`](crate::parse)) |
//! | [`Nginx`](CertFormat::Nginx) | nginx `$ssl_client_escaped_cert` | URL-encoded PEM |
//! | [`AwsAlb`](CertFormat::AwsAlb) | AWS ALB `X-Amzn-Mtls-Clientcert` | URL-encoded PEM, `+` `=` `/` left as they are |
//! | [`Base64Der`](CertFormat::Base64Der) | HAProxy `%[ssl_c_der,base64]`, Caddy `{http.request.tls.client.certificate_der_base64}`, Cloud Foundry's gorouter | base64 of the DER |
//! | [`Traefik`](CertFormat::Traefik) | Traefik `passTLSClientCert` `pem: true` | base64 DER per certificate, comma-separated, leaf first |
//! | [`Rfc9440`](CertFormat::Rfc9440) | RFC 9440 `Client-Cert` | a structured-field byte sequence, `:base64:` |
//!
//! The format is declared for each trusted proxy, never guessed from the
//! value: `X-Forwarded-Client-Cert` is Envoy's grammar behind Envoy and bare
//! base64 behind Cloud Foundry.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use portcullis_identity::hex;
use portcullis_identity::pem::{PemError, parse_bundle};
pub(crate) use portcullis_identity::percent::encode_component as url_encode;

/// How a trusted proxy writes the client certificate into its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertFormat {
    /// Envoy's `x-forwarded-client-cert` grammar.
    Envoy,
    /// nginx's `$ssl_client_escaped_cert`: URL-encoded PEM.
    Nginx,
    /// AWS ALB's `X-Amzn-Mtls-Clientcert`: URL-encoded PEM that leaves `+`,
    /// `=` and `/` as they are.
    AwsAlb,
    /// The certificate's DER in standard, padded base64 (HAProxy, Caddy,
    /// Cloud Foundry). HAProxy, as `docs/proxies/haproxy.cfg` (which the
    /// tests run) has it: remove what the client sent first, since
    /// `set-header` runs only under its condition, and whenever that is
    /// false the client's own header would pass:
    ///
    /// ```text
    /// http-request del-header X-Client-Cert
    /// http-request set-header X-Client-Cert %[ssl_c_der,base64] if { ssl_c_used }
    /// ```
    Base64Der,
    /// Traefik's `X-Forwarded-Tls-Client-Cert`: base64 DER per certificate,
    /// comma-separated, leaf first (older Traefik URL-encoded the whole).
    Traefik,
    /// RFC 9440 `Client-Cert`: a structured-field byte sequence.
    Rfc9440,
}

impl CertFormat {
    /// Every format, in the order of [`name`](Self::name)s listed in errors.
    pub const ALL: [CertFormat; 6] = [
        CertFormat::Envoy,
        CertFormat::Nginx,
        CertFormat::Base64Der,
        CertFormat::Rfc9440,
        CertFormat::Traefik,
        CertFormat::AwsAlb,
    ];

    /// The name `FORWARDED_CERT_FORMAT` takes: `envoy`, `nginx`,
    /// `base64-der`, `rfc9440`, `traefik` or `aws-alb`.
    pub fn name(self) -> &'static str {
        match self {
            CertFormat::Envoy => "envoy",
            CertFormat::Nginx => "nginx",
            CertFormat::AwsAlb => "aws-alb",
            CertFormat::Base64Der => "base64-der",
            CertFormat::Traefik => "traefik",
            CertFormat::Rfc9440 => "rfc9440",
        }
    }

    /// The header the format usually travels in. nginx, HAProxy and Caddy
    /// use whatever header their configuration names; the default for them
    /// is `x-forwarded-client-cert`, so the protected name stays one.
    pub fn default_header(self) -> &'static str {
        match self {
            CertFormat::Envoy | CertFormat::Nginx | CertFormat::Base64Der => {
                "x-forwarded-client-cert"
            }
            CertFormat::AwsAlb => "x-amzn-mtls-clientcert",
            CertFormat::Traefik => "x-forwarded-tls-client-cert",
            CertFormat::Rfc9440 => "client-cert",
        }
    }

    /// Headers that belong with the format's own and are protected with it.
    pub fn companion_headers(self) -> &'static [&'static str] {
        match self {
            CertFormat::Envoy => &[],
            CertFormat::Nginx | CertFormat::Base64Der => &[],
            CertFormat::AwsAlb => &[
                "x-amzn-mtls-clientcert-serial-number",
                "x-amzn-mtls-clientcert-issuer",
                "x-amzn-mtls-clientcert-subject",
                "x-amzn-mtls-clientcert-validity",
                "x-amzn-mtls-clientcert-leaf",
            ],
            CertFormat::Traefik => &["x-forwarded-tls-client-cert-info"],
            CertFormat::Rfc9440 => &["client-cert-chain"],
        }
    }

    /// Whether several header lines form one list (Envoy's elements, each
    /// proxy appending its own). For the other formats a second line is
    /// refused: Traefik writes its whole chain in one line, and a second
    /// one can only be a client's, which some readers would take first.
    pub fn is_list(self) -> bool {
        matches!(self, CertFormat::Envoy)
    }

    /// Decodes a header value of this format to the DER certificates it
    /// carries, leaf first. For [`Envoy`](CertFormat::Envoy) these are the
    /// last element's `Chain`, else its `Cert`; an element without either
    /// still names a client by `Hash`, `Subject` and `URI`, which
    /// [`ForwardedCert`](crate::ForwardedCert) reads (and `XfccLayer`
    /// does).
    pub fn decode(self, value: &str) -> Result<Vec<Vec<u8>>, DecodeError> {
        match self {
            CertFormat::Envoy => envoy_certificates(value),
            CertFormat::Nginx | CertFormat::AwsAlb => {
                url_encoded_pem(value).map_err(|error| error.into_decode_error(self))
            }
            CertFormat::Base64Der => Ok(vec![base64_der(self, value, 0, &STANDARD)?]),
            CertFormat::Traefik => traefik(value),
            CertFormat::Rfc9440 => Ok(vec![rfc9440(value)?]),
        }
    }

    /// Encodes `chain` (leaf first) as this format writes it. `Envoy` is
    /// written by [`to_header_value`](crate::to_header_value); here it is
    /// the leaf as a bare `Cert=` element.
    pub fn encode(self, chain: &[&[u8]]) -> String {
        match self {
            CertFormat::Envoy => chain.first().map_or_else(String::new, |leaf| {
                crate::to_header_value(&[crate::XfccElement::new([(
                    "Cert",
                    url_encode(&pem(leaf)),
                )])])
            }),
            CertFormat::Nginx | CertFormat::AwsAlb => {
                url_encode(&chain.iter().map(|der| pem(der)).collect::<String>())
            }
            CertFormat::Base64Der => chain
                .first()
                .map_or_else(String::new, |d| STANDARD.encode(d)),
            CertFormat::Traefik => chain
                .iter()
                .map(|der| STANDARD.encode(der))
                .collect::<Vec<_>>()
                .join(","),
            CertFormat::Rfc9440 => chain
                .first()
                .map_or_else(String::new, |d| format!(":{}:", STANDARD.encode(d))),
        }
    }
}

impl fmt::Display for CertFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CertFormat {
    type Err = UnknownFormat;

    /// Reads a [`name`](Self::name), ignoring ASCII case.
    fn from_str(text: &str) -> Result<Self, UnknownFormat> {
        CertFormat::ALL
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownFormat(text.to_owned()))
    }
}

/// A format name that is not one of [`CertFormat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown forwarded-certificate format {:?}; expected one of ",
            self.0
        )?;
        for (i, format) in CertFormat::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownFormat {}

/// Why a forwarded certificate header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    format: CertFormat,
    kind: DecodeErrorKind,
    offset: usize,
}

/// The kind of a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// An XFCC header (Envoy's format) that does not parse, or whose last
    /// element's fields are malformed; the reason.
    Element(String),
    /// A `%` not followed by two hex digits, or a NUL.
    PercentEncoding,
    /// Not base64 (or not padded as the format requires).
    Base64,
    /// An RFC 9440 value that is not `:base64:`.
    ByteSequence,
    /// An empty certificate in a list.
    Empty,
    /// The PEM is malformed.
    Pem(PemError),
    /// No certificate at all.
    NoCertificate,
}

impl DecodeError {
    fn new(format: CertFormat, kind: DecodeErrorKind, offset: usize) -> Self {
        DecodeError {
            format,
            kind,
            offset,
        }
    }

    /// The format that was being decoded.
    pub fn format(&self) -> CertFormat {
        self.format
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The byte offset in the header value where it went wrong.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            DecodeErrorKind::Element(reason) => format!("is not a valid XFCC element: {reason}"),
            DecodeErrorKind::PercentEncoding => "has a bad percent escape or a NUL".to_owned(),
            DecodeErrorKind::Base64 => "is not padded standard base64".to_owned(),
            DecodeErrorKind::ByteSequence => {
                "is not a structured-field byte sequence (:base64:)".to_owned()
            }
            DecodeErrorKind::Empty => "has an empty certificate".to_owned(),
            DecodeErrorKind::Pem(error) => format!("is not PEM: {error}"),
            DecodeErrorKind::NoCertificate => "holds no certificate".to_owned(),
        };
        write!(
            f,
            "{} certificate header {what} (byte {})",
            self.format, self.offset
        )
    }
}

impl std::error::Error for DecodeError {}

/// The certificates the last XFCC element carries: `Chain`, else `Cert`.
fn envoy_certificates(value: &str) -> Result<Vec<Vec<u8>>, DecodeError> {
    let invalid =
        |reason: String| DecodeError::new(CertFormat::Envoy, DecodeErrorKind::Element(reason), 0);
    let elements = crate::parse(value).map_err(|e| invalid(e.to_string()))?;
    let Some(last) = elements.last() else {
        return Err(DecodeError::new(
            CertFormat::Envoy,
            DecodeErrorKind::NoCertificate,
            0,
        ));
    };
    let fields = crate::ForwardedCert::from_element(last).map_err(|e| invalid(e.to_string()))?;
    if !fields.chain_der().is_empty() {
        return Ok(fields.chain_der().to_vec());
    }
    fields
        .cert_der()
        .map(|der| vec![der.to_vec()])
        .ok_or_else(|| DecodeError::new(CertFormat::Envoy, DecodeErrorKind::NoCertificate, 0))
}

/// A URL-encoded PEM problem, before it knows which format or key it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PemValueError {
    PercentEncoding { offset: usize },
    Pem(PemError),
    NoCertificate,
}

impl PemValueError {
    fn into_decode_error(self, format: CertFormat) -> DecodeError {
        match self {
            PemValueError::PercentEncoding { offset } => {
                DecodeError::new(format, DecodeErrorKind::PercentEncoding, offset)
            }
            PemValueError::Pem(error) => DecodeError::new(format, DecodeErrorKind::Pem(error), 0),
            PemValueError::NoCertificate => {
                DecodeError::new(format, DecodeErrorKind::NoCertificate, 0)
            }
        }
    }
}

/// Strict percent-decoding (`%` must start two hex digits, `+` stays `+`,
/// NUL is refused), so values from Envoy, nginx and the AWS ALB all read.
pub(crate) fn percent_decode(value: &str) -> Result<Vec<u8>, usize> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let offset = at;
        let byte = match bytes[at] {
            b'%' => {
                let high = bytes.get(at + 1).copied().and_then(hex::digit);
                let low = bytes.get(at + 2).copied().and_then(hex::digit);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(offset);
                };
                at += 3;
                high << 4 | low
            }
            other => {
                at += 1;
                other
            }
        };
        if byte == 0 {
            return Err(offset);
        }
        decoded.push(byte);
    }
    Ok(decoded)
}

/// URL-encoded PEM: every certificate, in order.
pub(crate) fn url_encoded_pem(value: &str) -> Result<Vec<Vec<u8>>, PemValueError> {
    let decoded =
        percent_decode(value).map_err(|offset| PemValueError::PercentEncoding { offset })?;
    let bundle = parse_bundle(&decoded).map_err(PemValueError::Pem)?;
    if bundle.certificates.is_empty() {
        return Err(PemValueError::NoCertificate);
    }
    Ok(bundle
        .certificates
        .into_iter()
        .map(|c| c.to_vec())
        .collect())
}

fn base64_der(
    format: CertFormat,
    value: &str,
    offset: usize,
    engine: &GeneralPurpose,
) -> Result<Vec<u8>, DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::new(format, DecodeErrorKind::Empty, offset));
    }
    engine
        .decode(value)
        .map_err(|_| DecodeError::new(format, DecodeErrorKind::Base64, offset))
}

fn traefik(value: &str) -> Result<Vec<Vec<u8>>, DecodeError> {
    let format = CertFormat::Traefik;
    // Traefik before v2.4 URL-encoded the whole value; base64 has no `%`.
    let decoded;
    let value = if value.contains('%') {
        decoded = percent_decode(value)
            .map_err(|offset| DecodeError::new(format, DecodeErrorKind::PercentEncoding, offset))
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| DecodeError::new(format, DecodeErrorKind::Base64, 0))
            })?;
        decoded.as_str()
    } else {
        value
    };
    let mut chain = Vec::new();
    let mut offset = 0;
    for part in value.split(',') {
        let trimmed = part.trim_matches([' ', '\t']);
        let start = offset + (part.len() - part.trim_start_matches([' ', '\t']).len());
        chain.push(base64_der(format, trimmed, start, &STANDARD)?);
        offset += part.len() + 1;
    }
    Ok(chain)
}

/// RFC 8941 says parsers should not insist on padding.
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn rfc9440(value: &str) -> Result<Vec<u8>, DecodeError> {
    let format = CertFormat::Rfc9440;
    let invalid = |offset| DecodeError::new(format, DecodeErrorKind::ByteSequence, offset);
    let body = value.strip_prefix(':').ok_or_else(|| invalid(0))?;
    let end = body.find(':').ok_or_else(|| invalid(value.len()))?;
    let params = &body[end + 1..];
    // Parameters (`;key` or `;key=value`) may follow an item; they say
    // nothing about the certificate, but anything else is not the grammar.
    if !params.is_empty() && !valid_parameters(params) {
        return Err(invalid(end + 2));
    }
    base64_der(format, &body[..end], 1, &SF_BASE64)
}

/// RFC 8941 parameters with token, integer or string-free values.
fn valid_parameters(params: &str) -> bool {
    params.split(';').skip(1).all(|param| {
        let (key, value) = param.split_once('=').unwrap_or((param, "?1"));
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        let value_ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"?*:/.-_!#$%&'^`|~+".contains(&b));
        key_ok && value_ok
    }) && params.starts_with(';')
}

/// A DER certificate as PEM.
pub(crate) fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
