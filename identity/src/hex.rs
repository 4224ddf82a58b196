//! Lower-case hex for digests and fingerprints.

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A SHA-256 digest from exactly 64 hex digits (either case).
///
/// ```
/// use portcullis_identity::hex;
///
/// let digest = hex::decode_sha256(&"ab".repeat(32)).unwrap();
/// assert_eq!(hex::encode(&digest), "ab".repeat(32));
/// assert_eq!(hex::decode_sha256("abc"), None);
/// ```
pub fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    decode_array(text)
}

/// `2 × N` hex digits (either case) as `N` bytes, e.g. a SHA-1 fingerprint
/// (`N` = 20); `None` for any other length or a non-hex digit.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut digest = [0u8; N];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(digest)
}

/// The value of one hex digit.
pub fn digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
