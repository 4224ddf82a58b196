//! The examples as operators run them. SIGTERM, as an orchestrator sends
//! it, with a request in flight (held at a control plane the test
//! releases): the listener stops accepting at once, the request finishes,
//! and the process exits 0; with a grace shorter than the request, the
//! process exits 0 at the end of the grace without it. And the start-up
//! warnings reach the operator without the `tracing` feature.
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit",
    feature = "axum"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

#[path = "support/control_plane.rs"]
mod control_plane;

use control_plane::held_control_plane;
use portcullis_test_support::{Example, TempDir, curl, interop_binary};
use tokio::sync::watch;

const TOKEN: &str = "sk-shutdown-acme-0123456789";

/// Starts `name` against the held control plane with `grace`, and a
/// bearer request to it that waits there. Returns the example, the
/// request's (status, body) to come, and the release.
async fn request_in_flight(
    name: &str,
    grace: &str,
    dir: &TempDir,
) -> (
    Example,
    tokio::task::JoinHandle<(String, String)>,
    watch::Sender<bool>,
) {
    let (control_plane, mut calls, release) = held_control_plane().await;
    let example = Example::start(
        name,
        &[
            ("CONTROL_PLANE_URL", &format!("http://{control_plane}")),
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            ("SHUTDOWN_GRACE_SECS", grace),
        ],
        dir.join("example.log"),
    );
    let url = format!("http://{}/whoami", example.addr());
    let request = tokio::task::spawn_blocking(move || {
        let out = curl(&[
            "-H".to_owned(),
            format!("authorization: Bearer {TOKEN}"),
            url,
        ]);
        (out.status, out.body)
    });
    // The request is in flight once the control plane has it.
    tokio::time::timeout(Duration::from_secs(20), calls.recv())
        .await
        .expect("the request never reached the control plane");
    (example, request, release)
}

/// Whether new connections are refused (the listener closed), polled
/// for up to 10 s after SIGTERM.
async fn refuses_new_connections(addr: SocketAddr) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    if interop_binary("curl").is_none() {
        return;
    }
    for name in ["axum", "hyper"] {
        let dir = TempDir::new("shutdown-finish");
        let (mut example, request, release) = request_in_flight(name, "30", &dir).await;
        example.terminate();
        assert!(
            refuses_new_connections(example.addr()).await,
            "{name} still accepts"
        );
        release.send(true).unwrap();
        let (status, body) = request.await.unwrap();
        assert_eq!(status, "200", "{name}: {body}");
        assert!(body.contains(r#""id":"acme""#), "{name}: {body}");
        let exit = tokio::task::spawn_blocking(move || {
            let status = example.wait_exit(Duration::from_secs(30));
            (status, example.log_text())
        })
        .await
        .unwrap();
        assert!(exit.0.is_some_and(|s| s.success()), "{name}: {exit:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_it_exits_0_without_the_request() {
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("shutdown-grace");
    let (mut example, request, release) = request_in_flight("axum", "0.2", &dir).await;
    example.terminate();
    // Exits while the control plane still holds the request.
    let exit = tokio::task::spawn_blocking(move || example.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    let (status, body) = request.await.unwrap();
    assert_eq!(status, "000", "{body}");
    release.send(true).unwrap();
}

#[tokio::test]
async fn the_examples_print_their_start_up_warnings() {
    for name in ["axum", "hyper"] {
        let dir = TempDir::new("warnings");
        let pki = portcullis_test_support::pki();
        let cert = dir.write("server.pem", pki.end().chain_pem());
        let key = dir.write("server.key", pki.end().key_pem());
        let ca = dir.write("ca.pem", pki.ca().cert_pem());
        let mut example = Example::start(
            name,
            &[
                ("TLS_CERT", &cert),
                ("TLS_KEY", &key),
                ("TLS_CLIENT_CA", &ca),
            ],
            dir.join("example.log"),
        );
        let log = example.log_text();
        example.kill();
        assert!(
            log.contains("warning: TLS_CLIENT_CA: set without TLS_CLIENT_AUTH: client certificates are now required"),
            "{name}: {log}"
        );
        assert!(
            log.contains("warning: TENANTS_FILE: no tenants are configured"),
            "{name}: {log}"
        );
    }
}
