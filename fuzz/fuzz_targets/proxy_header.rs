//! The PROXY protocol header (v1 text, v2 binary): never panics; a header
//! that names a client names an address the same header written back names
//! too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_client_cert::parse_proxy_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(client)) = parse_proxy_header(data) {
        // v1 is text: a client it names is written in it.
        if data.starts_with(b"PROXY ") {
            let text = String::from_utf8_lossy(data);
            let ip = client.ip().to_string();
            assert!(text.contains(ip.as_str()) || client.is_ipv6(), "{text:?} named {client}");
        }
    }
});
