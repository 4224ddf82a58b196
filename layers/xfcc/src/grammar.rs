//! Envoy's `x-forwarded-client-cert` grammar: parse and serialise.
//!
//! ```text
//! header  = element *( "," element )
//! element = pair *( ";" pair )
//! pair    = key "=" value
//! value   = quoted / *( any byte but "," ";" DQUOTE )
//! quoted  = DQUOTE *( "\" DQUOTE / any byte but DQUOTE ) DQUOTE
//! ```
//!
//! Keys compare case-insensitively; values are case-sensitive and kept as
//! given, empty ones included. Inside a quoted value only `\"` is an escape:
//! every other backslash stays as written, so an RFC 2253 subject such as
//! `O=Acme\, Inc.` survives. `=` may appear inside an unquoted value (the
//! first `=` ends the key). Spaces and tabs around elements and pairs are
//! ignored. Every byte is consumed or refused, so the parser always makes
//! progress.

use std::fmt;

/// Caps on what one header may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Longest header value accepted, in bytes (default 16 KiB).
    pub max_len: usize,
    /// Most elements (proxy hops) accepted (default 16).
    pub max_elements: usize,
    /// Most pairs in one element (default 64).
    pub max_pairs: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_len: 16 * 1024,
            max_elements: 16,
            max_pairs: 64,
        }
    }
}

/// One element: the pairs one proxy wrote, in header order.
///
/// Keys and values live in one buffer per element (two allocations per
/// element, not two per pair).
#[derive(Clone, Default)]
pub struct XfccElement {
    text: String,
    /// `(key_start, key_end, value_end)`: the value starts at `key_end`.
    spans: Vec<(usize, usize, usize)>,
}

impl XfccElement {
    /// An element from `(key, value)` pairs, values unescaped.
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut element = XfccElement::default();
        for (key, value) in pairs {
            element.push(key.as_ref(), value.as_ref());
        }
        element
    }

    /// Every `(key, value)` in header order, unknown keys included; keys as
    /// written, values unescaped.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|&(start, key_end, value_end)| {
            (&self.text[start..key_end], &self.text[key_end..value_end])
        })
    }

    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Every value of `key` (case-insensitive), in order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Appends a pair.
    pub fn push(&mut self, key: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.spans.push((start, key_end, self.text.len()));
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

impl PartialEq for XfccElement {
    fn eq(&self, other: &Self) -> bool {
        self.pairs().eq(other.pairs())
    }
}

impl Eq for XfccElement {}

impl fmt::Debug for XfccElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.pairs()).finish()
    }
}

/// Parses a header value with the default [`ParseLimits`].
///
/// ```
/// let elements = portcullis_xfcc::parse(
///     r#"By=spiffe://example.org/gw;Hash=abc;Subject="O=Acme\, Inc.,CN=\"api\"";URI=spiffe://example.org/ns/a"#,
/// )?;
/// assert_eq!(elements[0].get("subject"), Some(r#"O=Acme\, Inc.,CN="api""#));
/// assert_eq!(elements[0].get("URI"), Some("spiffe://example.org/ns/a"));
/// # Ok::<(), portcullis_xfcc::XfccError>(())
/// ```
pub fn parse(input: &str) -> Result<Vec<XfccElement>, XfccError> {
    parse_with_limits(input, &ParseLimits::default())
}

