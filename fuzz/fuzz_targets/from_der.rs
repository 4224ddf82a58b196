//! `ClientIdentity::from_der` on arbitrary bytes: an error or an identity
//! whose every accessor works, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::ClientIdentity;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = ClientIdentity::from_der(data) {
        let _ = (identity.subject(), identity.issuer(), identity.common_name(), identity.serial_hex());
        let _ = (identity.dns_names(), identity.uris(), identity.emails(), identity.ips());
        if let Some(id) = identity.spiffe_id() {
            assert_eq!(identity.uris().len(), 1);
            assert_eq!(id.as_str(), identity.uris()[0]);
        }
        assert_eq!(identity.der(), data);
    }
});
