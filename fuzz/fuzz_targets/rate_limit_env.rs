//! The rate-limit environment (`RATE_LIMIT_KEY`, `RATE_LIMIT_PER_MIN`,
//! `RATE_LIMIT_BURST`, `RATE_LIMIT_POLICIES`, `RATE_LIMIT_COST_HEADER`,
//! `RATE_LIMIT_MAX_KEYS`, `RATE_LIMIT_ON_STORE_ERROR`,
//! `USE_CERT_AS_PRINCIPAL`): never panics; every refusal names a
//! variable; accepted policies are usable, uniquely named and few enough.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity::TrustedProxies;
use portcullis_rate_limit::{MAX_POLICIES, RateLimitEnv};

const VARS: [&str; 8] = [
    "RATE_LIMIT_KEY",
    "RATE_LIMIT_PER_MIN",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_POLICIES",
    "RATE_LIMIT_COST_HEADER",
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
            let policies = env.policies();
            assert!(policies.len() <= MAX_POLICIES);
            for (index, policy) in policies.iter().enumerate() {
                let quota = policy.quota();
                assert!(quota.rate() > 0 && quota.burst() > 0);
                assert!(policies[..index].iter().all(|p| p.name() != policy.name()));
            }
        }
        Err(error) => {
            for problem in error.problems() {
                assert!(VARS.contains(&problem.var()), "{problem}");
            }
        }
    }
});
