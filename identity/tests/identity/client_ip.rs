//! `TrustedProxies::client_ip`: every rule, and the spoofing attempts
//! proxies have shipped bugs for.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_identity::{ClientIpHeader, ResolvedBy, TrustedProxies};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn xff(lines: &[&str]) -> HeaderMap {
    headers(
        &lines
            .iter()
            .map(|line| ("x-forwarded-for", *line))
            .collect::<Vec<_>>(),
    )
}

fn lan() -> TrustedProxies {
    TrustedProxies::parse("10.0.0.0/8, 2001:db8:ffff::/48").unwrap()
}

const PROXY: &str = "10.0.0.2";

#[test]
fn nothing_is_trusted_by_default() {
    let forged = xff(&["203.0.113.9"]);
    for proxies in [TrustedProxies::none(), TrustedProxies::default()] {
        let got = proxies.resolve(&forged, ip(PROXY));
        assert_eq!((got.ip(), got.by()), (ip(PROXY), ResolvedBy::UntrustedPeer));
    }
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_sends() {
    let forged = headers(&[
        ("x-forwarded-for", "10.0.0.7"),
        ("forwarded", "for=10.0.0.7"),
        ("x-real-ip", "10.0.0.7"),
    ]);
    for header in [
        ClientIpHeader::XForwardedFor,
        ClientIpHeader::Forwarded,
        ClientIpHeader::Single(HeaderName::from_static("x-real-ip")),
    ] {
        let proxies = lan().with_header(header);
        assert_eq!(
            proxies.client_ip(&forged, ip("198.51.100.1")),
            ip("198.51.100.1")
        );
        // The IPv4-mapped form of an untrusted peer comes back as IPv4.
        assert_eq!(
            proxies.client_ip(&forged, ip("::ffff:198.51.100.1")),
            ip("198.51.100.1")
        );
    }
}

#[test]
fn a_mapped_trusted_peer_is_trusted() {
    assert_eq!(
        lan().client_ip(&xff(&["203.0.113.9"]), ip("::ffff:10.0.0.2")),
        ip("203.0.113.9")
    );
}

#[test]
fn a_trusted_peer_without_the_header_is_the_client() {
    let got = lan().resolve(&HeaderMap::new(), ip(PROXY));
    assert_eq!(
        (got.ip(), got.by()),
        (ip(PROXY), ResolvedBy::NoForwardingHeader)
    );
}

#[test]
fn the_rightmost_untrusted_entry_wins_over_a_forged_left_part() {
    let got = lan().resolve(&xff(&["6.6.6.6, 1.1.1.1, 203.0.113.9"]), ip(PROXY));
    assert_eq!(
        (got.ip(), got.by()),
        (ip("203.0.113.9"), ResolvedBy::Forwarded { hops: 1 })
    );
}

#[test]
fn trusted_hops_are_walked_past() {
    let got = lan().resolve(
        &xff(&["6.6.6.6, 203.0.113.9, 10.1.1.1, [2001:db8:ffff::5]:443"]),
        ip(PROXY),
    );
    assert_eq!(
        (got.ip(), got.by()),
        (ip("203.0.113.9"), ResolvedBy::Forwarded { hops: 3 })
    );
}

#[test]
fn lines_are_one_list_in_order() {
    // The client sent its own line; the proxy appended a second one.
    let got = lan().resolve(&xff(&["6.6.6.6, 10.9.9.9", "203.0.113.9"]), ip(PROXY));
    assert_eq!(got.ip(), ip("203.0.113.9"));
    // Our proxies each appended a line: walk them all from the last.
    let got = lan().resolve(
        &xff(&["6.6.6.6", "203.0.113.9", "10.1.1.1", "10.1.1.2"]),
        ip(PROXY),
    );
    assert_eq!(
        (got.ip(), got.by()),
        (ip("203.0.113.9"), ResolvedBy::Forwarded { hops: 3 })
    );
}

#[test]
fn a_forged_trusted_address_left_of_the_real_client_is_never_reached() {
    // The client claims to be one of our proxies; the proxy appended the truth.
    let got = lan().resolve(&xff(&["10.0.0.9", "203.0.113.9"]), ip(PROXY));
    assert_eq!(got.ip(), ip("203.0.113.9"));
}

#[test]
fn all_trusted_answers_the_leftmost() {
    let got = lan().resolve(
        &xff(&["10.1.1.1, ::ffff:10.1.1.2, 10.1.1.3:8080"]),
        ip(PROXY),
    );
    assert_eq!(
        (got.ip(), got.by()),
        (ip("10.1.1.1"), ResolvedBy::AllTrusted { hops: 3 })
    );
}

#[test]
fn ports_brackets_quotes_and_mapped_entries() {
    for (entry, expected) in [
        ("203.0.113.9:5555", "203.0.113.9"),
        ("[2001:db8::9]:5555", "2001:db8::9"),
        ("2001:db8::9", "2001:db8::9"),
        ("\"[2001:db8::9]:80\"", "2001:db8::9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ] {
        assert_eq!(
            lan().client_ip(&xff(&[entry]), ip(PROXY)),
            ip(expected),
            "{entry}"
        );
    }
    // A mapped entry inside a trusted network is skipped as trusted.
    assert_eq!(
        lan().client_ip(&xff(&["203.0.113.9, ::ffff:10.5.5.5"]), ip(PROXY)),
        ip("203.0.113.9")
    );
}

#[test]
fn garbage_at_the_boundary_stops_the_walk_at_the_last_trusted_address() {
    for bad in [
        "garbage",
        "unknown",
        "_hidden",
        "",
        "203.0.113.300",
        "fe80::1%eth0",
        "1.2.3.4 5.6.7.8",
    ] {
        let header = format!("6.6.6.6, {bad}, 10.1.1.1");
        let got = lan().resolve(&xff(&[&header]), ip(PROXY));
        assert_eq!(
            (got.ip(), got.by()),
            (ip("10.1.1.1"), ResolvedBy::Unresolvable { hops: 2 }),
            "{bad:?}"
        );
    }
    // Directly at the proxy: the proxy itself is the answer, never 6.6.6.6.
    let got = lan().resolve(&xff(&["6.6.6.6, garbage"]), ip(PROXY));
    assert_eq!(
        (got.ip(), got.by()),
        (ip(PROXY), ResolvedBy::Unresolvable { hops: 1 })
    );
}

#[test]
fn non_ascii_bytes_are_garbage() {
    let mut map = HeaderMap::new();
    map.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"6.6.6.6, 203.0.113.\xff9").unwrap(),
    );
    assert_eq!(lan().client_ip(&map, ip(PROXY)), ip(PROXY));
}

