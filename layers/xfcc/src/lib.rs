//! Forwarded client certificates: the identity a trusted reverse proxy
//! (Envoy, nginx, Caddy, HAProxy, a cloud load balancer) learnt from the
//! client's certificate and passed on in a header.
//!
//! This crate starts with Envoy's `x-forwarded-client-cert` (XFCC) grammar:
//! [`parse`] and [`to_header_value`] work on plain strings, with no tower or
//! http types, so they can be fuzzed and benchmarked alone. [`ForwardedCert`]
//! checks one element's fields (`Hash`, URL-encoded PEM `Cert`/`Chain`,
//! `Subject`, `URI`, `DNS`, `By`) and turns a forwarded certificate into the
//! same [`ClientIdentity`](portcullis_identity::ClientIdentity) the TLS layer
//! produces, with `Source::Forwarded`. Parsing follows
//! Envoy exactly where other parsers drift: keys are case-insensitive,
//! values are kept as written (empty ones too), only `\"` is an escape inside
//! quotes (so RFC 2253 subjects keep their `\,`), `=` may appear in unquoted
//! values, and every malformation is an error with its byte offset.
//!
//! # Example
//!
//! ```
//! use portcullis_xfcc::{XfccElement, parse, to_header_value};
//!
//! // Two hops: the client's proxy, then ours (the last element).
//! let header = "By=spiffe://example.org/edge;URI=spiffe://example.org/ns/a,\
//!               By=spiffe://example.org/gw;Hash=00ff;URI=spiffe://example.org/edge";
//! let elements = parse(header)?;
//! let ours = elements.last().unwrap();
//! assert_eq!(ours.get("uri"), Some("spiffe://example.org/edge"));
//! assert_eq!(ours.values("URI").count(), 1);
//!
//! let rewritten = to_header_value(&[XfccElement::new([("By", "x"), ("Subject", "CN=a, b")])]);
//! assert_eq!(rewritten, r#"By=x;Subject="CN=a, b""#);
//! # Ok::<(), portcullis_xfcc::XfccError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cert;
mod env;
mod format;
mod grammar;
mod layer;

pub use cert::{FieldError, ForwardedCert};
pub use format::{CertFormat, DecodeError, DecodeErrorKind, UnknownFormat};
pub use grammar::{
    ParseLimits, XfccElement, XfccError, XfccErrorKind, parse, parse_with_limits, to_header_value,
};
pub use layer::{
    CERT_SIDE_HEADERS, ForwardingProxy, KNOWN_CERT_HEADERS, Mode, OnMalformed, ProxyIdentity, Xfcc,
    XfccFuture, XfccLayer, XfccRejection, XfccRejectionKind,
};

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9_-]{0,8}"
    }

    /// Any text, but a value that would need quoting must not end in `\`
    /// (the one value the grammar cannot carry; see `to_header_value`).
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,24}",
            "\\PC{0,12}",
            Just(r#"O=Acme\, Inc.,CN="q""#.to_owned()),
            Just(r#"a\"b"#.to_owned()),
        ]
        .prop_filter("unrepresentable: quoted and ending in a backslash", |v| {
            !v.ends_with('\\')
        })
    }

    fn elements() -> impl Strategy<Value = Vec<XfccElement>> {
        prop::collection::vec(
            prop::collection::vec((key(), value()), 1..6).prop_map(XfccElement::new),
            1..5,
        )
    }

    proptest! {
        #[test]
        fn round_trips(elements in elements()) {
            let text = to_header_value(&elements);
            prop_assert_eq!(parse(&text), Ok(elements));
        }

        #[test]
        fn never_panics(input in "\\PC{0,64}") {
            let _ = parse(&input);
        }

        #[test]
        fn never_panics_on_grammar_soup(input in "[a=;,\"\\\\ ]{0,48}") {
            if let Err(error) = parse(&input) {
                prop_assert!(error.offset() <= input.len());
            }
        }
    }
}
