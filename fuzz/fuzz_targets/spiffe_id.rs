//! `SpiffeId::parse`: never panics, and whatever parses re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::SpiffeId;

fuzz_target!(|input: &str| {
    if let Ok(id) = SpiffeId::parse(input) {
        assert_eq!(id.as_str(), input);
        assert!(input.len() <= portcullis_identity::MAX_SPIFFE_ID_LEN);
        assert_eq!(SpiffeId::parse(&id.to_string()).as_ref(), Ok(&id));
        assert_eq!(format!("spiffe://{}{}", id.trust_domain(), id.path()), input);
    }
});
