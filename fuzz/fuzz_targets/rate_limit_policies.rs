//! `RATE_LIMIT_POLICIES`' syntax (`Policy::parse_list`): never panics;
//! what it accepts is valid, uniquely named, and reads back the same from
//! its own rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rate_limit::{MAX_POLICIES, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policies) = Policy::parse_list(text) else {
        return;
    };
    assert!(!policies.is_empty() && policies.len() <= MAX_POLICIES);
    let rendered: Vec<String> = policies
        .iter()
        .map(|p| {
            let q = p.quota();
            format!("{}:{}/{}s:{}", p.name(), q.rate(), q.period().as_secs(), q.burst())
        })
        .collect();
    let again = Policy::parse_list(&rendered.join(",")).unwrap();
    assert_eq!(again, policies);
});
