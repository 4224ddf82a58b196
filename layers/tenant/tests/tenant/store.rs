//! The file store: load, reload, a bad file keeps the last good records.

use portcullis_identity::env::Env;
use std::time::Duration;

use http::StatusCode;
use portcullis_identity::BearerDigest;
use portcullis_tenant::{FileStore, TenantLayer};
use portcullis_test_support::TempDir;

use crate::support::{Observed, request, run};

fn file(keys: &[(&str, &str, bool)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(token, tenant, active)| {
            format!(
                r#"{{"sha256": "{}", "tenant_id": "{tenant}", "active": {active}, "rate_per_min": 60, "burst": 5}}"#,
                BearerDigest::of_token(token).to_hex()
            )
        })
        .collect();
    format!(r#"{{"keys": [{}]}}"#, keys.join(","))
}

#[tokio::test]
async fn reloads_and_keeps_the_last_good_file() {
    let dir = TempDir::new("tenants");
    let path = dir.write("tenants.json", file(&[("sk-1", "acme", true)]));
    let store = FileStore::load(&path).unwrap();
    let layer = TenantLayer::new(store.clone());
    let out = run(&layer, request(&[("authorization", "Bearer sk-1")])).await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"]);
    assert_eq!(
        out.seen().tenant.as_ref().unwrap().quota().unwrap().burst(),
        5
    );

    dir.write(
        "tenants.json",
        file(&[("sk-2", "globex", true), ("sk-1", "acme", false)]),
    );
    assert_eq!(store.reload(), Ok(2));
    let out = run(&layer, request(&[("authorization", "Bearer sk-1")])).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let out = run(&layer, request(&[("authorization", "Bearer sk-2")])).await;
    assert_eq!(out.status, StatusCode::OK);

    // A broken file: refused, naming the file; the last good records stay.
    dir.write("tenants.json", "{\"keys\": [");
    let err = store.reload().unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("tenants file {path}: ")),
        "{err}"
    );
    let out = run(&layer, request(&[("authorization", "Bearer sk-2")])).await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn the_watcher_sees_a_kubernetes_style_swap() {
    let dir = TempDir::new("tenants-watch");
    let path = dir.write("tenants.json", file(&[("sk-1", "acme", true)]));
    let store = FileStore::load(&path).unwrap();
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = errors.clone();
    let _watcher = store
        .watch(move |e| seen.lock().unwrap().push(e.to_string()))
        .unwrap();
    let layer = TenantLayer::new(store);
    // Written elsewhere, renamed into place.
    dir.write("next.json", file(&[("sk-9", "umbrella", true)]));
    std::fs::rename(dir.join("next.json"), &path).unwrap();
    let mut status = StatusCode::UNAUTHORIZED;
    for _ in 0..100 {
        status = run(&layer, request(&[("authorization", "Bearer sk-9")]))
            .await
            .status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let error = FileStore::load(dir.join("missing.json")).unwrap_err();
    assert_eq!(error.path(), dir.join("missing.json"));
    assert!(error.problem().starts_with("cannot read it: "), "{error}");
}

#[tokio::test]
async fn a_watched_store_reloads_for_changes_only_not_its_own_reads_or_other_files() {
    let dir = TempDir::new("tenants-watched");
    let path = dir.write("tenants.json", file(&[("sk-1", "acme", true)]));
    let store = FileStore::load(&path).unwrap().watched().unwrap();
    assert_eq!(store.loads(), 1);
    dir.write("access.log", "a line");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.loads(), 1, "reloaded for another file");

    dir.write("tenants.json", file(&[("sk-2", "globex", true)]));
    for _ in 0..100 {
        if store.loads() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One write is a truncation and a write: one or two reloads, then
    // quiet; reading the file must not count as a change to it.
    let settled = store.loads();
    assert!((2..=3).contains(&settled), "{settled} loads");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.loads(), settled, "reloading without a change");
    let layer = TenantLayer::new(store);
    let out = run(&layer, request(&[("authorization", "Bearer sk-2")])).await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["globex"]);
}

