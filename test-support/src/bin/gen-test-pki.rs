//! Writes the committed test PKI to `test-ca/ecdsa-p256/`.
//!
//! Run from anywhere in the workspace:
//! `cargo run -p portcullis-test-support --bin gen-test-pki`

use std::fs;
use std::path::Path;

use portcullis_test_support::{ClientProfile, IssuedCert, ThrowawayPki};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-ca/ecdsa-p256");
    fs::create_dir_all(&dir)?;
    let pki = ThrowawayPki::new("Portcullis Test")?;
    let ca_pem = pki.ca_pem();

    let write = |stem: &str, cert_pem: &str, der: &[u8], key_pem: &str, chain_pem: &str| {
        fs::write(dir.join(format!("{stem}.cert")), cert_pem)?;
        fs::write(dir.join(format!("{stem}.der")), der)?;
        fs::write(dir.join(format!("{stem}.key")), key_pem)?;
        fs::write(dir.join(format!("{stem}.chain")), chain_pem)?;
        if stem != "ca" {
            fs::write(
                dir.join(format!("{stem}.fullchain")),
                format!("{chain_pem}{ca_pem}"),
            )?;
        }
        Ok::<_, std::io::Error>(())
    };
    let write_issued = |stem: &str, cert: &IssuedCert| {
        write(
            stem,
            &cert.cert_pem,
            &cert.der,
            &cert.key_pem,
            &cert.chain_pem,
        )
    };

    write("ca", &ca_pem, &pki.ca_der(), &pki.ca_key_pem(), &ca_pem)?;
    let inter_pem = pki.inter_pem();
    write(
        "inter",
        &inter_pem,
        &pki.inter_der(),
        &pki.inter_key_pem(),
        &inter_pem,
    )?;
    write_issued("end", &pki.server()?)?;
    for profile in ClientProfile::ALL {
        write_issued(profile.file_stem(), &pki.client(profile)?)?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}
