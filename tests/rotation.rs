//! Certificate rotation as Kubernetes does it, under a running `axum`
//! example that wires nothing for it: the secret's files are links
//! through `..data` to a timestamped directory, and a renewal swaps the
//! `..data` link in one rename. The next handshake serves the renewed
//! certificate; a renewal with a broken key changes nothing, and is
//! counted (read from the example's metrics endpoint).
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit",
    feature = "axum",
    feature = "metrics"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use portcullis_test_support::client::tls_stream;
use portcullis_test_support::{Example, IssuedCert, TempDir, ThrowawayPki, curl, interop_binary};

/// Writes `cert` and `key` into a new `..<version>` directory of the
/// mounted secret at `mount` and swaps `..data` to it in one rename, as
/// the kubelet does.
fn publish(mount: &Path, version: &str, cert: &str, key: &str) {
    let versioned = mount.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), cert).unwrap();
    std::fs::write(versioned.join("tls.key"), key).unwrap();
    let next = mount.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &next).unwrap();
    std::fs::rename(&next, mount.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = mount.join(file);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), link).unwrap();
        }
    }
}

/// The certificate the server presents on a new handshake.
async fn served(addr: SocketAddr, ca: &str) -> Vec<u8> {
    let stream = tls_stream(addr, ca, None, &[b"http/1.1"]).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Polls for up to 10 s until the served certificate is `expected`.
async fn serves(addr: SocketAddr, ca: &str, expected: &IssuedCert) -> bool {
    for _ in 0..200 {
        if served(addr, ca).await == expected.der {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// An `axum` example serving a secret mounted at `<dir>/tls`, its first
/// certificate published (`..2026_11_01`), with `extra` in its
/// environment.
struct Mounted {
    dir: TempDir,
    mount: std::path::PathBuf,
    pki: ThrowawayPki,
    ca: String,
    first: IssuedCert,
    example: Example,
}

fn mounted(name: &str, extra: (&str, &str)) -> Mounted {
    let dir = TempDir::new(name);
    let mount = dir.path().join("tls");
    std::fs::create_dir(&mount).unwrap();
    let pki = ThrowawayPki::new(name).unwrap();
    let ca = pki.ca_pem();
    let first = pki.server().unwrap();
    publish(&mount, "2026_11_01", &first.chain_pem, &first.key_pem);
    let example = Example::start(
        "axum",
        &[
            ("TLS_CERT", mount.join("tls.crt").to_str().unwrap()),
            ("TLS_KEY", mount.join("tls.key").to_str().unwrap()),
            extra,
        ],
        dir.join("example.log"),
    );
    Mounted {
        dir,
        mount,
        pki,
        ca,
        first,
        example,
    }
}

fn failed_tls_reloads(metrics: &str) -> f64 {
    let out = curl(&[metrics.to_owned()]);
    assert_eq!(out.status, "200", "{out:?}");
    out.body
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"portcullis_reloads_total{what="tls",result="error"} "#)
        })
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_secret_is_served_without_a_restart_and_a_broken_one_changes_nothing() {
    if interop_binary("curl").is_none() {
        return;
    }
    let Mounted {
        dir,
        mount,
        pki,
        ca,
        first,
        example,
    } = mounted("rotation", ("METRICS_ADDR", "127.0.0.1:0"));
    let metrics = example.metrics_url().unwrap().to_owned();
    assert_eq!(served(example.addr(), &ca).await, first.der);

    let renewed = pki.server().unwrap();
    publish(&mount, "2026_11_29", &renewed.chain_pem, &renewed.key_pem);
    assert!(
        serves(example.addr(), &ca, &renewed).await,
        "the renewed certificate was never served:\n{}",
        example.log_text()
    );

    // A renewal whose key does not parse: the last good one stays.
    publish(
        &mount,
        "2026_12_01",
        &pki.server().unwrap().chain_pem,
        "not a key",
    );
    let witness = metrics.clone();
    let counted = tokio::task::spawn_blocking(move || {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            failed_tls_reloads(&witness) >= 1.0
        })
    })
    .await
    .unwrap();
    assert!(counted, "the broken renewal was never tried");
    assert_eq!(served(example.addr(), &ca).await, renewed.der);
    // And the service still answers over it.
    let port = example.addr().port();
    let ca_file = dir.write("ca.pem", &ca);
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "--cacert".to_owned(),
            ca_file,
            "--resolve".to_owned(),
            format!("localhost:{port}:127.0.0.1"),
            format!("https://localhost:{port}/whoami"),
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status, "200", "{out:?}");
}

#[tokio::test]
async fn tls_reload_false_keeps_the_files_it_started_with() {
    let Mounted {
        dir: _dir,
        mount,
        pki,
        ca,
        first,
        example,
    } = mounted("rotation-off", ("TLS_RELOAD", "false"));
    let renewed = pki.server().unwrap();
    publish(&mount, "2026_11_29", &renewed.chain_pem, &renewed.key_pem);
    // Nothing to wait for but time: a watcher would have reloaded well
    // within this (its settle time is 0.2 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(served(example.addr(), &ca).await, first.der);
}