#[test]
fn the_environment_wires_file_control_plane_and_policy() {
    let dir = TempDir::new("tenants-env");
    let path = dir.write("tenants.json", file(&[("sk-1", "acme", true)]));
    let env = |pairs: Vec<(&'static str, String)>| Env::from_pairs(pairs);
    assert!(TenantLayer::from_env(&env(vec![])).unwrap().is_none());
    let layer = TenantLayer::from_env(&env(vec![
        ("TENANTS_FILE", path.clone()),
        ("AUTH_POLICY", "bearer-or-cert".into()),
        ("TENANT_HEADER", "x-tenant".into()),
    ]))
    .unwrap()
    .unwrap();
    let debug = format!("{layer:?}");
    assert!(
        debug.contains("BearerOrCert") && debug.contains("x-tenant"),
        "{debug}"
    );
    for (pairs, expected) in [
        (
            vec![("TENANTS_FILE", dir.file("missing.json"))],
            "TENANTS_FILE",
        ),
        (
            vec![("CONTROL_PLANE_URL", "http://cp".to_owned())],
            "CONTROL_PLANE_URL: set without CONTROL_PLANE_INTERNAL_SECRET",
        ),
        (
            vec![
                ("TENANTS_FILE", path.clone()),
                ("AUTH_POLICY", "mtls".into()),
            ],
            "AUTH_POLICY=\"mtls\"",
        ),
        (
            vec![
                ("TENANTS_FILE", path.clone()),
                ("CALLER_HEADER", "bad header".into()),
            ],
            "CALLER_HEADER=\"bad header\"",
        ),
        (
            vec![
                ("CONTROL_PLANE_URL", "http://cp".into()),
                ("CONTROL_PLANE_INTERNAL_SECRET", "s".into()),
                ("CONTROL_PLANE_STALE_GRACE_SECS", "-1".into()),
            ],
            "CONTROL_PLANE_STALE_GRACE_SECS=\"-1\": not a number of seconds",
        ),
        (
            vec![("CONTROL_PLANE_CACHE_TTL_SECS", "5".into())],
            "CONTROL_PLANE_CACHE_TTL_SECS: set without CONTROL_PLANE_URL",
        ),
    ] {
        let err = TenantLayer::from_env(&env(pairs)).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    // An https control plane gets the outbound roots from the same
    // environment: no TLS configuration to wire by hand.
    let https = TenantLayer::from_env(&env(vec![
        ("CONTROL_PLANE_URL", "https://cp".into()),
        ("CONTROL_PLANE_INTERNAL_SECRET", "s".into()),
    ]));
    assert!(matches!(https, Ok(Some(_))), "{https:?}");
}

#[test]
fn every_tenant_setting_problem_is_reported_at_once() {
    let dir = TempDir::new("tenants-env-all");
    let env = [
        ("TENANTS_FILE", dir.file("missing.json")),
        ("CONTROL_PLANE_URL", "http://cp".to_owned()),
        ("CONTROL_PLANE_CACHE_TTL_SECS", "soon".to_owned()),
        ("AUTH_POLICY", "mtls".to_owned()),
        ("CALLER_HEADER", "bad header".to_owned()),
    ];
    let err = TenantLayer::from_env(&Env::from_pairs(env)).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    for (problem, expected) in problems.iter().zip([
        "TENANTS_FILE",
        "CONTROL_PLANE_CACHE_TTL_SECS=\"soon\"",
        "CONTROL_PLANE_URL: set without CONTROL_PLANE_INTERNAL_SECRET",
        "AUTH_POLICY=\"mtls\"",
        "CALLER_HEADER=\"bad header\"",
    ]) {
        assert!(problem.contains(expected), "{problem}");
    }
}
