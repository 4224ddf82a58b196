//! The Prometheus endpoint as a scraper meets it: the `axum` example run
//! with `METRICS_ADDR`, real requests through curl (mTLS, a control plane,
//! a client of another CA, a forged header, the internal route), and the
//! endpoint scraped over HTTP before and after: every counter the requests
//! should move has moved, every series is described, and the gauges hold
//! the levels the requests left.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit",
    feature = "axum",
    feature = "metrics"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/control_plane.rs"]
mod control_plane;

use std::collections::BTreeMap;

use control_plane::held_control_plane;

use portcullis::identity::observe::{METRICS, MetricKind};
use portcullis_test_support::{
    ClientProfile, Example, TempDir, ThrowawayPki, curl, interop_binary,
};

const TOKEN: &str = "sk-metrics-acme-0123456789";

/// The samples of a Prometheus text page: `name{labels}` → value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(url: &str) -> (String, BTreeMap<String, f64>) {
    let out = curl(&[url.to_owned()]);
    assert_eq!(out.status, "200", "{out:?}");
    let page = out.body;
    let samples = samples(&page);
    (page, samples)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_shows_what_the_requests_did() {
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("metrics");
    let pki = ThrowawayPki::new("metrics").unwrap();
    let server = pki.server().unwrap();
    let server_der = server.der.clone();
    let client = pki.client(ClientProfile::Plain).unwrap();
    let stranger_pki = ThrowawayPki::new("stranger").unwrap();
    let stranger = stranger_pki.client(ClientProfile::Plain).unwrap();
    let (control_plane, _calls, release) = held_control_plane().await;
    release.send(true).unwrap();
    let example = Example::start(
        "axum",
        &[
            ("TLS_CERT", &dir.write("server.pem", &server.chain_pem)),
            ("TLS_KEY", &dir.write("server.key", &server.key_pem)),
            ("TLS_CLIENT_CA", &dir.write("ca.pem", pki.ca_pem())),
            ("TLS_CLIENT_AUTH", "required"),
            ("CONTROL_PLANE_URL", &format!("http://{control_plane}")),
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            ("RATE_LIMIT_PER_MIN", "600"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
        dir.join("example.log"),
    );
    let metrics = example
        .metrics_url()
        .expect("the example printed no metrics endpoint")
        .to_owned();
    let port = example.addr().port();
    let client_cert = dir.write("client.pem", &client.chain_pem);
    let client_key = dir.write("client.key", &client.key_pem);
    let stranger_cert = dir.write("stranger.pem", &stranger.chain_pem);
    let stranger_key = dir.write("stranger.key", &stranger.key_pem);
    let ca = dir.file("ca.pem");
    let ca_der = pki.ca_der();

    let checks = tokio::task::spawn_blocking(move || {
        let (_, before) = scrape(&metrics);
        let https = |path: &str, cert: &str, key: &str, headers: &[&str]| {
            let mut args = vec![
                "--cacert".to_owned(),
                ca.clone(),
                "--cert".to_owned(),
                cert.to_owned(),
                "--key".to_owned(),
                key.to_owned(),
                "--resolve".to_owned(),
                format!("localhost:{port}:127.0.0.1"),
            ];
            for header in headers {
                args.push("-H".to_owned());
                args.push((*header).to_owned());
            }
            args.push(format!("https://localhost:{port}{path}"));
            curl(&args)
        };
        let bearer = format!("authorization: Bearer {TOKEN}");
        // A miss at the control plane, then a hit.
        for _ in 0..2 {
            let out = https("/whoami", &client_cert, &client_key, &[&bearer]);
            assert_eq!(out.status, "200", "{out:?}");
            assert!(out.body.contains(r#""id":"acme""#), "{out:?}");
        }
        // A forged tenant header: removed, and the request served.
        let out = https(
            "/whoami",
            &client_cert,
            &client_key,
            &[&bearer, "x-llm-router-tenant: evil"],
        );
        assert_eq!(out.status, "200", "{out:?}");
        assert!(!out.body.contains("evil"), "{out:?}");
        // A malformed bearer: refused by the tenant layer.
        let out = https(
            "/whoami",
            &client_cert,
            &client_key,
            &["authorization: Bearer a b"],
        );
        assert!(out.status.starts_with('4'), "{out:?}");
        // The internal route without its secret.
        let out = https("/internal/usage", &client_cert, &client_key, &[]);
        assert_eq!(out.status, "403", "{out:?}");
        // A client certificate from a CA the server does not trust.
        let out = https("/whoami", &stranger_cert, &stranger_key, &[&bearer]);
        assert_eq!(out.status, "000", "{out:?}");

        let (page, after) = scrape(&metrics);
        (before, page, after)
    });
    let (before, page, after) = checks.await.unwrap();
    let moved = |series: &str| value(&after, series) - value(&before, series);

    assert_eq!(
        moved(r#"portcullis_tenant_cache_total{result="miss"}"#),
        1.0,
        "{page}"
    );
    assert!(
        moved(r#"portcullis_tenant_cache_total{result="hit"}"#) >= 2.0,
        "{page}"
    );
    assert_eq!(
        moved(r#"portcullis_headers_stripped_total{layer="tenant"}"#),
        1.0,
        "{page}"
    );
    assert!(
        after.iter().any(|(series, v)| series
            .starts_with(r#"portcullis_rejections_total{layer="tenant""#)
            && *v >= 1.0),
        "{page}"
    );
    assert!(
        moved(r#"portcullis_rate_limit_total{decision="allowed"}"#) >= 3.0,
        "{page}"
    );
    assert_eq!(
        moved(r#"portcullis_internal_refusals_total{reason="internal_secret_wrong"}"#),
        1.0,
        "{page}"
    );
    assert_eq!(
        moved(r#"portcullis_handshake_failures_total{reason="unknown_issuer"}"#),
        1.0,
        "{page}"
    );
    assert_eq!(
        moved(r#"portcullis_control_plane_duration_seconds_count{result="ok"}"#),
        1.0,
        "{page}"
    );
    // The gauges, sampled at the scrape.
    assert_eq!(
        value(&after, "portcullis_tenant_cache_entries"),
        1.0,
        "{page}"
    );
    assert!(
        value(&after, "portcullis_rate_limit_buckets") >= 1.0,
        "{page}"
    );
    let days_left = |der: &[u8]| {
        let not_after = portcullis::identity::ClientIdentity::from_der(der)
            .unwrap()
            .not_after();
        not_after
            .duration_since(std::time::SystemTime::now())
            .unwrap()
            .as_secs_f64()
            / 86_400.0
    };
    for (certificate, der) in [("server", server_der.as_slice()), ("client_ca", &ca_der)] {
        let shown = value(
            &after,
            &format!(r#"portcullis_certificate_expiry_days{{certificate="{certificate}"}}"#),
        );
        assert!(
            (shown - days_left(der)).abs() < 1.0,
            "{certificate}: {page}"
        );
    }
    // Every series shown is one of ours, described, of its kind.
    for metric in METRICS {
        if !page.contains(&format!("\n{}", metric.name)) {
            continue;
        }
        assert!(
            page.contains(&format!("# HELP {} {}", metric.name, metric.help)),
            "{} undescribed:\n{page}",
            metric.name
        );
        let kind = match metric.kind {
            MetricKind::Counter => "counter",
            MetricKind::Histogram => "histogram",
            MetricKind::Gauge => "gauge",
        };
        assert!(
            page.contains(&format!("# TYPE {} {kind}", metric.name)),
            "{}:\n{page}",
            metric.name
        );
    }
}

#[test]
fn the_readme_lists_every_metric_with_its_labels() {
    let readme = include_str!("../README.md");
    for metric in METRICS {
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", metric.name)))
            .unwrap_or_else(|| panic!("README has no row for {}", metric.name));
        for label in metric.labels {
            assert!(row.contains(&format!("`{label}`")), "{row}: no {label}");
        }
    }
}
