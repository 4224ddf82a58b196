//! Distinguished names as RFC 4514 strings, and directory-string decoding.
//!
//! x509-parser's own `Display` neither escapes special characters nor decodes
//! BMPString or TeletexString values, so names are rendered here. The output
//! matches `openssl x509 -nameopt RFC2253,-esc_msb` (UTF-8 left as is): RDNs
//! last-first, `+` between the values of a multi-valued RDN, `\` before
//! `,+"\<>;`, before a leading `#` or space and before a trailing space,
//! control characters as `\XX`, and values that are not strings as `#` and
//! the hex of their DER encoding.

use std::borrow::Cow;
use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// `2.5.4.3`, the `commonName` attribute, as DER object-identifier content.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The name RFC 4514 (or, past its nine, OpenSSL) gives an attribute type.
fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, n] => match n {
            3 => "CN",
            4 => "SN",
            5 => "serialNumber",
            6 => "C",
            7 => "L",
            8 => "ST",
            9 => "street",
            10 => "O",
            11 => "OU",
            12 => "title",
            15 => "businessCategory",
            17 => "postalCode",
            42 => "GN",
            43 => "initials",
            44 => "generationQualifier",
            46 => "dnQualifier",
            65 => "pseudonym",
            97 => "organizationIdentifier",
            _ => return None,
        },
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID",
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// Decodes an X.520 directory string (or IA5/Visible/Numeric string).
///
/// Returns `None` when the tag is not a string type or the bytes are not
/// valid for it; such values are rendered as `#hex` and are never a name.
pub(crate) fn decode_directory_string<'a>(value: &Any<'a>) -> Option<Cow<'a, str>> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String => std::str::from_utf8(data).ok().map(Cow::Borrowed),
        Tag::PrintableString | Tag::Ia5String | Tag::VisibleString | Tag::NumericString => {
            // ASCII is valid UTF-8.
            data.is_ascii()
                .then(|| std::str::from_utf8(data).ok().map(Cow::Borrowed))
                .flatten()
        }
        // T.61 in practice carries Latin-1; OpenSSL reads it the same way.
        Tag::TeletexString => Some(match std::str::from_utf8(data) {
            Ok(ascii) if data.is_ascii() => Cow::Borrowed(ascii),
            _ => Cow::Owned(data.iter().map(|&b| char::from(b)).collect()),
        }),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
                .map(Cow::Owned)
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect::<Option<String>>()
                .map(Cow::Owned)
        }
        _ => None,
    }
}

/// Renders a name as an RFC 4514 string.
pub(crate) fn format_name(name: &X509Name<'_>) -> String {
    format_name_collecting(name, &mut Vec::new())
}

