//! portcullis-identity against its baselines, in the same run:
//!
//! - `ClientIdentity::from_der` vs `x509_parser::parse_x509_certificate`
//!   alone on the same leaf (target: at most 1.3x), and with the lazily
//!   computed fingerprint forced.
//! - `TrustedProxies::client_ip` on a 5-entry `X-Forwarded-For` vs
//!   `client_ip::rightmost_x_forwarded_for` (the extraction axum-client-ip
//!   1.x runs for its `RightmostXForwardedFor` source; target: at most 1.0x).
//! - The bearer's SHA-256: the `sha2` crate against *ring*'s, paired
//!   rounds (the choice of digest rests on it).
//! - `ProtectedHeaders::strip` on a request's usual headers, none of them
//!   protected (what two layers do on every request).
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

/// The bearer's SHA-256, the largest single cost of the tenant layer on a
/// CPU without SHA extensions: the `sha2` crate against *ring*'s (already
/// in the tree through rustls), in paired rounds on a 40-byte API key.
fn bearer_digest(_: &mut Criterion) {
    use sha2::Digest;
    let token = b"sk-live-acme-0123456789abcdefghijklmnopqr";
    portcullis_test_support::paired_rounds(
        "bearer SHA-256 of a 40-byte key: sha2 -> ring",
        24,
        500_000,
        |ring, n| {
            let start = std::time::Instant::now();
            for _ in 0..n {
                let digest: [u8; 32] = if ring {
                    let d = ring::digest::digest(&ring::digest::SHA256, black_box(token));
                    let mut out = [0u8; 32];
                    out.copy_from_slice(d.as_ref());
                    out
                } else {
                    sha2::Sha256::digest(black_box(token)).into()
                };
                black_box(digest);
            }
            start.elapsed()
        },
    );
}

/// The protected-header pass on a request's usual headers, none of them
/// protected (the common case): what the tenant and forwarded-certificate
/// layers do on every request.
fn protected_headers(c: &mut Criterion) {
    use portcullis::identity::ProtectedHeaders;
    let protected = ProtectedHeaders::new([
        "x-llm-router-tenant",
        "x-llm-router-caller",
        "x-internal-secret",
        "x-forwarded-client-cert",
        "x-client-cert",
        "x-forwarded-tls-client-cert",
        "x-amzn-mtls-clientcert",
        "client-cert",
        "client-cert-chain",
        "ssl-client-cert",
    ]);
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("authorization", "Bearer sk-live-acme-0123456789"),
        ("content-type", "application/json"),
        ("x-request-id", "3f2a9c"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    c.bench_function("ProtectedHeaders::strip, 6 headers, none protected", |b| {
        b.iter(|| protected.strip(black_box(&mut headers), |_| false))
    });
}

criterion_group!(
    benches,
    certificate,
    client_ip,
    bearer_digest,
    protected_headers
);
criterion_main!(benches);
