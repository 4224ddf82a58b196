//! The environment both whole-stack benches give `from_env`: the test
//! PKI's server certificate, client certificates required against its CA,
//! a tenants file knowing [`TOKEN`], and a CN-keyed rate limit that is
//! never exhausted.

use portcullis::identity::BearerDigest;
use portcullis_test_support::{TempDir, pki};

/// The bearer key the tenants file knows, as tenant `acme`.
pub(crate) const TOKEN: &str = "sk-bench-acme-0123456789";

/// The files the stack (and nginx, in the load bench) read.
pub(crate) struct StackFiles {
    pub(crate) dir: TempDir,
}

impl StackFiles {
    /// `server.pem`, `server.key`, `ca.pem` and `tenants.json` in a
    /// scratch directory named after `name`.
    pub(crate) fn new(name: &str) -> StackFiles {
        let dir = TempDir::new(name);
        let pki = pki();
        dir.write("server.pem", pki.end().chain_pem());
        dir.write("server.key", pki.end().key_pem());
        dir.write("ca.pem", pki.ca().cert_pem());
        dir.write(
            "tenants.json",
            format!(
                r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "consumer": "bench", "active": true}}]}}"#,
                BearerDigest::of_token(TOKEN).to_hex()
            ),
        );
        StackFiles { dir }
    }

    /// The variables `from_env` reads, naming these files.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TLS_CERT", self.dir.file("server.pem")),
            ("TLS_KEY", self.dir.file("server.key")),
            ("TLS_CLIENT_CA", self.dir.file("ca.pem")),
            ("TLS_CLIENT_AUTH", "required".to_owned()),
            ("TENANTS_FILE", self.dir.file("tenants.json")),
            ("RATE_LIMIT_PER_MIN", "100000000".to_owned()),
            ("RATE_LIMIT_BURST", "100000000".to_owned()),
            ("RATE_LIMIT_KEY", "cn".to_owned()),
        ]
    }
}
