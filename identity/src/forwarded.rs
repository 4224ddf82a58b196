//! Parsers for the entries of forwarding headers: `X-Forwarded-For`-style
//! address lists and RFC 7239 `Forwarded` elements.
//!
//! These work on raw header bytes and know nothing of trust; [`crate::TrustedProxies`]
//! walks the entries they yield. Every function is total: bad input is
//! `Node::Invalid`, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of a forwarding list, as a walker needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// A usable address (IPv4-mapped IPv6 already folded to IPv4).
    Addr(IpAddr),
    /// RFC 7239 `unknown`.
    Unknown,
    /// RFC 7239 obfuscated identifier (`_hidden`).
    Obfuscated,
    /// Anything else: empty, garbage, an element without `for=`.
    Invalid,
}

/// Parses one entry of an `X-Forwarded-For` (or single-address) header:
/// `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]:8080`,
/// optionally wrapped in double quotes, surrounded by optional whitespace.
pub(crate) fn parse_list_entry(entry: &[u8]) -> Node {
    let entry = trim_ows(entry);
    let entry = strip_quotes(entry).unwrap_or(entry);
    parse_node(entry)
}

/// Parses one RFC 7239 element (`for=192.0.2.60;proto=http;by=203.0.113.43`)
/// and returns its `for` node. An element without `for`, or with two, is
/// [`Node::Invalid`].
pub(crate) fn parse_forwarded_element(element: &[u8]) -> Node {
    let mut found = None;
    for pair in element.split(|&b| b == b';') {
        let pair = trim_ows(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return Node::Invalid;
        };
        let (name, value) = (trim_ows(&pair[..eq]), trim_ows(&pair[eq + 1..]));
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return Node::Invalid;
            }
            found = Some(value);
        }
    }
    let Some(value) = found else {
        return Node::Invalid;
    };
    let value = match value.first() {
        Some(b'"') => match strip_quotes(value) {
            // No node contains a quoted-pair; one here is not an address.
            Some(inner) if !inner.contains(&b'\\') => inner,
            _ => return Node::Invalid,
        },
        _ => value,
    };
    parse_node(value)
}

/// A node: an address with an optional port, `unknown`, or `_obfuscated`.
fn parse_node(node: &[u8]) -> Node {
    if node.eq_ignore_ascii_case(b"unknown") {
        return Node::Unknown;
    }
    if node.first() == Some(&b'_') {
        return if is_obfuscated(node) {
            Node::Obfuscated
        } else {
            Node::Invalid
        };
    }
    if let Some(rest) = node.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return Node::Invalid;
        };
        let after = &rest[close + 1..];
        if !after.is_empty() && !after.strip_prefix(b":").is_some_and(is_port) {
            return Node::Invalid;
        }
        return match parse_ipv6(&rest[..close]) {
            Some(ip) => Node::Addr(IpAddr::V6(ip).to_canonical()),
            None => Node::Invalid,
        };
    }
    if let Some(ip) = parse_ipv4(node) {
        return Node::Addr(IpAddr::V4(ip));
    }
    match node.iter().filter(|&&b| b == b':').count() {
        0 => Node::Invalid,
        // `a.b.c.d:port`: only IPv4 may carry a port without brackets.
        1 => {
            let colon = node.iter().position(|&b| b == b':').unwrap_or(0);
            match parse_ipv4(&node[..colon]) {
                Some(ip) if is_port(&node[colon + 1..]) => Node::Addr(IpAddr::V4(ip)),
                _ => Node::Invalid,
            }
        }
        // A bare IPv6 address (RFC 7239 wants brackets; proxies forget).
        _ => match parse_ipv6(node) {
            Some(ip) => Node::Addr(IpAddr::V6(ip).to_canonical()),
            None => Node::Invalid,
        },
    }
}

/// Dotted-quad IPv4 with no leading zeros, as `Ipv4Addr::from_str` accepts,
/// without going through `str`.
pub(crate) fn parse_ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    if bytes.len() < 7 || bytes.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut parts = bytes.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut value: u16 = 0;
        for &digit in part {
            if !digit.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u16::from(digit - b'0');
        }
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

