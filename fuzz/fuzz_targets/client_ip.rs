//! The forwarding-header parsers through `TrustedProxies::resolve`: the
//! first byte picks the header kind, the rest are header lines split on
//! `\n`. The answer must agree with how it was reached.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_identity::{ClientIpHeader, ResolvedBy, TrustedProxies};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let header = match mode % 3 {
        0 => ClientIpHeader::XForwardedFor,
        1 => ClientIpHeader::Forwarded,
        _ => ClientIpHeader::Single(HeaderName::from_static("x-real-ip")),
    };
    let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()])
        .with_header(header.clone());
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header.header_name(), value);
        }
    }
    let peer: IpAddr = if mode & 0x80 == 0 { [10, 0, 0, 1].into() } else { [192, 0, 2, 1].into() };
    let got = proxies.resolve(&headers, peer);
    match got.by() {
        ResolvedBy::UntrustedPeer => assert_eq!(got.ip(), peer),
        ResolvedBy::Forwarded { .. } => assert!(!proxies.contains(got.ip())),
        _ => assert!(proxies.contains(got.ip())),
    }
});
