//! Hot reload against real files: rotation, garbage, and the Kubernetes
//! `..data` symlink swap.

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use portcullis_client_cert::{ClientCertLayer, ReloadStats, TlsAcceptor, TlsFiles, TlsReloader};
use portcullis_test_support::{IssuedCert, TempDir, ThrowawayPki};

use crate::support::{Http, get, spawn_with};

/// Writes a file the way careful tools do: a temporary name, then a rename.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_for(stats: &ReloadStats, what: impl Fn(&ReloadStats) -> bool) {
    for _ in 0..200 {
        if what(stats) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reload never happened: {stats:?}");
}

fn server_cert(pki: &ThrowawayPki) -> IssuedCert {
    pki.server().unwrap()
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_clients_and_garbage_keeps_it() {
    let dir = TempDir::new("rotate");
    let (old_pki, new_pki) = (
        ThrowawayPki::new("Old").unwrap(),
        ThrowawayPki::new("New").unwrap(),
    );
    let (old, new) = (server_cert(&old_pki), server_cert(&new_pki));
    let files = TlsFiles::new(dir.join("cert.pem"), dir.join("key.pem"));
    replace(&files.cert, &old.chain_pem);
    replace(&files.key, &old.key_pem);

    let acceptor = TlsAcceptor::new(files.load().unwrap().build().unwrap());
    let reloader = TlsReloader::watch(acceptor.clone(), files.clone()).unwrap();
    let server = spawn_with(acceptor, ClientCertLayer::new()).await;
    assert_eq!(
        get(server.addr, &old_pki.ca_pem(), None, Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );

    // Key first: until the certificate follows, the pair does not match and
    // the reload must not take.
    replace(&files.key, &new.key_pem);
    replace(&files.cert, &new.chain_pem);
    wait_for(reloader.stats(), |s| s.succeeded() >= 1).await;
    // A reload reads the files; those reads are not changes to reload for
    // (else it would reload forever), and neither is a file beside them.
    let settled = reloader.stats().succeeded();
    std::fs::write(dir.join("unrelated.log"), "a line").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        reloader.stats().succeeded(),
        settled,
        "reloaded without a change"
    );
    assert_eq!(
        get(server.addr, &new_pki.ca_pem(), None, Http::H2)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
    let err = get(server.addr, &old_pki.ca_pem(), None, Http::H2)
        .await
        .unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");

    // Garbage: the reload fails, says why, and the new certificate stays.
    let succeeded = reloader.stats().succeeded();
    replace(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    );
    wait_for(reloader.stats(), |s| s.failed() >= 1).await;
    let error = reloader.stats().last_error().unwrap();
    assert!(
        error.contains("cert.pem") && error.contains("not valid base64"),
        "{error}"
    );
    assert_eq!(reloader.stats().succeeded(), succeeded);
    assert_eq!(
        get(server.addr, &new_pki.ca_pem(), None, Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;

    let dir = TempDir::new("k8s");
    let (old_pki, new_pki) = (
        ThrowawayPki::new("Old").unwrap(),
        ThrowawayPki::new("New").unwrap(),
    );
    let (old, new) = (server_cert(&old_pki), server_cert(&new_pki));
    // The layout the kubelet writes for a mounted Secret.
    let version = |name: &str, cert: &IssuedCert| {
        let v = dir.join(name);
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("tls.crt"), &cert.chain_pem).unwrap();
        std::fs::write(v.join("tls.key"), &cert.key_pem).unwrap();
    };
    version("..2026_11_26_v1", &old);
    symlink("..2026_11_26_v1", dir.join("..data")).unwrap();
    symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
    symlink("..data/tls.key", dir.join("tls.key")).unwrap();

    let files = TlsFiles::new(dir.join("tls.crt"), dir.join("tls.key"));
    let acceptor = TlsAcceptor::new(files.load().unwrap().build().unwrap());
    let reloader = TlsReloader::watch(acceptor.clone(), files).unwrap();
    let server = spawn_with(acceptor, ClientCertLayer::new()).await;
    assert_eq!(
        get(server.addr, &old_pki.ca_pem(), None, Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );

    // The swap: a new version directory, a new link, one atomic rename.
    version("..2026_11_26_v2", &new);
    symlink("..2026_11_26_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_for(reloader.stats(), |s| s.succeeded() >= 1).await;
    assert_eq!(
        get(server.addr, &new_pki.ca_pem(), None, Http::H1)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reload_now_rebuilds_without_a_file_event() {
    let dir = TempDir::new("now");
    let pki = ThrowawayPki::new("Now").unwrap();
    let cert = server_cert(&pki);
    let files = TlsFiles::new(dir.join("cert.pem"), dir.join("key.pem"));
    replace(&files.cert, &cert.chain_pem);
    replace(&files.key, &cert.key_pem);
    let acceptor = TlsAcceptor::new(files.load().unwrap().build().unwrap());
    let reloader = TlsReloader::watch(acceptor, files).unwrap();
    reloader.reload_now();
    wait_for(reloader.stats(), |s| s.succeeded() == 1).await;
    assert_eq!(reloader.stats().failed(), 0);
}
