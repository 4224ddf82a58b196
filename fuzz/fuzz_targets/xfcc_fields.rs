//! XFCC field checks: every element of whatever parses goes through
//! `ForwardedCert::from_element` and, with a certificate, `identity`,
//! without panicking; a checked Hash always matches the Cert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_xfcc::{ForwardedCert, parse};

fuzz_target!(|input: &str| {
    let Ok(elements) = parse(input) else { return };
    for element in &elements {
        if let Ok(fields) = ForwardedCert::from_element(element) {
            if let (Some(hash), Some(cert)) = (fields.hash(), fields.cert_der()) {
                use sha2::Digest;
                assert_eq!(hash.as_slice(), sha2::Sha256::digest(cert).as_slice());
            }
            let _ = fields.identity([10, 0, 0, 1].into(), http::HeaderName::from_static("x-forwarded-client-cert"));
        }
    }
});
