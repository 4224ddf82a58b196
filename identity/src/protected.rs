//! Headers only this service may write (a tenant, a forwarded certificate,
//! an internal secret), removed from every inbound request under every
//! spelling of their names.
//!
//! Names are compared by their canonical form: lower-case ASCII letters and
//! digits, everything else dropped. `X-Tenant-Id`, `x_tenant_id` and
//! `x.tenant.id` are one name, because somewhere behind this service a
//! framework (CGI's `HTTP_X_TENANT_ID`, a WSGI server, a proxy that maps
//! `_` to `-`) will treat them as one.

use http::header::CONNECTION;
use http::{HeaderMap, HeaderName};

/// A set of protected header names, matched canonically.
///
/// ```
/// use http::HeaderMap;
/// use portcullis_identity::ProtectedHeaders;
///
/// let protected = ProtectedHeaders::new(["x-llm-router-tenant"]);
/// let mut headers = HeaderMap::new();
/// headers.append("x-llm-router-tenant", "forged".parse()?);
/// headers.append("x-llm-router-tenant", "again".parse()?);
/// headers.insert("x_llm_router_tenant", "forged".parse()?);
/// headers.insert("accept", "*/*".parse()?);
/// assert_eq!(protected.strip(&mut headers, |_| false), 2);
/// assert_eq!(headers.len(), 1);
///
/// headers.insert("connection", "keep-alive, X-LLM-Router-Tenant".parse()?);
/// assert_eq!(protected.nominated_by_connection(&headers).as_deref(), Some("X-LLM-Router-Tenant"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedHeaders {
    canonical: Vec<Box<[u8]>>,
    /// One bit per protected name, chosen by [`filter_bit`]: a name whose
    /// bit is clear is refused without comparing it against each
    /// protected name (most header names, on every request).
    filter: [u64; 4],
}

