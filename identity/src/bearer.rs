//! Bearer tokens, held only as SHA-256 digests.

use std::fmt;
use std::hash::{Hash, Hasher};

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a bearer token: what portcullis keys, logs and
/// compares instead of the token.
///
/// Equality is constant-time. `Debug` shows a digest prefix and `Display`
/// the full hex digest; neither can show the token, which is never kept.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, header::AUTHORIZATION};
/// use portcullis_identity::BearerDigest;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, "Bearer sk-live-123".parse()?);
/// let digest = BearerDigest::from_headers(&headers)?.expect("a bearer token");
/// assert_eq!(digest, BearerDigest::of_token("sk-live-123"));
/// assert!(!format!("{digest:?} {digest}").contains("sk-live"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct BearerDigest([u8; 32]);

impl BearerDigest {
    /// The digest of `token`.
    pub fn of_token(token: impl AsRef<[u8]>) -> Self {
        BearerDigest(Sha256::digest(token.as_ref()).into())
    }

    /// Reads `Authorization: Bearer <token>` from a request's headers.
    ///
    /// `Ok(None)` when there is no `Authorization` header or it uses another
    /// scheme (`Basic`, ...). An error when there are several `Authorization`
    /// lines (which one would win differs between servers) or the bearer
    /// value is empty or not an RFC 6750 token.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, BearerError> {
        let mut lines = headers.get_all(AUTHORIZATION).into_iter();
        let Some(value) = lines.next() else {
            return Ok(None);
        };
        if lines.next().is_some() {
            return Err(BearerError(BearerErrorKind::MultipleHeaders));
        }
        Self::from_authorization(value)
    }

    /// Reads one `Authorization` value; see [`from_headers`](Self::from_headers).
    pub fn from_authorization(value: &HeaderValue) -> Result<Option<Self>, BearerError> {
        let bytes = value.as_bytes();
        let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
            Some(space) => (&bytes[..space], &bytes[space..]),
            None => (bytes, &[][..]),
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Ok(None);
        }
        let token = rest.trim_ascii();
        if token.is_empty() {
            return Err(BearerError(BearerErrorKind::Empty));
        }
        if !is_b64token(token) {
            return Err(BearerError(BearerErrorKind::InvalidToken));
        }
        Ok(Some(Self::of_token(token)))
    }

    /// Parses 64 hex digits (either case), as stored in a tenants file.
    pub fn from_hex(hex: &str) -> Result<Self, BearerError> {
        crate::hex::decode_sha256(hex)
            .map(BearerDigest)
            .ok_or(BearerError(BearerErrorKind::InvalidHex))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0 && token[..body_len].iter().all(|&b| B64TOKEN[usize::from(b)])
}

/// The bytes of a `b64token` before its padding, as a table: one load per
/// byte of every bearer key.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

impl ConstantTimeEq for BearerDigest {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        // Word by word, every word whatever the others hold, then one
        // constant-time comparison: `subtle` over the bytes spends an
        // optimisation barrier on each of the 32.
        let (ours, []) = self.0.as_chunks::<8>() else {
            unreachable!("32 bytes are four words")
        };
        let (theirs, []) = other.0.as_chunks::<8>() else {
            unreachable!("32 bytes are four words")
        };
        let difference = ours.iter().zip(theirs).fold(0u64, |acc, (a, b)| {
            acc | (u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b))
        });
        difference.ct_eq(&0)
    }
}

impl PartialEq for BearerDigest {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for BearerDigest {}

impl Hash for BearerDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for BearerDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BearerDigest(sha256:{}…)",
            crate::hex::encode(&self.0[..6])
        )
    }
}

impl fmt::Display for BearerDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why an `Authorization` header or digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerError(BearerErrorKind);

/// The kind of a [`BearerError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerErrorKind {
    /// More than one `Authorization` line.
    MultipleHeaders,
    /// `Bearer` with no token.
    Empty,
    /// The token holds characters RFC 6750 does not allow (spaces, quotes,
    /// non-ASCII, ...).
    InvalidToken,
    /// A digest string that is not 64 hex digits.
    InvalidHex,
}

impl BearerError {
    /// What went wrong.
    pub fn kind(&self) -> BearerErrorKind {
        self.0
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            BearerErrorKind::MultipleHeaders => "more than one Authorization header",
            BearerErrorKind::Empty => "empty bearer token",
            BearerErrorKind::InvalidToken => "bearer token has characters RFC 6750 does not allow",
            BearerErrorKind::InvalidHex => "a SHA-256 digest must be 64 hex digits",
        })
    }
}

impl std::error::Error for BearerError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> Result<Option<BearerDigest>, BearerErrorKind> {
        BearerDigest::from_authorization(&HeaderValue::from_str(value).unwrap())
            .map_err(|e| e.kind())
    }

    #[test]
    fn digest_is_sha256_of_the_token() {
        // printf 'abc' | sha256sum
        assert_eq!(
            BearerDigest::of_token("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reads_bearer_values() {
        let token = Some(BearerDigest::of_token("abc.DEF-_~+/=="));
        assert_eq!(auth("Bearer abc.DEF-_~+/=="), Ok(token));
        assert_eq!(auth("bearer   abc.DEF-_~+/==  "), Ok(token));
        assert_eq!(auth("Basic dXNlcjpwYXNz"), Ok(None));
        assert_eq!(auth("Bearerabc"), Ok(None));
        assert_eq!(auth("Bearer"), Err(BearerErrorKind::Empty));
        assert_eq!(auth("Bearer   "), Err(BearerErrorKind::Empty));
        assert_eq!(auth("Bearer a b"), Err(BearerErrorKind::InvalidToken));
        assert_eq!(auth("Bearer \"a\""), Err(BearerErrorKind::InvalidToken));
        assert_eq!(auth("Bearer =="), Err(BearerErrorKind::InvalidToken));
        assert_eq!(auth("Bearer a=b"), Err(BearerErrorKind::InvalidToken));
    }

    #[test]
    fn two_authorization_lines_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(
            BearerDigest::from_headers(&headers).unwrap_err().kind(),
            BearerErrorKind::MultipleHeaders
        );
        assert_eq!(BearerDigest::from_headers(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let digest = BearerDigest::of_token("t");
        assert_eq!(BearerDigest::from_hex(&digest.to_hex()), Ok(digest));
        assert_eq!(
            BearerDigest::from_hex(&digest.to_hex().to_uppercase()),
            Ok(digest)
        );
        assert!(BearerDigest::from_hex("ab").is_err());
        assert!(BearerDigest::from_hex(&"g".repeat(64)).is_err());
        assert!(BearerDigest::from_hex(&"é".repeat(32)).is_err());
    }

    proptest::proptest! {
        /// The word-wise comparison agrees with the bytes' own equality,
        /// whichever byte differs.
        #[test]
        fn equality_is_byte_equality(a: [u8; 32], flip in 0usize..33, bit in 0u8..8) {
            let mut b = a;
            if let Some(byte) = b.get_mut(flip) {
                *byte ^= 1 << bit;
            }
            proptest::prop_assert_eq!(BearerDigest(a) == BearerDigest(b), a == b);
            proptest::prop_assert_eq!(BearerDigest(a) == BearerDigest(a), true);
        }
    }

    #[test]
    fn formatting_never_shows_the_token() {
        let digest = BearerDigest::of_token("super-secret-token");
        let shown = format!(
            "{digest:?} {digest} {:?}",
            BearerDigest::from_hex(&digest.to_hex())
        );
        assert!(!shown.contains("super-secret"));
        assert!(format!("{digest:?}").starts_with("BearerDigest(sha256:"));
    }
}
