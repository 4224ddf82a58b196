//! Property tests: the parsers never panic, and client_ip only ever answers
//! the peer or an address the header holds.

use std::collections::HashSet;
use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use portcullis_identity::{ClientIdentity, ClientIpHeader, SpiffeId, TrustedProxies};
use portcullis_test_support::pki;
use proptest::prelude::*;

/// A header entry and the address it denotes, if any.
fn entry() -> impl Strategy<Value = (String, Option<IpAddr>)> {
    let v4 = any::<[u8; 4]>().prop_map(IpAddr::from);
    let v6 = any::<[u16; 8]>().prop_map(IpAddr::from);
    let near = (0u8..4, any::<u8>()).prop_map(|(b, c)| IpAddr::from([10, 0, b, c]));
    let addr = prop_oneof![v4, v6, near];
    prop_oneof![
        addr.clone()
            .prop_map(|ip| (ip.to_string(), Some(ip.to_canonical()))),
        (addr, any::<u16>()).prop_map(|(ip, port)| {
            let text = match ip {
                IpAddr::V4(v4) => format!("{v4}:{port}"),
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            };
            (text, Some(ip.to_canonical()))
        }),
        Just(("unknown".to_owned(), None)),
        Just(("_obf".to_owned(), None)),
        "[ -~]{0,12}".prop_map(|garbage| (garbage, None)),
    ]
}

fn proxies() -> impl Strategy<Value = TrustedProxies> {
    prop::collection::vec((0u8..4, 16u8..=32), 0..4).prop_map(|nets| {
        TrustedProxies::new(
            nets.into_iter()
                .filter_map(|(b, len)| ipnet::Ipv4Net::new([10, 0, b, 0].into(), len).ok())
                .map(|net| ipnet::IpNet::V4(net.trunc())),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_ip_is_the_peer_or_an_address_from_the_header(
        lines in prop::collection::vec(prop::collection::vec(entry(), 0..6), 0..4),
        proxies in proxies(),
        peer in prop_oneof![Just(IpAddr::from([10, 0, 0, 1])), any::<[u8; 4]>().prop_map(IpAddr::from)],
        forwarded in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        let mut known: HashSet<IpAddr> = HashSet::new();
        let name = if forwarded { "forwarded" } else { "x-forwarded-for" };
        for line in &lines {
            let text: Vec<String> = line.iter().map(|(text, ip)| {
                known.extend(ip);
                if forwarded { format!("for=\"{text}\"") } else { text.clone() }
            }).collect();
            if let Ok(value) = HeaderValue::from_str(&text.join(", ")) {
                headers.append(name, value);
            }
        }
        let proxies = if forwarded { proxies.with_header(ClientIpHeader::Forwarded) } else { proxies };
        let got = proxies.client_ip(&headers, peer);
        prop_assert!(got == peer || known.contains(&got), "{got} from {lines:?}");
        if !proxies.contains(peer) {
            prop_assert_eq!(got, peer);
        }
    }

    #[test]
    fn client_ip_never_panics_on_raw_bytes(
        raw in prop::collection::vec(any::<u8>(), 0..64),
        forwarded in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append(if forwarded { "forwarded" } else { "x-forwarded-for" }, value);
        }
        let proxies = TrustedProxies::parse("0.0.0.0/1, 128.0.0.0/1").unwrap();
        let proxies = if forwarded { proxies.with_header(ClientIpHeader::Forwarded) } else { proxies };
        let _ = proxies.resolve(&headers, IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn from_der_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClientIdentity::from_der(&bytes);
    }

    #[test]
    fn from_der_never_panics_on_a_mutated_certificate(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut der = pki().client_escape().der().to_vec();
        for (index, byte) in flips {
            let at = index.index(der.len());
            der[at] ^= byte;
        }
        if let Ok(identity) = ClientIdentity::from_der(&der) {
            // Whatever parsed must still render.
            prop_assert!(!identity.subject().is_empty() || identity.common_name().is_none());
        }
    }

    #[test]
    fn spiffe_parse_never_panics(input in any::<String>()) {
        let _ = SpiffeId::parse(&input);
    }

    #[test]
    fn valid_spiffe_ids_round_trip(
        td in "[a-z0-9._-]{1,40}",
        segments in prop::collection::vec("[A-Za-z0-9._-]{1,12}", 0..6),
    ) {
        prop_assume!(segments.iter().all(|s| s != "." && s != ".."));
        let text = format!("spiffe://{td}{}", segments.iter().map(|s| format!("/{s}")).collect::<String>());
        let id = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text);
        prop_assert_eq!(id.trust_domain(), td.as_str());
    }
}
