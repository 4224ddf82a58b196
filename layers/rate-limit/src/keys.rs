//! Which bucket a request falls in.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use portcullis_identity::{BearerDigest, ClientIdentity, PeerAddr, Tenant, TrustedProxies};
use sha2::{Digest, Sha256};

use crate::BucketKey;

/// A closure naming a bucket from the request head.
pub type CustomKey = Arc<dyn Fn(&Parts) -> Option<Vec<u8>> + Send + Sync>;

/// One way to name a request's bucket.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// The client certificate's common name (`ClientIdentity`, from either
    /// the TLS or the forwarded-certificate layer).
    CommonName,
    /// The client certificate's SPIFFE ID.
    SpiffeId,
    /// The client certificate's SHA-256 fingerprint.
    Fingerprint,
    /// The bearer token, by its SHA-256 (never the token), and only once a
    /// layer authenticated it: the `BearerDigest` extension `TenantLayer`
    /// leaves after resolving the key. A bearer no layer vouched for names
    /// no bucket (the chain moves on, to `ip` say): otherwise every made-up
    /// token would get a fresh bucket of its own.
    Bearer,
    /// The resolved tenant's id (the `Tenant` extension).
    Tenant,
    /// The client address through these proxies (never a raw
    /// `X-Forwarded-For`).
    ClientIp(TrustedProxies),
    /// A header's value (one line; several lines name no key).
    Header(HeaderName),
    /// Anything else: the bytes that name the bucket (hashed here).
    Custom(CustomKey),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl KeySource {
    /// The name in `RATE_LIMIT_KEY` and in decisions: `cn`, `spiffe`,
    /// `fingerprint`, `bearer`, `tenant`, `ip`, `header`, `custom`.
    pub fn name(&self) -> &'static str {
        match self {
            KeySource::CommonName => "cn",
            KeySource::SpiffeId => "spiffe",
            KeySource::Fingerprint => "fingerprint",
            KeySource::Bearer => "bearer",
            KeySource::Tenant => "tenant",
            KeySource::ClientIp(_) => "ip",
            KeySource::Header(_) => "header",
            KeySource::Custom(_) => "custom",
        }
    }

    /// Whether this source reads a client certificate.
    pub fn needs_certificate(&self) -> bool {
        matches!(
            self,
            KeySource::CommonName | KeySource::SpiffeId | KeySource::Fingerprint
        )
    }

    /// The bucket this source names for the request, if any.
    pub fn key(&self, parts: &Parts) -> Option<BucketKey> {
        let identity = || parts.extensions.get::<ClientIdentity>();
        // Sources that are SHA-256 digests already are not hashed again;
        // a tag byte keeps them apart from each other.
        match self {
            KeySource::Bearer => {
                let digest = parts.extensions.get::<BearerDigest>()?;
                return Some(from_digest(digest.as_bytes(), 0xB0));
            }
            KeySource::Fingerprint => {
                // Only a known SHA-256: a forwarded SHA-1 is not one.
                return Some(from_digest(&identity()?.known_fingerprint_sha256()?, 0xF0));
            }
            // Hashed once per certificate, not per request.
            KeySource::CommonName => {
                return Some(from_digest(&identity()?.common_name_sha256()?, 0xC0));
            }
            KeySource::SpiffeId => {
                return Some(from_digest(&identity()?.spiffe_id_sha256()?, 0x5F));
            }
            _ => {}
        }
        // Borrowed where the request holds the bytes (no copy per request).
        let name = self.name();
        match self {
            KeySource::Fingerprint
            | KeySource::Bearer
            | KeySource::CommonName
            | KeySource::SpiffeId => None,
            KeySource::Tenant => Some(bucket_key(
                name,
                parts.extensions.get::<Tenant>()?.id().as_bytes(),
            )),
            KeySource::ClientIp(proxies) => {
                let peer = PeerAddr::from_extensions(&parts.extensions)?.0.ip();
                Some(
                    match proxies.client_ip(&parts.headers, peer).to_canonical() {
                        IpAddr::V4(ip) => bucket_key(name, &ip.octets()),
                        IpAddr::V6(ip) => bucket_key(name, &ip.octets()),
                    },
                )
            }
            KeySource::Header(header) => {
                let mut lines = parts.headers.get_all(header).iter();
                let value = lines.next()?;
                if lines.next().is_some() {
                    return None;
                }
                Some(bucket_key(name, value.as_bytes()))
            }
            KeySource::Custom(f) => Some(bucket_key(name, &f(parts)?)),
        }
    }
}

