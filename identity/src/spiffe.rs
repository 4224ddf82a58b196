//! SPIFFE IDs, parsed strictly.
//!
//! The rules are those of the SPIFFE ID specification: the scheme is exactly
//! `spiffe`, the trust domain is non-empty and made of lower-case letters,
//! digits, `.`, `-` and `_` (so no port, user info or upper case), the path
//! is zero or more `/segment`s of `[A-Za-z0-9._-]` where no segment is empty,
//! `.` or `..`, there is no query or fragment, and the whole ID is at most
//! 2048 bytes.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";
/// The longest SPIFFE ID the specification requires implementations to accept.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The longest trust domain name the specification allows.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A validated SPIFFE ID such as `spiffe://example.org/ns/prod/sa/api`.
///
/// # Example
///
/// ```
/// use portcullis_identity::SpiffeId;
///
/// let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/api")?;
/// assert_eq!(id.trust_domain(), "example.org");
/// assert_eq!(id.path(), "/ns/prod/sa/api");
/// assert!(SpiffeId::parse("spiffe://Example.org/x").is_err());
/// assert!(SpiffeId::parse("spiffe://example.org/a/../b").is_err());
/// # Ok::<(), portcullis_identity::SpiffeIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: Box<str>,
    /// Byte offset where the path starts (the end of the trust domain).
    path_start: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: input.len() });
        }
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or(SpiffeIdError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let trust_domain = &rest[..td_len];
        if trust_domain.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(SpiffeIdError::TrustDomainTooLong {
                len: trust_domain.len(),
            });
        }
        if let Some(offset) = trust_domain.bytes().position(|b| !is_trust_domain_byte(b)) {
            return Err(SpiffeIdError::InvalidTrustDomainChar {
                offset: SCHEME.len() + offset,
            });
        }
        let path_start = SCHEME.len() + td_len;
        validate_path(&input[path_start..], path_start)?;
        Ok(SpiffeId {
            id: input.into(),
            path_start,
        })
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain, for example `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// The path, empty or starting with `/`, for example `/ns/prod/sa/api`.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// Whether this ID belongs to `trust_domain` (compared exactly; trust
    /// domains are lower case by definition).
    pub fn is_member_of(&self, trust_domain: &str) -> bool {
        self.trust_domain() == trust_domain
    }
}

fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// `path` is everything after the trust domain; `base` its offset in the ID.
fn validate_path(path: &str, base: usize) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // The path starts with '/' because the trust domain ended at one.
    let mut offset = base;
    for segment in path[1..].split('/') {
        offset += 1;
        match segment {
            "" => return Err(SpiffeIdError::EmptySegment { offset }),
            "." | ".." => return Err(SpiffeIdError::DotSegment { offset }),
            _ => {
                if let Some(bad) = segment.bytes().position(|b| !is_path_byte(b)) {
                    return Err(SpiffeIdError::InvalidPathChar {
                        offset: offset + bad,
                    });
                }
            }
        }
        offset += segment.len();
    }
    Ok(())
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpiffeId").field(&self.as_str()).finish()
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input was empty.
    Empty,
    /// Longer than [`MAX_SPIFFE_ID_LEN`] bytes.
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// It does not start with `spiffe://` (lower case).
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    EmptyTrustDomain,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`] bytes.
    TrustDomainTooLong {
        /// The trust domain's length in bytes.
        len: usize,
    },
    /// A byte the trust domain may not hold (upper case, `:`, `@`, `?`, ...).
    InvalidTrustDomainChar {
        /// Byte offset in the input.
        offset: usize,
    },
    /// `//` or a trailing `/`.
    EmptySegment {
        /// Byte offset of the segment in the input.
        offset: usize,
    },
    /// A `.` or `..` segment.
    DotSegment {
        /// Byte offset of the segment in the input.
        offset: usize,
    },
    /// A byte a path segment may not hold (`?`, `#`, `%`, space, ...).
    InvalidPathChar {
        /// Byte offset in the input.
        offset: usize,
    },
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty SPIFFE ID"),
            Self::TooLong { len } => write!(
                f,
                "SPIFFE ID is {len} bytes, longer than the {MAX_SPIFFE_ID_LEN} allowed"
            ),
            Self::WrongScheme => f.write_str("SPIFFE ID must start with \"spiffe://\""),
            Self::EmptyTrustDomain => f.write_str("SPIFFE ID has an empty trust domain"),
            Self::TrustDomainTooLong { len } => write!(
                f,
                "SPIFFE trust domain is {len} bytes, longer than the {MAX_TRUST_DOMAIN_LEN} allowed"
            ),
            Self::InvalidTrustDomainChar { offset } => write!(
                f,
                "invalid character at byte {offset} of the SPIFFE trust domain \
                 (allowed: a-z, 0-9, '.', '-', '_')"
            ),
            Self::EmptySegment { offset } => {
                write!(f, "empty SPIFFE path segment at byte {offset}")
            }
            Self::DotSegment { offset } => {
                write!(f, "'.' or '..' SPIFFE path segment at byte {offset}")
            }
            Self::InvalidPathChar { offset } => write!(
                f,
                "invalid character at byte {offset} of the SPIFFE path \
                 (allowed: A-Z, a-z, 0-9, '.', '-', '_')"
            ),
        }
    }
}

