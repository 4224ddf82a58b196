//! An identity from forwarded fields (a proxy's Subject, URIs and DNS
//! names, no certificate): never panics, keeps the subject as written, and
//! a common name read from it is one of the subject's CN values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::ClientIdentity;

fuzz_target!(|input: (&str, Vec<String>, Vec<String>)| {
    let (subject, uris, dns_names) = input;
    let id = ClientIdentity::from_forwarded_fields([0; 32], Some(subject), uris.clone(), dns_names);
    assert_eq!(id.subject(), subject);
    assert_eq!(id.uris(), uris.as_slice());
    if let Some(spiffe) = id.spiffe_id() {
        assert_eq!(uris, [spiffe.as_str()]);
    }
    if let Some(cn) = id.common_name() {
        // Unescaping only shortens or keeps: never invents text.
        assert!(cn.len() <= subject.len());
    }
});
