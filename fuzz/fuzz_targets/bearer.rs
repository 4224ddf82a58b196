//! `Authorization` parsing: never panics, and a digest never comes from a
//! value that holds whitespace inside the token.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use portcullis_identity::BearerDigest;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        if let Ok(Some(_)) = BearerDigest::from_authorization(&value) {
            let token = data[6..].trim_ascii();
            assert!(!token.is_empty() && !token.iter().any(u8::is_ascii_whitespace));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(digest) = BearerDigest::from_hex(text) {
            assert_eq!(digest.to_hex(), text.to_ascii_lowercase());
        }
    }
});