impl std::error::Error for SpiffeIdError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        for input in [
            "spiffe://example.org",
            "spiffe://td-1.example_2.org/ns/prod/sa/api",
            // Dots are fine inside a segment; only "." and ".." alone are not.
            "spiffe://a/B.c-d_e/..x/.y",
        ] {
            let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.as_str(), input);
        }
    }

    #[test]
    fn splits_trust_domain_and_path() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/prod");
        assert!(id.is_member_of("example.org"));
        assert!(!id.is_member_of("example.com"));
        let bare = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(bare.path(), "");
    }

    #[test]
    fn rejects_with_the_right_reason() {
        use SpiffeIdError::*;
        let cases: &[(&str, SpiffeIdError)] = &[
            ("", Empty),
            ("SPIFFE://example.org/a", WrongScheme),
            ("spiffe:/example.org/a", WrongScheme),
            ("https://example.org/a", WrongScheme),
            ("spiffe:///a", EmptyTrustDomain),
            ("spiffe://", EmptyTrustDomain),
            (
                "spiffe://Example.org/a",
                InvalidTrustDomainChar { offset: 9 },
            ),
            (
                "spiffe://example.org:8443/a",
                InvalidTrustDomainChar { offset: 20 },
            ),
            (
                "spiffe://user@example.org/a",
                InvalidTrustDomainChar { offset: 13 },
            ),
            (
                "spiffe://example.org?x=1",
                InvalidTrustDomainChar { offset: 20 },
            ),
            ("spiffe://example.org/", EmptySegment { offset: 21 }),
            ("spiffe://example.org/a//b", EmptySegment { offset: 23 }),
            ("spiffe://example.org/a/", EmptySegment { offset: 23 }),
            ("spiffe://example.org/./a", DotSegment { offset: 21 }),
            ("spiffe://example.org/a/..", DotSegment { offset: 23 }),
            ("spiffe://example.org/a?b", InvalidPathChar { offset: 22 }),
            ("spiffe://example.org/a#b", InvalidPathChar { offset: 22 }),
            ("spiffe://example.org/a%20b", InvalidPathChar { offset: 22 }),
            ("spiffe://example.org/é", InvalidPathChar { offset: 21 }),
        ];
        for (input, expected) in cases {
            assert_eq!(SpiffeId::parse(input).as_ref(), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn enforces_length_limits() {
        let td = "a".repeat(MAX_TRUST_DOMAIN_LEN);
        assert!(SpiffeId::parse(&format!("spiffe://{td}")).is_ok());
        assert_eq!(
            SpiffeId::parse(&format!("spiffe://{td}a")),
            Err(SpiffeIdError::TrustDomainTooLong { len: 256 })
        );
        let path = "/x".repeat((MAX_SPIFFE_ID_LEN - "spiffe://a".len()) / 2);
        let max = format!("spiffe://a{path}");
        assert_eq!(max.len(), MAX_SPIFFE_ID_LEN);
        assert!(SpiffeId::parse(&max).is_ok());
        let over = format!("{max}y");
        assert_eq!(
            SpiffeId::parse(&over),
            Err(SpiffeIdError::TooLong { len: 2049 })
        );
    }

    #[test]
    fn errors_read_well() {
        let err = SpiffeId::parse("spiffe://Example.org").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid character at byte 9 of the SPIFFE trust domain (allowed: a-z, 0-9, '.', '-', '_')"
        );
    }
}