/// Parses a header value.
pub fn parse_with_limits(input: &str, limits: &ParseLimits) -> Result<Vec<XfccElement>, XfccError> {
    if input.len() > limits.max_len {
        return Err(XfccError::new(limits.max_len, XfccErrorKind::TooLong));
    }
    let bytes = input.as_bytes();
    let end = bytes.len();
    let mut at = 0;
    let mut elements = Vec::new();
    let mut element = XfccElement::default();
    loop {
        at = skip_ows(bytes, at);
        // A key, up to '='.
        let key_start = at;
        at = memchr::memchr3(b'=', b',', b';', &bytes[at..]).map_or(end, |i| at + i);
        if let Some(quote) = memchr::memchr(b'"', &bytes[key_start..at]) {
            // A quote cannot be part of a key; stop there, as the grammar does.
            at = key_start + quote;
        }
        if at == end || bytes[at] != b'=' {
            let kind = if at == key_start && (at == end || bytes[at] == b',') && element.is_empty()
            {
                XfccErrorKind::EmptyElement
            } else if at == key_start && (at == end || matches!(bytes[at], b',' | b';')) {
                XfccErrorKind::EmptyPair
            } else {
                XfccErrorKind::MissingEquals
            };
            return Err(XfccError::new(key_start, kind));
        }
        let key = trim_ows_end(&input[key_start..at]);
        if key.is_empty() {
            return Err(XfccError::new(key_start, XfccErrorKind::EmptyKey));
        }
        at += 1; // '='
        if element.len() == limits.max_pairs {
            return Err(XfccError::new(key_start, XfccErrorKind::TooManyPairs));
        }
        if element.text.capacity() == 0 {
            element.text.reserve((end - key_start).min(512));
            element.spans.reserve(8);
        }
        let pair_start = element.text.len();
        element.text.push_str(key);
        let key_end = element.text.len();
        if bytes.get(at) == Some(&b'"') {
            let open = at;
            at += 1;
            let mut run = at;
            loop {
                at = memchr::memchr2(b'"', b'\\', &bytes[at..]).map_or(end, |i| at + i);
                match bytes.get(at) {
                    None => return Err(XfccError::new(open, XfccErrorKind::UnterminatedQuote)),
                    Some(b'\\') if bytes.get(at + 1) == Some(&b'"') => {
                        element.text.push_str(&input[run..at]);
                        element.text.push('"');
                        at += 2;
                        run = at;
                    }
                    Some(b'"') => {
                        element.text.push_str(&input[run..at]);
                        at += 1;
                        break;
                    }
                    Some(_) => at += 1,
                }
            }
            at = skip_ows(bytes, at);
            if at < end && !matches!(bytes[at], b',' | b';') {
                return Err(XfccError::new(at, XfccErrorKind::JunkAfterQuote));
            }
        } else {
            let start = at;
            at = memchr::memchr3(b',', b';', b'"', &bytes[at..]).map_or(end, |i| at + i);
            if bytes.get(at) == Some(&b'"') {
                return Err(XfccError::new(at, XfccErrorKind::QuoteInUnquotedValue));
            }
            element.text.push_str(trim_ows_end(&input[start..at]));
        }
        element
            .spans
            .push((pair_start, key_end, element.text.len()));
        match bytes.get(at) {
            Some(b';') => at += 1,
            Some(_) | None => {
                if elements.len() == limits.max_elements {
                    return Err(XfccError::new(at, XfccErrorKind::TooManyElements));
                }
                elements.push(std::mem::take(&mut element));
                if at == end {
                    return Ok(elements);
                }
                at += 1; // ','
            }
        }
    }
}

fn skip_ows(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

fn trim_ows_end(s: &str) -> &str {
    s.trim_end_matches([' ', '\t'])
}

/// Writes elements as one header value; values are quoted when they hold
/// `,`, `;`, `=`, `"`, a space or a tab, with `"` escaped as `\"`.
///
/// One value has no faithful encoding in this grammar: one that must be
/// quoted and ends in `\`, whose closing quote would read as escaped. It is
/// written as is and does not parse back. Nothing portcullis writes has
/// that form (hex digests, URIs, URL-encoded PEM, and RFC 4514 names, which
/// never end in a lone backslash).
pub fn to_header_value(elements: &[XfccElement]) -> String {
    let mut out = String::new();
    for (index, element) in elements.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        for (pair, (key, value)) in element.pairs().enumerate() {
            if pair > 0 {
                out.push(';');
            }
            out.push_str(key);
            out.push('=');
            if value
                .bytes()
                .any(|b| matches!(b, b',' | b';' | b'=' | b'"' | b' ' | b'\t'))
            {
                out.push('"');
                for c in value.chars() {
                    if c == '"' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            } else {
                out.push_str(value);
            }
        }
    }
    out
}

/// Why a header value does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfccError {
    offset: usize,
    kind: XfccErrorKind,
}

/// The kind of an [`XfccError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XfccErrorKind {
    /// Nothing between two commas, or an empty header.
    EmptyElement,
    /// Nothing between two semicolons, or a trailing `;`.
    EmptyPair,
    /// A key with no `=`.
    MissingEquals,
    /// `=value` with no key.
    EmptyKey,
    /// A quoted value with no closing quote.
    UnterminatedQuote,
    /// Something other than `,` or `;` after a closing quote.
    JunkAfterQuote,
    /// A `"` inside an unquoted value.
    QuoteInUnquotedValue,
    /// Longer than [`ParseLimits::max_len`].
    TooLong,
    /// More elements than [`ParseLimits::max_elements`].
    TooManyElements,
    /// More pairs in an element than [`ParseLimits::max_pairs`].
    TooManyPairs,
}

impl XfccError {
    fn new(offset: usize, kind: XfccErrorKind) -> Self {
        XfccError { offset, kind }
    }

    /// Byte offset in the header value where the problem is.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What the problem is.
    pub fn kind(&self) -> XfccErrorKind {
        self.kind
    }
}

impl fmt::Display for XfccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            XfccErrorKind::EmptyElement => "empty element",
            XfccErrorKind::EmptyPair => "empty pair",
            XfccErrorKind::MissingEquals => "key without '='",
            XfccErrorKind::EmptyKey => "empty key",
            XfccErrorKind::UnterminatedQuote => "unterminated quoted value",
            XfccErrorKind::JunkAfterQuote => "unexpected character after a closing quote",
            XfccErrorKind::QuoteInUnquotedValue => "'\"' inside an unquoted value",
            XfccErrorKind::TooLong => "header longer than the limit",
            XfccErrorKind::TooManyElements => "more elements than the limit",
            XfccErrorKind::TooManyPairs => "more pairs in one element than the limit",
        };
        write!(
            f,
            "malformed x-forwarded-client-cert: {what} at byte {}",
            self.offset
        )
    }
}