/// The [`ProtectedHeaders::filter`] word and bit of a name whose canonical
/// form starts with `first` and ends with `last`, mixed by one multiply.
/// Only a filter: a name that passes is still compared whole.
fn filter_bit(first: u8, last: u8) -> (usize, u64) {
    let bit = ((u64::from(first) << 8) | u64::from(last)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
    ((bit >> 6) as usize, 1 << (bit & 63))
}

impl ProtectedHeaders {
    /// Protects `names` (any spelling; duplicates collapse).
    pub fn new<N: AsRef<str>>(names: impl IntoIterator<Item = N>) -> Self {
        let mut protected = ProtectedHeaders::default();
        for name in names {
            protected.add(name.as_ref());
        }
        protected
    }

    /// Protects one more name.
    pub fn add(&mut self, name: &str) {
        let name = canonical(name.as_bytes());
        if let (Some(&first), Some(&last)) = (name.first(), name.last())
            && !self.canonical.contains(&name)
        {
            let (word, bit) = filter_bit(first, last);
            self.filter[word] |= bit;
            self.canonical.push(name);
        }
    }

    /// Whether no name is protected.
    pub fn is_empty(&self) -> bool {
        self.canonical.is_empty()
    }

    /// Whether `name` is a spelling of a protected name.
    pub fn matches(&self, name: &[u8]) -> bool {
        // Most names are refused by their first and last letters or
        // digits alone, found from each end without reading the rest.
        let canonical_byte = |b: &&u8| b.is_ascii_alphanumeric();
        let (Some(first), Some(last)) = (
            name.iter().find(canonical_byte),
            name.iter().rev().find(canonical_byte),
        ) else {
            return false;
        };
        let (word, bit) = filter_bit(first.to_ascii_lowercase(), last.to_ascii_lowercase());
        if self.filter[word] & bit == 0 {
            return false;
        }
        // Canonicalised once into a buffer on the stack, then compared
        // whole; names too long for it take the slow path.
        let mut buffer = [0u8; 64];
        let mut len = 0;
        for &byte in name.iter().filter(|b| b.is_ascii_alphanumeric()) {
            let Some(slot) = buffer.get_mut(len) else {
                return self.canonical.iter().any(|c| canonical_eq(name, c));
            };
            *slot = byte.to_ascii_lowercase();
            len += 1;
        }
        let canonical = &buffer[..len];
        self.canonical.iter().any(|c| **c == *canonical)
    }

    /// Removes every line of every header that is a spelling of a protected
    /// name, except those `keep` answers `true` for. Returns how many
    /// distinct names were removed.
    pub fn strip(&self, headers: &mut HeaderMap, keep: impl Fn(&HeaderName) -> bool) -> usize {
        if self.canonical.is_empty() {
            return 0;
        }
        let mut doomed: Vec<HeaderName> = Vec::new();
        for name in headers.keys() {
            if !doomed.contains(name) && self.matches(name.as_str().as_bytes()) && !keep(name) {
                doomed.push(name.clone());
            }
        }
        for name in &doomed {
            headers.remove(name);
        }
        doomed.len()
    }

    /// The first `Connection` token that names a protected header, as
    /// written: such a request asks this hop to drop a header it is about to
    /// rely on, and is refused.
    pub fn nominated_by_connection(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .find(|token| self.matches(token))
            .map(|token| String::from_utf8_lossy(token).trim().to_owned())
    }
}

/// A header name reduced to its lower-case ASCII letters and digits.
fn canonical(name: &[u8]) -> Box<[u8]> {
    name.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect()
}

/// Whether `name` canonicalises to `canonical`, without allocating.
fn canonical_eq(name: &[u8], canonical: &[u8]) -> bool {
    let mut wanted = canonical.iter();
    for byte in name.iter().filter(|b| b.is_ascii_alphanumeric()) {
        if wanted.next() != Some(&byte.to_ascii_lowercase()) {
            return false;
        }
    }
    wanted.next().is_none()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn spellings_match_and_neighbours_do_not() {
        let p = ProtectedHeaders::new(["X-Tenant-Id", "x_tenant_id"]);
        for name in [
            "x-tenant-id",
            "x_tenant_id",
            "X.Tenant.Id",
            "xtenantid",
            "-x-tenant-id-",
        ] {
            assert!(p.matches(name.as_bytes()), "{name}");
        }
        for name in ["x-tenant-ids", "x-tenant", "tenant-id-x", ""] {
            assert!(!p.matches(name.as_bytes()), "{name}");
        }
        assert_eq!(p, ProtectedHeaders::new(["xtenantid"]));
    }

    proptest! {
        #[test]
        fn separators_and_case_never_matter(
            parts in prop::collection::vec("[a-z0-9]{1,6}", 1..5),
            seps in prop::collection::vec("[-_.]{0,2}", 5),
            upper in any::<bool>(),
        ) {
            let protected = ProtectedHeaders::new([parts.join("-")]);
            let mut spelled = String::new();
            for (i, part) in parts.iter().enumerate() {
                spelled.push_str(&seps[i]);
                spelled.push_str(&if upper { part.to_uppercase() } else { part.clone() });
            }
            prop_assert!(protected.matches(spelled.as_bytes()));
        }

        #[test]
        fn matching_is_equality_of_canonical_forms(
            a in "[A-Za-z0-9_.-]{0,90}",
            b in "[A-Za-z0-9_.-]{0,90}",
        ) {
            // Up to 90 bytes: past the 64-byte buffer too.
            let protected = ProtectedHeaders::new([a.as_str()]);
            let (ca, cb) = (canonical(a.as_bytes()), canonical(b.as_bytes()));
            prop_assert_eq!(protected.matches(b.as_bytes()), !ca.is_empty() && ca == cb);
            prop_assert_eq!(protected.matches(a.as_bytes()), !ca.is_empty());
            let upper = a.to_uppercase().replace('-', "_");
            prop_assert_eq!(protected.matches(upper.as_bytes()), !ca.is_empty());
        }
    }
}
