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
