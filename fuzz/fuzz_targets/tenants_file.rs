//! The tenants-file parser on anything: never panics, errors name the
//! file, and an error never repeats a string the file held (a key pasted
//! into the wrong field must not reach a log), field names aside.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_tenant::MemoryStore;

const FIELDS: [&str; 9] = [
    "keys", "tenants", "sha256", "principal", "tenant_id", "consumer", "active", "rate_per_min", "burst",
];

fuzz_target!(|input: &str| {
    let Err(error) = MemoryStore::from_tenants_json("tenants.json", input) else {
        return;
    };
    let error = error.to_string();
    assert!(error.starts_with("tenants file tenants.json: "));
    for (i, value) in input.split('"').enumerate() {
        // Key-like: what a pasted secret looks like, unlike a field name.
        let key_like = value.len() >= 6
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && value.bytes().any(|b| b == b'-' || b.is_ascii_uppercase());
        if i % 2 == 1 && key_like && !FIELDS.contains(&value) {
            assert!(!error.contains(value), "{value:?} echoed in {error}");
        }
    }
});