/// The first 16 bytes of a SHA-256 digest, the last byte mixed with a tag
/// (a collision with another source's key would need a SHA-256 preimage).
fn from_digest(digest: &[u8; 32], tag: u8) -> BucketKey {
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key[15] ^= tag;
    BucketKey(key)
}

/// SHA-256 of the source's name and the material, truncated to 16 bytes:
/// fixed size, the same on every instance (Redis), and `cn` "x" never
/// meets `header` "x".
pub(crate) fn bucket_key(source: &str, material: &[u8]) -> BucketKey {
    let mut hasher = Sha256::new();
    hasher.update((source.len() as u64).to_be_bytes());
    hasher.update(source.as_bytes());
    hasher.update(material);
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    BucketKey(key)
}

/// Sources tried in order; the first that names a bucket wins.
#[derive(Debug, Clone)]
pub struct KeyChain(Vec<KeySource>);

impl KeyChain {
    /// Tries `sources` in order.
    pub fn new(sources: impl IntoIterator<Item = KeySource>) -> Self {
        KeyChain(sources.into_iter().collect())
    }

    /// Parses a comma-separated chain: `cn`, `spiffe`, `fingerprint`,
    /// `bearer`, `tenant`, `ip` (any case); `ip` resolves through
    /// `proxies`.
    pub fn parse(text: &str, proxies: &TrustedProxies) -> Result<Self, KeyChainError> {
        let mut sources = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            sources.push(match name.to_ascii_lowercase().as_str() {
                "cn" => KeySource::CommonName,
                "spiffe" => KeySource::SpiffeId,
                "fingerprint" => KeySource::Fingerprint,
                "bearer" => KeySource::Bearer,
                "tenant" => KeySource::Tenant,
                "ip" => KeySource::ClientIp(proxies.clone()),
                _ => return Err(KeyChainError::UnknownKey(name.to_owned())),
            });
        }
        if sources.is_empty() {
            return Err(KeyChainError::Empty);
        }
        Ok(KeyChain(sources))
    }

    /// Whether every source needs a client certificate (`cn`, `spiffe`,
    /// `fingerprint`): with no certificate, no request would have a key.
    pub fn needs_certificate(&self) -> bool {
        self.0.iter().all(KeySource::needs_certificate)
    }

    /// Whether a source is the resolved tenant.
    pub fn uses_tenant(&self) -> bool {
        self.0
            .iter()
            .any(|source| matches!(source, KeySource::Tenant))
    }

    /// The sources, in the order they are tried.
    pub fn sources(&self) -> impl Iterator<Item = &KeySource> {
        self.0.iter()
    }

    /// The first source that names a bucket, and the bucket.
    pub fn key(&self, parts: &Parts) -> Option<(&'static str, BucketKey)> {
        self.0
            .iter()
            .find_map(|source| source.key(parts).map(|key| (source.name(), key)))
    }
}

/// A key chain that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChainError {
    /// A name that is not a key source.
    UnknownKey(String),
    /// No key at all.
    Empty,
}

impl fmt::Display for KeyChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyChainError::UnknownKey(name) => write!(f, "{name:?} is not a key"),
            KeyChainError::Empty => f.write_str("names no key"),
        }
    }
}

impl std::error::Error for KeyChainError {}