fn parse_ipv6(bytes: &[u8]) -> Option<Ipv6Addr> {
    // Zone IDs (`%eth0`) and anything non-ASCII fail std's parser.
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `1*5DIGIT` up to 65535, or an RFC 7239 obfuscated port.
fn is_port(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&b'_') {
        return is_obfuscated(bytes);
    }
    !bytes.is_empty()
        && bytes.len() <= 5
        && bytes.iter().all(u8::is_ascii_digit)
        && bytes
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
            <= 65_535
}

/// `"_" 1*( ALPHA / DIGIT / "." / "_" / "-")`
fn is_obfuscated(bytes: &[u8]) -> bool {
    bytes.len() > 1
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn strip_quotes(bytes: &[u8]) -> Option<&[u8]> {
    bytes.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Node {
        Node::Addr(s.parse().unwrap())
    }

    #[test]
    fn list_entries() {
        let cases = [
            ("192.0.2.1", addr("192.0.2.1")),
            ("  192.0.2.1\t", addr("192.0.2.1")),
            ("192.0.2.1:8080", addr("192.0.2.1")),
            ("\"192.0.2.1\"", addr("192.0.2.1")),
            ("2001:db8::1", addr("2001:db8::1")),
            ("[2001:db8::1]", addr("2001:db8::1")),
            ("[2001:db8::1]:443", addr("2001:db8::1")),
            ("\"[2001:db8::1]:443\"", addr("2001:db8::1")),
            ("::ffff:192.0.2.9", addr("192.0.2.9")),
            ("[::ffff:192.0.2.9]:1", addr("192.0.2.9")),
            ("unknown", Node::Unknown),
            ("_hidden", Node::Obfuscated),
            ("", Node::Invalid),
            ("_", Node::Invalid),
            ("192.0.2.256", Node::Invalid),
            ("192.0.2.01", Node::Invalid),
            ("192.0.2", Node::Invalid),
            ("192.0.2.1.5", Node::Invalid),
            ("192.0.2.1:", Node::Invalid),
            ("192.0.2.1:65536", Node::Invalid),
            ("192.0.2.1:80:80", Node::Invalid),
            ("[2001:db8::1", Node::Invalid),
            ("[2001:db8::1]x", Node::Invalid),
            ("[192.0.2.1]", Node::Invalid),
            ("fe80::1%eth0", Node::Invalid),
            ("example.com", Node::Invalid),
            ("1.2.3.4 5.6.7.8", Node::Invalid),
            ("\"192.0.2.1", Node::Invalid),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_list_entry(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn ipv4_matches_std_on_edge_cases() {
        for input in [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.4.",
            "256.1.1.1",
            "+1.2.3.4",
        ] {
            assert_eq!(
                parse_ipv4(input.as_bytes()),
                input.parse::<Ipv4Addr>().ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn forwarded_elements() {
        let cases = [
            ("for=192.0.2.60", addr("192.0.2.60")),
            (
                "For=192.0.2.60;proto=http;by=203.0.113.43",
                addr("192.0.2.60"),
            ),
            ("proto=https; for=\"192.0.2.43:47011\"", addr("192.0.2.43")),
            (
                "for=\"[2001:db8:cafe::17]:4711\"",
                addr("2001:db8:cafe::17"),
            ),
            ("for=\"[2001:db8:cafe::17]\"", addr("2001:db8:cafe::17")),
            ("for=\"192.0.2.43:_port\"", addr("192.0.2.43")),
            ("for=unknown", Node::Unknown),
            ("for=\"_gazonk\"", Node::Obfuscated),
            ("for=_SEVKISEK", Node::Obfuscated),
            ("by=203.0.113.43;proto=http", Node::Invalid),
            ("for=192.0.2.1;for=192.0.2.2", Node::Invalid),
            ("for", Node::Invalid),
            ("for=\"192.0.2.1", Node::Invalid),
            ("for=\"192\\.0.2.1\"", Node::Invalid),
            ("", Node::Invalid),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_forwarded_element(input.as_bytes()),
                expected,
                "{input:?}"
            );
        }
    }
}