#[test]
fn a_header_the_proxy_never_sets_is_never_read() {
    let forged = headers(&[("forwarded", "for=6.6.6.6"), ("x-real-ip", "6.6.6.6")]);
    // Configured for X-Forwarded-For, which is absent: no fall-back.
    assert_eq!(lan().client_ip(&forged, ip(PROXY)), ip(PROXY));
    // Configured for Forwarded: X-Forwarded-For is ignored.
    let proxies = lan().with_header(ClientIpHeader::Forwarded);
    let forged = headers(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=203.0.113.9"),
    ]);
    assert_eq!(proxies.client_ip(&forged, ip(PROXY)), ip("203.0.113.9"));
}

#[test]
fn forwarded_header() {
    let proxies = lan().with_header(ClientIpHeader::Forwarded);
    let cases = [
        (
            vec!["for=192.0.2.60;proto=http;by=203.0.113.43"],
            "192.0.2.60",
        ),
        (
            vec!["for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\""],
            "2001:db8:cafe::17",
        ),
        (
            vec!["For=\"192.0.2.43:47011\", for=10.1.1.1;proto=https"],
            "192.0.2.43",
        ),
        (
            vec!["for=6.6.6.6", "for=192.0.2.1", "for=10.1.1.1"],
            "192.0.2.1",
        ),
        // Quoted commas do not smuggle an element: the split halves are garbage.
        (vec!["for=\"6.6.6.6,x\""], PROXY),
        (vec!["for=unknown, for=10.1.1.1"], "10.1.1.1"),
        (vec!["for=_hidden"], PROXY),
        (vec!["proto=https"], PROXY),
        (vec!["for=192.0.2.1;for=192.0.2.2"], PROXY),
    ];
    for (lines, expected) in cases {
        let map = headers(&lines.iter().map(|l| ("forwarded", *l)).collect::<Vec<_>>());
        assert_eq!(
            proxies.client_ip(&map, ip(PROXY)),
            ip(expected),
            "{lines:?}"
        );
    }
}

#[test]
fn a_single_address_header_still_walks_past_forged_lines() {
    let proxies = lan().with_header(ClientIpHeader::Single(HeaderName::from_static("x-real-ip")));
    let map = headers(&[("x-real-ip", "203.0.113.9")]);
    assert_eq!(proxies.client_ip(&map, ip(PROXY)), ip("203.0.113.9"));
    let map = headers(&[("x-real-ip", "6.6.6.6"), ("x-real-ip", "203.0.113.9")]);
    assert_eq!(proxies.client_ip(&map, ip(PROXY)), ip("203.0.113.9"));
    // X-Forwarded-For is not X-Real-IP.
    assert_eq!(proxies.client_ip(&xff(&["6.6.6.6"]), ip(PROXY)), ip(PROXY));
}

#[test]
fn the_walk_is_capped_not_the_header() {
    let trusted: Vec<String> = (1..=40).map(|n| format!("10.0.0.{n}")).collect();
    let header = format!("203.0.113.9, {}", trusted.join(", "));
    let got = lan().resolve(&xff(&[&header]), ip(PROXY));
    // 16 entries examined from the right: 10.0.0.40 down to 10.0.0.25.
    assert_eq!(
        (got.ip(), got.by()),
        (ip("10.0.0.25"), ResolvedBy::HopLimit { hops: 16 })
    );
    let got = lan().with_max_hops(64).resolve(&xff(&[&header]), ip(PROXY));
    assert_eq!(
        (got.ip(), got.by()),
        (ip("203.0.113.9"), ResolvedBy::Forwarded { hops: 41 })
    );

    // A huge forged prefix costs nothing past the first untrusted entry.
    let huge = format!("{}203.0.113.9", "6.6.6.6,".repeat(100_000));
    assert_eq!(
        lan().client_ip(&xff(&[&huge]), ip(PROXY)),
        ip("203.0.113.9")
    );
}