/// Renders a name as an RFC 4514 string and, in the same pass, collects
/// every `commonName` value in certificate order (`None` for one that is
/// not a decodable string).
pub(crate) fn format_name_collecting(
    name: &X509Name<'_>,
    common_names: &mut Vec<Option<String>>,
) -> String {
    // x509-parser's iterators only go forwards; names are a handful of values.
    let attributes: Vec<(usize, &AttributeTypeAndValue<'_>)> = name
        .iter_rdn()
        .enumerate()
        .flat_map(|(rdn, set)| set.iter().map(move |attribute| (rdn, attribute)))
        .collect();
    let mut out = String::with_capacity(name.as_raw().len());
    let mut previous_rdn = None;
    let first_cn = common_names.len();
    // Last-first; OpenSSL reverses the values inside a multi-valued RDN too.
    for &(rdn, attribute) in attributes.iter().rev() {
        match previous_rdn {
            Some(previous) if previous == rdn => out.push('+'),
            Some(_) => out.push(','),
            None => {}
        }
        previous_rdn = Some(rdn);
        let oid = attribute.attr_type();
        match short_name(oid.as_bytes()) {
            Some(name) => out.push_str(name),
            None => out.push_str(&oid.to_id_string()),
        }
        out.push('=');
        let value = decode_directory_string(attribute.attr_value());
        match &value {
            Some(text) => push_escaped(&mut out, text),
            None => push_hex_der(&mut out, attribute.attr_value()),
        }
        if oid.as_bytes() == OID_COMMON_NAME {
            common_names.push(value.map(Cow::into_owned));
        }
    }
    // Collected last-first.
    common_names[first_cn..].reverse();
    out
}

/// Escapes one attribute value as RFC 4514 section 2.4 requires.
pub(crate) fn push_escaped(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    let plain = !matches!(bytes.first(), Some(b'#' | b' '))
        && bytes.last() != Some(&b' ')
        && !bytes.iter().any(|&b| {
            matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';') || b.is_ascii_control()
        });
    if plain {
        out.push_str(value);
        return;
    }
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if index == 0 => out.push_str("\\#"),
            ' ' if index == 0 || index == last => out.push_str("\\ "),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

fn push_hex_der(out: &mut String, value: &Any<'_>) {
    out.push('#');
    match value.to_der_vec() {
        Ok(der) => out.push_str(&crate::hex::encode(&der)),
        // Re-encoding a value we just parsed cannot fail; keep the content.
        Err(_) => out.push_str(&crate::hex::encode(value.data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, value);
        out
    }

    #[test]
    fn escapes_specials_anywhere() {
        assert_eq!(escaped(r#"a,b+c"d\e<f>g;h"#), r#"a\,b\+c\"d\\e\<f\>g\;h"#);
    }

    #[test]
    fn escapes_leading_hash_and_space_and_trailing_space_only() {
        assert_eq!(escaped("#a#"), "\\#a#");
        assert_eq!(escaped(" a b "), "\\ a b\\ ");
        assert_eq!(escaped(" "), "\\ ");
    }

    #[test]
    fn escapes_control_characters_as_hex_pairs() {
        assert_eq!(escaped("a\u{0}b\nc\u{7f}"), "a\\00b\\0Ac\\7F");
    }

    #[test]
    fn leaves_utf8_and_equals_alone() {
        assert_eq!(escaped("Zoë=1"), "Zoë=1");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(crate::hex::encode(&[0x00, 0xab, 0x1f]), "00ab1f");
    }
}

/// The common names in an RFC 4514 string (as a proxy forwards a subject),
/// in certificate order (the reverse of the string's), each `None` when it
/// is not a decodable string (`#`-hex BER, or escapes that are not UTF-8).
///
/// `None` when the text is not an RFC 4514 name at all, e.g. OpenSSL's
/// legacy `/C=US/CN=x` form: a name that cannot be read never yields a
/// principal.
pub(crate) fn common_names_from_rfc4514(text: &str) -> Option<Vec<Option<String>>> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    if bytes.is_empty() {
        return Some(names);
    }
    let mut at = 0;
    loop {
        // attributeType: a keystring or a numeric OID.
        let type_start = at;
        while at < bytes.len()
            && (bytes[at].is_ascii_alphanumeric() || matches!(bytes[at], b'-' | b'.'))
        {
            at += 1;
        }
        let attribute_type = &text[type_start..at];
        let keystring = attribute_type
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && !attribute_type.contains('.');
        let numeric_oid = !attribute_type.is_empty()
            && attribute_type
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        if !(keystring || numeric_oid) || bytes.get(at) != Some(&b'=') {
            return None;
        }
        at += 1;
        // attributeValue, up to an unescaped `,` or `+`.
        let mut value = Vec::new();
        let hex_form = bytes.get(at) == Some(&b'#');
        while at < bytes.len() && !matches!(bytes[at], b',' | b'+') {
            match bytes[at] {
                b'\\' => {
                    let next = *bytes.get(at + 1)?;
                    if let (Some(high), Some(low)) = (
                        crate::hex::digit(next),
                        bytes.get(at + 2).copied().and_then(crate::hex::digit),
                    ) {
                        value.push(high << 4 | low);
                        at += 3;
                    } else if matches!(
                        next,
                        b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
                    ) {
                        value.push(next);
                        at += 2;
                    } else {
                        return None;
                    }
                }
                // Must be escaped in RFC 4514.
                b'"' | b';' | b'<' | b'>' | 0 => return None,
                other => {
                    value.push(other);
                    at += 1;
                }
            }
        }
        if attribute_type.eq_ignore_ascii_case("CN") || attribute_type == "2.5.4.3" {
            names.push(if hex_form {
                None
            } else {
                String::from_utf8(value).ok()
            });
        }
        match bytes.get(at) {
            None => break,
            Some(_) => at += 1,
        }
    }
    names.reverse();
    Some(names)
}

#[cfg(test)]
mod rfc4514_tests {
    use super::common_names_from_rfc4514 as cns;

    fn most_specific(text: &str) -> Option<String> {
        cns(text)?.pop().flatten()
    }

    #[test]
    fn reads_common_names() {
        assert_eq!(
            most_specific("CN=client.example.com,O=Acme,C=DE").as_deref(),
            Some("client.example.com")
        );
        assert_eq!(
            most_specific(r"CN=api\, v2+UID=7,O=Acme\, Inc.").as_deref(),
            Some("api, v2")
        );
        assert_eq!(most_specific(r"cn=Caf\C3\A9,O=x").as_deref(), Some("Café"));
        assert_eq!(most_specific(r"2.5.4.3=a\+b").as_deref(), Some("a+b"));
        // Most specific first in the string: the first CN.
        assert_eq!(
            most_specific("CN=leaf,OU=x,CN=outer").as_deref(),
            Some("leaf")
        );
        assert_eq!(
            cns("CN=leaf,CN=outer"),
            Some(vec![Some("outer".into()), Some("leaf".into())])
        );
        assert_eq!(most_specific("O=only"), None);
        assert_eq!(cns(""), Some(vec![]));
        assert_eq!(cns("CN="), Some(vec![Some(String::new())]));
    }

    #[test]
    fn refuses_what_is_not_rfc4514() {
        for text in [
            "/C=US/ST=CA/CN=Test Client",
            "CN",
            "=x",
            "CN=a,",
            "CN=a;O=b",
            "CN=\"quoted\"",
            r"CN=a\",
            r"CN=a\q",
            "1..2=x",
            "C N=x",
        ] {
            assert_eq!(cns(text), None, "{text}");
        }
        // `#`-hex and non-UTF-8 escapes are names, but not decodable CNs.
        assert_eq!(cns("CN=#0c0161"), Some(vec![None]));
        assert_eq!(cns(r"CN=\FF"), Some(vec![None]));
    }
}
