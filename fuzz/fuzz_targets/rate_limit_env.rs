//! The rate-limit environment (`RATE_LIMIT_KEY`, `RATE_LIMIT_PER_MIN`,
//! `RATE_LIMIT_BURST`, `RATE_LIMIT_MAX_KEYS`, `RATE_LIMIT_ON_STORE_ERROR`,
//! `USE_CERT_AS_PRINCIPAL`):
//! never panics; every refusal names a variable; an accepted quota is
//! usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::TrustedProxies;
use portcullis_rate_limit::RateLimitEnv;

const VARS: [&str; 6] = [
    "RATE_LIMIT_KEY",
    "RATE_LIMIT_PER_MIN",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_MAX_KEYS",
    "RATE_LIMIT_ON_STORE_ERROR",
    "USE_CERT_AS_PRINCIPAL",
];

fuzz_target!(|data: &[u8]| {
    let Some(lookup) = portcullis_fuzz::environment(&VARS, data) else {
        return;
    };
    let env = portcullis_identity::env::Env::from_fn(lookup);
    match RateLimitEnv::from_env(&env, &TrustedProxies::none()) {
        Ok(env) => {
            if let Some(quota) = env.default_quota() {
                assert!(quota.rate() > 0 && quota.burst() > 0);
            }
        }
        Err(error) => {
            for problem in error.problems() {
                assert!(VARS.contains(&problem.var()), "{problem}");
            }
        }
    }
});
