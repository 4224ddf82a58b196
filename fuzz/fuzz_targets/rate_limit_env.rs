//! The rate-limit environment (`RATE_LIMIT_KEY`, `RATE_LIMIT_PER_MIN`,
//! `RATE_LIMIT_BURST`, `RATE_LIMIT_MAX_KEYS`, `RATE_LIMIT_ON_STORE_ERROR`):
//! never panics; every refusal names a variable; an accepted quota is
//! usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::TrustedProxies;
use portcullis_rate_limit::RateLimitEnv;

const VARS: [&str; 5] = [
    "RATE_LIMIT_KEY",
    "RATE_LIMIT_PER_MIN",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_MAX_KEYS",
    "RATE_LIMIT_ON_STORE_ERROR",
];

fuzz_target!(|data: &[u8]| {
    let Some(lookup) = portcullis_fuzz::environment(&VARS, data) else {
        return;
    };
    match RateLimitEnv::from_env_with(lookup, &TrustedProxies::none()) {
        Ok(env) => {
            if let Some(quota) = env.default_quota() {
                assert!(quota.rate() > 0 && quota.burst() > 0);
            }
        }
        Err(error) => {
            for problem in error.problems() {
                assert!(problem.starts_with("RATE_LIMIT_"), "{problem}");
            }
        }
    }
});
