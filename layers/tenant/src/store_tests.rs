//! Unit tests of `store.rs`.

use super::*;

fn parse(text: &str) -> Result<Records, String> {
    parse_records(Path::new("tenants.json"), text).map_err(|e| e.to_string())
}

#[test]
fn reads_the_documented_format() {
    let digest = BearerDigest::of_token("sk-1");
    let records = parse(&format!(
        r#"{{"keys": [
            {{"sha256": "{}", "tenant_id": "acme", "consumer": "billing", "active": true, "rate_per_min": 600, "burst": 20}},
            {{"principal": "spiffe://example.org/a", "tenant_id": "acme", "active": false}}
        ], "tenants": [{{"tenant_id": "globex", "active": false}}]}}"#,
        digest.to_hex()
    ))
    .unwrap();
    let Resolution::Active(t) = records.resolve(&Principal::Bearer(digest)) else {
        panic!("not active")
    };
    assert_eq!((t.id(), t.caller()), ("acme", Some("billing")));
    assert_eq!(t.quota(), Quota::per_minute(600, 20).ok());
    assert!(matches!(
        records.resolve(&Principal::SpiffeId("spiffe://example.org/a".into())),
        Resolution::Inactive(_)
    ));
    assert_eq!(records.tenants.get("globex"), Some(&TenantStatus::Inactive));
}

#[test]
fn bad_files_name_the_entry_and_the_fix() {
    let hex = BearerDigest::of_token("k").to_hex();
    for (text, expected) in [
        ("{", "not valid JSON at line 1 column 1"),
        (r#"{"keyz": []}"#, "an unknown field at line 1 column 7"),
        (
            r#"{"keys": [{"sha256": "00"}]}"#,
            "missing field `tenant_id`",
        ),
        (
            r#"{"keys": [{"tenant_id": "a"}]}"#,
            "keys[0]: give exactly one of sha256",
        ),
        (
            r#"{"keys": [{"sha256": "sk-live-1", "tenant_id": "a"}]}"#,
            "keys[0]: sha256 must be the 64 hex digits",
        ),
        (
            &format!(r#"{{"keys": [{{"sha256": "{hex}", "tenant_id": " "}}]}}"#),
            "keys[0]: tenant_id is empty",
        ),
        (
            &format!(r#"{{"keys": [{{"sha256": "{hex}", "tenant_id": "a", "burst": 2}}]}}"#),
            "together, or neither",
        ),
        (
            &format!(
                r#"{{"keys": [{{"sha256": "{hex}", "tenant_id": "a", "rate_per_min": 5, "burst": 0}}]}}"#
            ),
            "at least 1",
        ),
        (
            &format!(
                r#"{{"keys": [{{"sha256": "{hex}", "tenant_id": "a"}}, {{"sha256": "{hex}", "tenant_id": "b"}}]}}"#
            ),
            "keys[1]: the same key as keys[0]",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.starts_with("tenants file tenants.json: "), "{err}");
        assert!(err.contains(expected), "{text}: {err}");
        // A key pasted where its digest belongs is never echoed.
        assert!(!err.contains("sk-live-1"), "{err}");
    }
    // Nor one pasted into a field of another type.
    let err = parse(r#"{"keys": [{"sha256": "00", "tenant_id": "a", "burst": "sk-live-2"}]}"#)
        .unwrap_err();
    assert!(
        err.contains("a value of the wrong type at line 1 column 65"),
        "{err}"
    );
    assert!(!err.contains("sk-live-2"), "{err}");
    {}
}

#[test]
fn certificate_principals_are_kept_apart_by_kind() {
    let fingerprint = "ab".repeat(32);
    let records = parse(&format!(
        r#"{{"keys": [
            {{"principal": "spiffe://e2e.example/ns/a/sa/alice", "tenant_id": "spiffe"}},
            {{"principal": "alice", "tenant_id": "cn"}},
            {{"principal": "sha256:{fingerprint}", "tenant_id": "fp"}},
            {{"cn": "spiffe://e2e.example/ns/b/sa/bob", "tenant_id": "cn-explicit"}},
            {{"spiffe_id": "spiffe://e2e.example/ns/c/sa/carol", "tenant_id": "spiffe-explicit"}}
        ]}}"#
    ))
    .unwrap();
    let tenant = |principal: Principal| {
        records
            .resolve(&principal)
            .tenant()
            .map(|t| t.id().to_owned())
    };
    let alice = "spiffe://e2e.example/ns/a/sa/alice";
    assert_eq!(
        tenant(Principal::SpiffeId(alice.into())).as_deref(),
        Some("spiffe")
    );
    // A certificate whose CN reads like the SPIFFE ID is not it.
    assert_eq!(tenant(Principal::CommonName(alice.into())), None);
    assert_eq!(
        tenant(Principal::CommonName("alice".into())).as_deref(),
        Some("cn")
    );
    assert_eq!(
        tenant(Principal::Fingerprint(fingerprint.clone().into())).as_deref(),
        Some("fp")
    );
    assert_eq!(tenant(Principal::CommonName(fingerprint.into())), None);
    let bob = "spiffe://e2e.example/ns/b/sa/bob";
    assert_eq!(
        tenant(Principal::CommonName(bob.into())).as_deref(),
        Some("cn-explicit")
    );
    assert_eq!(tenant(Principal::SpiffeId(bob.into())), None);
    assert!(
        parse(r#"{"keys": [{"principal": "spiffe://Bad/..", "tenant_id": "a"}]}"#)
            .unwrap_err()
            .contains("keys[0]: principal: \"spiffe://Bad/..\" is not a valid SPIFFE ID")
    );
    assert!(
        parse(r#"{"keys": [{"cn": "a", "principal": "b", "tenant_id": "a"}]}"#)
            .unwrap_err()
            .contains("keys[0]: give exactly one of")
    );
}

#[test]
fn only_a_tenant_record_switches_a_whole_tenant_off() {
    let [on, off] = ["sk-on", "sk-off"].map(|k| BearerDigest::of_token(k).to_hex());
    let store = MemoryStore::from_tenants_json(
        "tenants.json",
        &format!(
            r#"{{"keys": [
                {{"sha256": "{off}", "tenant_id": "acme", "active": false}},
                {{"sha256": "{on}", "tenant_id": "globex", "active": false}}
            ], "tenants": [{{"tenant_id": "globex", "active": false}}]}}"#
        ),
    )
    .unwrap();
    // One inactive key says nothing of its tenant's other keys.
    assert_eq!(store.tenant_status("acme"), None);
    assert_eq!(store.tenant_status("globex"), Some(TenantStatus::Inactive));
    assert_eq!(store.tenant_status("initech"), None);
}

#[test]
fn a_half_plan_is_refused_alike_everywhere() {
    assert_eq!(plan_quota(None, None), Ok(None));
    assert_eq!(
        plan_quota(Some(60), Some(5)),
        Ok(Quota::per_minute(60, 5).ok())
    );
    assert!(plan_quota(Some(60), None).unwrap_err().contains("together"));
    assert!(plan_quota(None, Some(5)).unwrap_err().contains("together"));
    assert_eq!(
        plan_quota(Some(0), Some(5)).unwrap_err(),
        "rate_per_min and burst: the rate must be at least 1"
    );
    assert_eq!(
        plan_quota(Some(5), Some(0)).unwrap_err(),
        "rate_per_min and burst: the burst must be at least 1"
    );
}
