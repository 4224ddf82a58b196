//! portcullis-identity against its baselines, in the same run:
//!
//! - `ClientIdentity::from_der` vs `x509_parser::parse_x509_certificate`
//!   alone on the same leaf (target: at most 1.3x), and with the lazily
//!   computed fingerprint forced.
//! - `TrustedProxies::client_ip` on a 5-entry `X-Forwarded-For` vs
//!   `client_ip::rightmost_x_forwarded_for` (the extraction axum-client-ip
//!   1.x runs for its `RightmostXForwardedFor` source; target: at most 1.0x).
//!
//! Run: `cargo bench --bench identity`

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use portcullis::identity::{ClientIdentity, TrustedProxies};

fn certificate(c: &mut Criterion) {
    let der = portcullis_test_support::pki().client_spiffe().der();
    let mut group = c.benchmark_group("leaf certificate");
    group.bench_function("x509-parser parse_x509_certificate (baseline)", |b| {
        b.iter(|| {
            x509_parser::parse_x509_certificate(black_box(der)).map(|(_, cert)| cert.version())
        })
    });
    group.bench_function("portcullis ClientIdentity::from_der", |b| {
        b.iter(|| ClientIdentity::from_der(black_box(der)))
    });
    // The fingerprint is hashed on first use; this is the cost when a caller
    // keys by it (software SHA-256 on CPUs without SHA extensions).
    group.bench_function("portcullis from_der + fingerprint_sha256", |b| {
        b.iter(|| ClientIdentity::from_der(black_box(der)).map(|id| id.fingerprint_sha256()))
    });
    group.finish();
}

fn client_ip(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static(
            "198.51.100.7, 203.0.113.50, 192.0.2.33, 198.51.100.99, 203.0.113.195",
        ),
    );
    // The common deployment: one trusted load balancer in front.
    let one_proxy = TrustedProxies::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
    // A chain: the four rightmost entries are our own proxies.
    let chain = TrustedProxies::parse(
        "10.0.0.0/8, 203.0.113.50/32, 192.0.2.33/32, 198.51.100.99/32, 203.0.113.195/32",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let peer: IpAddr = [10, 0, 0, 2].into();

    let mut group = c.benchmark_group("client ip, 5-entry X-Forwarded-For");
    group.bench_function("client-ip rightmost_x_forwarded_for (baseline)", |b| {
        b.iter(|| client_ip::rightmost_x_forwarded_for(black_box(&headers)))
    });
    group.bench_function("portcullis client_ip, trusted peer", |b| {
        b.iter(|| one_proxy.client_ip(black_box(&headers), black_box(peer)))
    });
    group.bench_function("portcullis client_ip, 4 trusted hops walked", |b| {
        b.iter(|| chain.client_ip(black_box(&headers), black_box(peer)))
    });
    group.finish();
}

criterion_group!(benches, certificate, client_ip);
criterion_main!(benches);
