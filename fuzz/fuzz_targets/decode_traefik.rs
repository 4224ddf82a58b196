//! `CertFormat::Traefik.decode` on anything: never panics, and whatever
//! it accepts re-encodes to a value that decodes to the same certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_xfcc::CertFormat;

fuzz_target!(|input: &str| {
    let format = CertFormat::Traefik;
    let Ok(chain) = format.decode(input) else { return };
    assert!(!chain.is_empty());
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let again = format.decode(&format.encode(&refs)).expect("our own encoding decodes");
    if format.is_list() || matches!(format, CertFormat::Nginx | CertFormat::AwsAlb) {
        assert_eq!(again, chain);
    } else {
        assert_eq!(again[0], chain[0]);
    }
});
