//! An identity from forwarded fields (a proxy's Subject, URIs and DNS
//! names, no certificate): never panics, keeps the subject as written, and
//! a common name read from it is one of the subject's CN values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::{ClientIdentity, Fingerprint, Source};

fuzz_target!(|input: (&str, Vec<String>, Vec<String>)| {
    let (subject, uris, dns_names) = input;
    let proxy = std::net::IpAddr::from([10, 0, 0, 2]);
    let header = http::HeaderName::from_static("x-forwarded-client-cert");
    let id = ClientIdentity::from_forwarded_fields(
        proxy,
        header.clone(),
        Fingerprint::Sha256([0; 32]),
        Some(subject),
        uris.clone(),
        dns_names,
    );
    assert_eq!(id.source(), &Source::Forwarded { proxy, header });
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
