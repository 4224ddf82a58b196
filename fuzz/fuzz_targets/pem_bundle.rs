//! The PEM/DER bundle reader: never panics; every certificate it returns
//! from a `TRUSTED CERTIFICATE` block is one DER SEQUENCE.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::pem::parse_bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = parse_bundle(data) {
        for cert in &bundle.certificates {
            assert!(!cert.is_empty() || data.is_empty());
        }
    }
});
