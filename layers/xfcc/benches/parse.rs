//! Parsing Envoy's documented 3-element XFCC example (target: under 1 µs)
//! against a plain `split(',')` / `split(';')` / `split_once('=')` baseline
//! that neither unquotes nor validates, in the same run.
//!
//! Run: `cargo bench -p portcullis-xfcc`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

/// Envoy's documentation's examples, joined as three hops.
const THREE: &str = concat!(
    r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#,
    ",By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com",
    ",By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com",
);

fn naive(input: &str) -> Vec<Vec<(&str, &str)>> {
    input
        .split(',')
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .collect()
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    // The naive split breaks on the comma inside the quoted Subject; the
    // input has none, so both see the same pairs.
    assert_eq!(naive(THREE).len(), 3);
    let mut group = c.benchmark_group("XFCC, Envoy's 3-element example");
    group.bench_function(
        "split(',') / split(';') / split_once('=') (baseline)",
        |b| b.iter(|| naive(black_box(THREE))),
    );
    group.bench_function("portcullis_xfcc::parse", |b| {
        b.iter(|| portcullis_xfcc::parse(black_box(THREE)))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
