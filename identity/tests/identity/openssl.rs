//! `subject()`, `issuer()`, `serial_hex()` and the fingerprint checked against
//! what the real `openssl` CLI prints, on certificates openssl made itself
//! and on the committed PKI.

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_identity::ClientIdentity;
use portcullis_test_support::{TempDir, interop_binary, pki};

struct Openssl {
    bin: PathBuf,
    dir: TempDir,
}

impl Openssl {
    fn find(test: &str) -> Option<Self> {
        let bin = interop_binary("openssl")?;
        let dir = TempDir::new(&format!("openssl-{test}"));
        for (name, mask) in [
            ("default.cnf", "default"),
            ("nombstr.cnf", "nombstr"),
            ("utf8.cnf", "utf8only"),
        ] {
            dir.write(
                name,
                format!("[req]\ndistinguished_name = dn\nstring_mask = {mask}\n[dn]\n"),
            );
        }
        Some(Openssl { bin, dir })
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Makes a self-signed certificate with `subject` (openssl `-subj`
    /// syntax) under a `string_mask` config, and returns its DER path.
    fn make(&self, name: &str, config: &str, subject: &str, multivalue: bool) -> PathBuf {
        let pem = self.dir.join(&format!("{name}.pem"));
        let der = self.dir.join(&format!("{name}.der"));
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-days",
            "1",
            "-utf8",
            "-config",
            config,
            "-subj",
            subject,
            "-out",
        ];
        let pem_str = pem.to_str().unwrap();
        args.push(pem_str);
        if multivalue {
            args.push("-multivalue-rdn");
        }
        self.run(&args);
        self.run(&[
            "x509",
            "-in",
            pem_str,
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        der
    }

    /// `openssl x509 -noout -<field> -nameopt RFC2253,-esc_msb`, the value
    /// after `field=`.
    fn field(&self, der: &Path, field: &str) -> String {
        let out = self.run(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-noout",
            &format!("-{field}"),
            "-nameopt",
            "RFC2253,-esc_msb",
        ]);
        let line = out.trim_end_matches('\n');
        line.split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    }
}

fn assert_matches_openssl(openssl: &Openssl, der_path: &Path) -> ClientIdentity {
    let der = std::fs::read(der_path).unwrap();
    let id = ClientIdentity::from_der(&der).unwrap();
    assert_eq!(
        id.subject(),
        openssl.field(der_path, "subject"),
        "subject of {der_path:?}"
    );
    assert_eq!(
        id.issuer(),
        openssl.field(der_path, "issuer"),
        "issuer of {der_path:?}"
    );
    let serial = openssl.field(der_path, "serial").to_ascii_lowercase();
    assert_eq!(
        id.serial_hex(),
        serial.trim_start_matches("00"),
        "serial of {der_path:?}"
    );
    let out = openssl.run(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        der_path.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fingerprint = out
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(id.fingerprint_sha256_hex(), fingerprint);
    id
}

#[test]
fn subjects_openssl_wrote() {
    let Some(openssl) = Openssl::find("subjects") else {
        return;
    };
    // (name, string_mask config, -subj, multi-valued RDNs, expected CN)
    let cases: &[(&str, &str, &str, bool, Option<&str>)] = &[
        (
            "specials",
            "default.cnf",
            r#"/C=US/O=Acme\, Inc./OU=R&D/CN=a\+b "q" <x>;\\z"#,
            false,
            Some(r#"a+b "q" <x>;\z"#),
        ),
        (
            "several-cns",
            "default.cnf",
            "/O=Org/CN=first/CN=second",
            false,
            Some("second"),
        ),
        (
            "multivalue",
            "default.cnf",
            "/DC=com/DC=example/O=Acme/CN=alice+UID=1001",
            true,
            Some("alice"),
        ),
        (
            "lead-trail",
            "default.cnf",
            r"/CN=\ lead/O=#hash/OU=trail \ ",
            false,
            Some(" lead"),
        ),
        (
            "attributes",
            "default.cnf",
            "/CN=x/emailAddress=a@example.com/serialNumber=42/street=Main St/title=Boss/GN=Ann/SN=Lee/L=Town/ST=State/postalCode=123",
            false,
            Some("x"),
        ),
        (
            "utf8",
            "utf8.cnf",
            "/O=Société Générale/CN=Zoë",
            false,
            Some("Zoë"),
        ),
        ("teletex", "nombstr.cnf", "/CN=José", false, Some("José")),
        ("bmp", "default.cnf", "/CN=日本 x", false, Some("日本 x")),
        ("no-cn", "default.cnf", "/O=Only Org", false, None),
    ];
    for &(name, config, subject, multivalue, cn) in cases {
        let der = openssl.make(name, config, subject, multivalue);
        let id = assert_matches_openssl(&openssl, &der);
        assert_eq!(id.common_name(), cn, "{name}");
    }
}

#[test]
fn several_common_names_are_all_listed() {
    let Some(openssl) = Openssl::find("several") else {
        return;
    };
    let der = openssl.make("several", "default.cnf", "/CN=first/CN=second", false);
    let id = ClientIdentity::from_der(&std::fs::read(der).unwrap()).unwrap();
    assert_eq!(
        id.common_names().collect::<Vec<_>>(),
        [Some("first"), Some("second")]
    );
    assert_eq!(id.subject(), "CN=second,CN=first");
}

#[test]
fn the_committed_pki_matches_openssl() {
    let Some(openssl) = Openssl::find("pki") else {
        return;
    };
    let pki = pki();
    let fixtures = [
        ("ca", pki.ca()),
        ("inter", pki.inter()),
        ("end", pki.end()),
        ("client", pki.client()),
        ("client-spiffe", pki.client_spiffe()),
        ("client-multi-uri", pki.client_multi_uri()),
        ("client-email", pki.client_email()),
        ("client-ip", pki.client_ip()),
        ("client-bmp", pki.client_bmp()),
        ("client-escape", pki.client_escape()),
        ("client-expired", pki.client_expired()),
    ];
    for (name, fixture) in fixtures {
        let path = openssl.dir.join(&format!("{name}.der"));
        std::fs::write(&path, fixture.der()).unwrap();
        assert_matches_openssl(&openssl, &path);
    }
}
