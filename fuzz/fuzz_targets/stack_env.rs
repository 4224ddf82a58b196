//! The whole environment table as `portcullis::from_env` reads it,
//! but for the variables that name files or Redis: never panics, and every
//! problem it reports names one of the variables it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

const VARS: [&str; 21] = [
    "LISTEN_ADDR",
    "USE_CERT_AS_PRINCIPAL",
    "TLS_CLIENT_AUTH",
    "TRUSTED_PROXY_CIDRS",
    "CLIENT_IP_HEADER",
    "FORWARDED_CERT_FORMAT",
    "FORWARDED_CERT_HEADER",
    "CONTROL_PLANE_URL",
    "CONTROL_PLANE_INTERNAL_SECRET",
    "CONTROL_PLANE_CACHE_TTL_SECS",
    "CONTROL_PLANE_NEGATIVE_TTL_SECS",
    "CONTROL_PLANE_STALE_GRACE_SECS",
    "AUTH_POLICY",
    "TENANT_HEADER",
    "CALLER_HEADER",
    "RATE_LIMIT_KEY",
    "RATE_LIMIT_PER_MIN",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_MAX_KEYS",
    "RATE_LIMIT_ON_STORE_ERROR",
    "TLS_CLIENT_CRL",
];

/// One runtime for every input: building one is most of an input's cost.
static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

fuzz_target!(|data: &[u8]| {
    let Some(lookup) = portcullis_fuzz::environment(&VARS, data) else {
        return;
    };
    let env = portcullis::identity::env::Env::from_fn(lookup);
    if let Err(error) = RUNTIME.block_on(portcullis::from_env(&env)) {
        for problem in error.problems() {
            // An https control plane reads the outbound roots too.
            assert!(
                VARS.contains(&problem.var()) || problem.var() == "PORTCULLIS_CA_CERTIFICATE",
                "a problem naming no variable it was given: {problem}"
            );
        }
    }
});