impl std::error::Error for XfccError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// From Envoy's documentation of `x-forwarded-client-cert`.
    const ENVOY_ONE: &str = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#;
    const ENVOY_TWO: &str = "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com";
    const ENVOY_DNS: &str = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"#;

    #[test]
    fn envoy_documented_examples() {
        let one = parse(ENVOY_ONE).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].pairs().collect::<Vec<_>>(),
            [
                ("By", "http://frontend.lyft.com"),
                (
                    "Hash",
                    "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"
                ),
                (
                    "Subject",
                    "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"
                ),
                ("URI", "http://testclient.lyft.com"),
            ]
        );
        let two = parse(ENVOY_TWO).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].get("by"), Some("http://backend.lyft.com"));
        assert_eq!(two[1].get("uri"), Some("http://frontend.lyft.com"));
        let dns = parse(ENVOY_DNS).unwrap();
        assert_eq!(
            dns[0].values("DNS").collect::<Vec<_>>(),
            ["lyft.com", "www.lyft.com"]
        );
    }

    #[test]
    fn only_escaped_quotes_unescape() {
        let parsed = parse(r#"Subject="CN=\"q\",O=Acme\, Inc.\\x""#).unwrap();
        assert_eq!(parsed[0].get("Subject"), Some(r#"CN="q",O=Acme\, Inc.\\x"#));
    }

    #[test]
    fn empty_values_equals_in_values_unknown_keys_and_spaces() {
        let parsed = parse(" By=;Hash=a=b=c ; X-Custom=v , URI=u\t").unwrap();
        assert_eq!(
            parsed[0].pairs().collect::<Vec<_>>(),
            [("By", ""), ("Hash", "a=b=c"), ("X-Custom", "v")]
        );
        assert_eq!(parsed[1].pairs().collect::<Vec<_>>(), [("URI", "u")]);
    }

    #[test]
    fn errors_say_what_and_where() {
        use XfccErrorKind::*;
        let cases: &[(&str, XfccErrorKind, usize)] = &[
            ("", EmptyElement, 0),
            ("a=b,,c=d", EmptyElement, 4),
            (",a=b", EmptyElement, 0),
            ("a=b,", EmptyElement, 4),
            ("a=b;;c=d", EmptyPair, 4),
            ("a=b;", EmptyPair, 4),
            ("a=b;c", MissingEquals, 4),
            ("abc", MissingEquals, 0),
            ("a\"b=c", MissingEquals, 0),
            ("=x", EmptyKey, 0),
            ("a=b;=x", EmptyKey, 4),
            ("a=\"unterminated", UnterminatedQuote, 2),
            ("a=\"ends with escape\\\"", UnterminatedQuote, 2),
            ("a=\"q\"x;b=c", JunkAfterQuote, 5),
            ("a=x\"y", QuoteInUnquotedValue, 3),
        ];
        for &(input, kind, offset) in cases {
            let err = parse(input).unwrap_err();
            assert_eq!((err.kind(), err.offset()), (kind, offset), "{input:?}");
        }
        assert_eq!(
            parse("=x").unwrap_err().to_string(),
            "malformed x-forwarded-client-cert: empty key at byte 0"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = ParseLimits {
            max_len: 20,
            max_elements: 2,
            max_pairs: 2,
        };
        assert_eq!(
            parse_with_limits(&"a=b;".repeat(6), &limits)
                .unwrap_err()
                .kind(),
            XfccErrorKind::TooLong
        );
        assert_eq!(
            parse_with_limits("a=1,b=2,c=3", &limits)
                .unwrap_err()
                .kind(),
            XfccErrorKind::TooManyElements
        );
        assert_eq!(
            parse_with_limits("a=1;b=2;c=3", &limits)
                .unwrap_err()
                .kind(),
            XfccErrorKind::TooManyPairs
        );
        assert_eq!(parse_with_limits("a=1;b=2,c=3", &limits).unwrap().len(), 2);
    }

    #[test]
    fn serialises_and_quotes_what_needs_it() {
        let elements = vec![
            XfccElement::new([
                ("By", "spiffe://example.org/gw"),
                ("Subject", r#"CN="x",O=A\, B"#),
            ]),
            XfccElement::new([("URI", "u"), ("Empty", "")]),
        ];
        let text = to_header_value(&elements);
        assert_eq!(
            text,
            r#"By=spiffe://example.org/gw;Subject="CN=\"x\",O=A\, B",URI=u;Empty="#
        );
        assert_eq!(parse(&text).unwrap(), elements);
    }
}
