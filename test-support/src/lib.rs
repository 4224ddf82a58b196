//! Test PKI and helpers for portcullis's tests, examples and benches.
//!
//! - [`pki`]: the committed test PKI under `test-ca/ecdsa-p256/` (root CA,
//!   intermediate, server and client certificates, client variants for every
//!   `ClientIdentity` field), embedded at compile time.
//! - [`ThrowawayPki`]: the same shapes made fresh with rcgen, for the demo
//!   and for certificates a test needs once (a wrong CA, an expiry).
//! - [`client`]: a real rustls + hyper client, with or without a client
//!   certificate, over HTTP/1.1 or h2.
//! - [`interop_binary`]: find an outside tool (openssl, curl, nginx), or skip
//!   with a notice, or fail when `PORTCULLIS_INTEROP=require`.
//!
//! Regenerate the committed PKI with
//! `cargo run -p portcullis-test-support --bin gen-test-pki`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
mod example;

pub use example::Example;

use std::net::IpAddr;
use std::path::PathBuf;

use rcgen::string::{BmpString, Ia5String};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};

/// One certificate of the committed PKI.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    cert: &'static str,
    der: &'static [u8],
    key: &'static str,
    chain: &'static str,
}

impl Fixture {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> &'static str {
        self.cert
    }

    /// The certificate as DER.
    pub fn der(&self) -> &'static [u8] {
        self.der
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &'static str {
        self.key
    }

    /// The certificate followed by the intermediate, as PEM (what a server
    /// or client sends). For the CAs, just the certificate.
    pub fn chain_pem(&self) -> &'static str {
        self.chain
    }
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            cert: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".cert")),
            der: include_bytes!(concat!("../../test-ca/ecdsa-p256/", $name, ".der")),
            key: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".key")),
            chain: include_str!(concat!("../../test-ca/ecdsa-p256/", $name, ".chain")),
        }
    };
}

/// The committed test PKI (ECDSA P-256, validity to 4096 but for
/// `client_expired`).
#[derive(Debug, Clone, Copy)]
pub struct TestPki(());

/// The committed test PKI.
pub fn pki() -> TestPki {
    TestPki(())
}

impl TestPki {
    /// `CN=Portcullis Test Root CA`.
    pub fn ca(&self) -> Fixture {
        fixture!("ca")
    }
    /// `CN=Portcullis Test Intermediate CA`, issued by the root.
    pub fn inter(&self) -> Fixture {
        fixture!("inter")
    }
    /// Server certificate for `localhost`, `testserver.example.com`,
    /// `127.0.0.1` and `::1`, issued by the intermediate.
    pub fn end(&self) -> Fixture {
        fixture!("end")
    }
    /// `CN=client.example.com,O=Portcullis Test Clients`, DNS SAN
    /// `client.example.com`.
    pub fn client(&self) -> Fixture {
        fixture!("client")
    }
    /// `CN=workload.example.com`, one URI SAN
    /// `spiffe://example.org/ns/prod/sa/api`.
    pub fn client_spiffe(&self) -> Fixture {
        fixture!("client-spiffe")
    }
    /// Two URI SANs (a SPIFFE ID and an https URI): no SPIFFE ID.
    pub fn client_multi_uri(&self) -> Fixture {
        fixture!("client-multi-uri")
    }
    /// An `rfc822Name` SAN `alice@example.com`.
    pub fn client_email(&self) -> Fixture {
        fixture!("client-email")
    }
    /// IP SANs `192.0.2.10` and `2001:db8::10`.
    pub fn client_ip(&self) -> Fixture {
        fixture!("client-ip")
    }
    /// A BMPString (UTF-16BE) CN `Zoë Müller 日本`.
    pub fn client_bmp(&self) -> Fixture {
        fixture!("client-bmp")
    }
    /// A subject whose values need RFC 4514 escaping.
    pub fn client_escape(&self) -> Fixture {
        fixture!("client-escape")
    }
    /// Expired on 2001-01-01.
    pub fn client_expired(&self) -> Fixture {
        fixture!("client-expired")
    }
}

/// The client certificate shapes of the test PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientProfile {
    /// See [`TestPki::client`].
    Plain,
    /// See [`TestPki::client_spiffe`].
    Spiffe,
    /// See [`TestPki::client_multi_uri`].
    MultiUri,
    /// See [`TestPki::client_email`].
    Email,
    /// See [`TestPki::client_ip`].
    Ip,
    /// See [`TestPki::client_bmp`].
    Bmp,
    /// See [`TestPki::client_escape`].
    Escape,
    /// See [`TestPki::client_expired`].
    Expired,
}

impl ClientProfile {
    /// Every profile.
    pub const ALL: [ClientProfile; 8] = [
        ClientProfile::Plain,
        ClientProfile::Spiffe,
        ClientProfile::MultiUri,
        ClientProfile::Email,
        ClientProfile::Ip,
        ClientProfile::Bmp,
        ClientProfile::Escape,
        ClientProfile::Expired,
    ];

    /// The fixture file stem (`client`, `client-spiffe`, ...).
    pub fn file_stem(self) -> &'static str {
        match self {
            ClientProfile::Plain => "client",
            ClientProfile::Spiffe => "client-spiffe",
            ClientProfile::MultiUri => "client-multi-uri",
            ClientProfile::Email => "client-email",
            ClientProfile::Ip => "client-ip",
            ClientProfile::Bmp => "client-bmp",
            ClientProfile::Escape => "client-escape",
            ClientProfile::Expired => "client-expired",
        }
    }

    fn params(self) -> Result<CertificateParams, rcgen::Error> {
        let mut params = CertificateParams::default();
        // The default carries a placeholder CN that would fix the RDN order.
        params.distinguished_name = DistinguishedName::new();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let dn = &mut params.distinguished_name;
        let uri = |s: &str| Ia5String::try_from(s).map(SanType::URI);
        match self {
            ClientProfile::Plain => {
                dn.push(DnType::OrganizationName, "Portcullis Test Clients");
                dn.push(DnType::CommonName, "client.example.com");
                params.subject_alt_names =
                    vec![SanType::DnsName(Ia5String::try_from("client.example.com")?)];
            }
            ClientProfile::Spiffe => {
                dn.push(DnType::CommonName, "workload.example.com");
                params.subject_alt_names = vec![uri("spiffe://example.org/ns/prod/sa/api")?];
            }
            ClientProfile::MultiUri => {
                dn.push(DnType::CommonName, "multi-uri.example.com");
                params.subject_alt_names = vec![
                    uri("spiffe://example.org/ns/prod/sa/api")?,
                    uri("https://example.org/b")?,
                ];
            }
            ClientProfile::Email => {
                dn.push(DnType::CommonName, "Alice Example");
                params.subject_alt_names = vec![SanType::Rfc822Name(Ia5String::try_from(
                    "alice@example.com",
                )?)];
            }
            ClientProfile::Ip => {
                dn.push(DnType::CommonName, "ip-client");
                params.subject_alt_names = ["192.0.2.10", "2001:db8::10"]
                    .iter()
                    .filter_map(|ip| ip.parse::<IpAddr>().ok())
                    .map(SanType::IpAddress)
                    .collect();
            }
            ClientProfile::Bmp => {
                dn.push(
                    DnType::CountryName,
                    DnValue::PrintableString("DE".try_into()?),
                );
                dn.push(
                    DnType::CommonName,
                    DnValue::BmpString(BmpString::try_from("Zoë Müller 日本")?),
                );
            }
            ClientProfile::Escape => {
                dn.push(DnType::OrganizationName, "#Acme, Inc.");
                dn.push(
                    DnType::OrganizationalUnitName,
                    "R&D=\"Labs\" <west>; a+b\\c",
                );
                dn.push(DnType::CommonName, " padded name ");
            }
            ClientProfile::Expired => {
                dn.push(DnType::CommonName, "expired.example.com");
                params.not_before = date_time_ymd(2000, 1, 1);
                params.not_after = date_time_ymd(2001, 1, 1);
            }
        }
        Ok(params)
    }
}

/// A certificate made by [`ThrowawayPki`], with its key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate followed by its issuing intermediate, PEM.
    pub chain_pem: String,
    /// The serial number, big-endian.
    pub serial: Vec<u8>,
}

/// A root CA and an intermediate made fresh with rcgen, issuing server and
/// client certificates in the shapes of the committed PKI.
pub struct ThrowawayPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    inter: CertifiedIssuer<'static, KeyPair>,
    next_serial: AtomicU64,
}

impl std::fmt::Debug for ThrowawayPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayPki").finish_non_exhaustive()
    }
}

impl ThrowawayPki {
    /// Makes a root `CN=<name> Root CA` and an intermediate
    /// `CN=<name> Intermediate CA`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let ca = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} Root CA")),
            KeyPair::generate()?,
        )?;
        let inter = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} Intermediate CA")),
            KeyPair::generate()?,
            &ca,
        )?;
        Ok(ThrowawayPki {
            ca,
            inter,
            next_serial: AtomicU64::new(0x1000),
        })
    }

    /// The root certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The root certificate, DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// The root's key, PKCS#8 PEM.
    pub fn ca_key_pem(&self) -> String {
        self.ca.key().serialize_pem()
    }

    /// The intermediate certificate, PEM.
    pub fn inter_pem(&self) -> String {
        self.inter.pem()
    }

    /// The intermediate certificate, DER.
    pub fn inter_der(&self) -> Vec<u8> {
        self.inter.der().to_vec()
    }

    /// The intermediate's key, PKCS#8 PEM.
    pub fn inter_key_pem(&self) -> String {
        self.inter.key().serialize_pem()
    }

    /// A server certificate for `localhost`, `testserver.example.com`,
    /// `127.0.0.1` and `::1`.
    pub fn server(&self) -> Result<IssuedCert, rcgen::Error> {
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "testserver.example.com".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "testserver.example.com");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// A client certificate of `profile`.
    pub fn client(&self, profile: ClientProfile) -> Result<IssuedCert, rcgen::Error> {
        self.issue(profile.params()?)
    }

    /// A certificate from arbitrary parameters, issued by the intermediate.
    /// Without a serial in `params`, the next of this PKI's counter is used,
    /// so tests know it (see [`IssuedCert::serial`]).
    pub fn issue(&self, mut params: CertificateParams) -> Result<IssuedCert, rcgen::Error> {
        let serial = params
            .serial_number
            .get_or_insert_with(|| {
                SerialNumber::from(self.next_serial.fetch_add(1, Ordering::Relaxed))
            })
            .to_bytes();
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.inter)?;
        Ok(IssuedCert {
            chain_pem: format!("{}{}", cert.pem(), self.inter.pem()),
            cert_pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }

    /// A CRL from the intermediate (the issuer of every leaf) revoking
    /// `revoked`, PEM. `expired` puts its `nextUpdate` in 2001.
    pub fn inter_crl(
        &self,
        revoked: &[&IssuedCert],
        expired: bool,
    ) -> Result<String, rcgen::Error> {
        crl(&self.inter, revoked, expired)
    }

    /// A CRL from the root (the issuer of the intermediate), PEM.
    pub fn ca_crl(&self, revoked: &[&IssuedCert]) -> Result<String, rcgen::Error> {
        crl(&self.ca, revoked, false)
    }
}

fn crl(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    revoked: &[&IssuedCert],
    expired: bool,
) -> Result<String, rcgen::Error> {
    let (this_update, next_update) = if expired {
        (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1))
    } else {
        (date_time_ymd(2020, 1, 1), date_time_ymd(4000, 1, 1))
    };
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|cert| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&cert.serial),
                revocation_time: date_time_ymd(2020, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer)?.pem()
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Portcullis Test");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Finds an outside program a test drives (openssl, curl, nginx, ...).
///
/// Absent, it prints a skip notice and returns `None`, unless
/// `PORTCULLIS_INTEROP=require` (set by CI), where absence is a failure.
pub fn interop_binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let required = std::env::var("PORTCULLIS_INTEROP").is_ok_and(|v| v == "require");
        assert!(
            !required,
            "{name} is not on PATH but PORTCULLIS_INTEROP=require: install it (apt-get install -y {name}) \
             or unset PORTCULLIS_INTEROP to skip"
        );
        eprintln!(
            "SKIPPED: {name} not found on PATH (set PORTCULLIS_INTEROP=require to fail instead)"
        );
    }
    found
}

/// A scratch directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `portcullis-<name>-<pid>-<n>`, empty.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("portcullis-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(error) = std::fs::create_dir_all(&path) {
            panic!("cannot create {}: {error}", path.display());
        }
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `name` inside the directory, as a string (for command lines and
    /// environment values).
    pub fn file(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }

    /// Writes `contents` to `name` and returns the path as a string.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.join(name);
        if let Err(error) = std::fs::write(&path, contents) {
            panic!("cannot write {}: {error}", path.display());
        }
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What one curl run printed.
#[derive(Debug, Clone)]
pub struct CurlOutput {
    /// curl's exit code (`0` on success, `-1` if killed).
    pub code: i32,
    /// The HTTP status curl reported (`000` when there was no response).
    pub status: String,
    /// The response body.
    pub body: String,
    /// What curl wrote to stderr.
    pub stderr: String,
}

/// Runs `curl -sS --max-time 10` with `args` (blocking: call it from
/// `spawn_blocking` in async tests).
pub fn curl(args: &[String]) -> CurlOutput {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running curl: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    CurlOutput {
        code: out.status.code().unwrap_or(-1),
        status: status.to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A free TCP port on 127.0.0.1 for an outside program to listen on.
///
/// Taken below the kernel's ephemeral range (where `bind(…:0)` and every
/// outgoing connection get theirs), each port once per process and a
/// stretch of its own per process: between this call and the daemon's
/// bind, no listener of a test running in parallel, and no client socket,
/// can take it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(12_000, 65_535);
    let (low, span) = (10_000, ephemeral_low - 10_000);
    let start = std::process::id().wrapping_mul(97) % span;
    for _ in 0..span {
        let port = low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_low}")
}

/// How [`Daemon::start`] knows a daemon is ready: it answers in its own
/// protocol, from the process we started (a bare TCP connect can reach
/// something else, or a process about to exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A TLS server: a ClientHello gets a handshake record back.
    Tls,
    /// Redis: `PING` gets `+PONG`.
    Redis,
}

impl Readiness {
    fn answers(self, port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        match self {
            Readiness::Tls => {
                let Some(mut tls) = probe_client() else {
                    return false;
                };
                let mut first = [0u8; 1];
                tls.write_tls(&mut tcp).is_ok()
                    && matches!(tcp.read(&mut first), Ok(1))
                    && first[0] == 0x16
            }
            Readiness::Redis => {
                let mut answer = [0u8; 5];
                tcp.write_all(b"PING\r\n").is_ok()
                    && tcp.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG"
            }
        }
    }
}

/// A TLS client that only says hello.
fn probe_client() -> Option<rustls::ClientConnection> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pki().ca().der().to_vec(),
        ))
        .ok()?;
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        rustls_pki_types::ServerName::try_from("localhost").ok()?,
    )
    .ok()
}

/// An outside server (nginx, caddy, haproxy, redis-server) run for a test
/// and killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its output in `log`, and waits (up to 15 s)
    /// until it answers on 127.0.0.1:`port` in its protocol (`readiness`)
    /// while still running. Panics with the log if it exits or never
    /// answers.
    pub fn start(
        name: &str,
        mut command: std::process::Command,
        port: u16,
        log: PathBuf,
        readiness: Readiness,
    ) -> Self {
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command
            .stdout(file)
            .stderr(err)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut daemon = Daemon {
            name: name.to_owned(),
            child,
            log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            if readiness.answers(port) && matches!(daemon.child.try_wait(), Ok(None)) {
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    daemon.log_text()
                );
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{name} is not listening on {port} after 15 s:\n{}",
                    daemon.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// What the daemon has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway `redis-server` on 127.0.0.1:`port`: no persistence, its
/// files in `dir`. `None` (with a skip notice) when redis-server is not
/// installed and interop is not required.
pub fn redis_server(dir: &TempDir, port: u16) -> Option<Daemon> {
    let binary = interop_binary("redis-server")?;
    let mut command = std::process::Command::new(binary);
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(dir.path());
    Some(Daemon::start(
        "redis-server",
        command,
        port,
        dir.join(&format!("redis-{port}.log")),
        Readiness::Redis,
    ))
}

/// Compares a baseline and a candidate in alternating rounds, so the
/// machine's drift (±10% from one run to the next on shared machines)
/// falls on both sides alike, and prints the ratio of totals and the
/// median round ratio (> 1: the candidate is faster).
///
/// `run(side, n)` performs `n` operations against `side` (`false`: the
/// baseline) and returns how long they took. A quarter round of each warms
/// up first.
pub fn paired_rounds(
    name: &str,
    rounds: usize,
    per_round: u64,
    mut run: impl FnMut(bool, u64) -> std::time::Duration,
) -> f64 {
    run(false, per_round / 4);
    run(true, per_round / 4);
    let (mut base_total, mut cand_total) = (0.0, 0.0);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (b, c) = if round % 2 == 0 {
            let b = run(false, per_round);
            (b, run(true, per_round))
        } else {
            let c = run(true, per_round);
            (run(false, per_round), c)
        };
        base_total += b.as_secs_f64();
        cand_total += c.as_secs_f64();
        ratios.push(b.as_secs_f64() / c.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let ops = per_round as f64 * rounds as f64;
    let ratio = base_total / cand_total;
    println!(
        "{name}: baseline {:.0}/s, candidate {:.0}/s; ratio of totals {ratio:.3}, median round {:.3} (min {:.3}, max {:.3})",
        ops / base_total,
        ops / cand_total,
        ratios[rounds / 2],
        ratios[0],
        ratios[rounds - 1]
    );
    ratio
}

/// Sends `n` requests made by `request` on one keep-alive HTTP/1.1
/// connection to `addr`, each answered `2xx` and read whole, and returns
/// how long they took (the connection set-up excluded). For benches.
pub async fn keep_alive_requests(
    addr: std::net::SocketAddr,
    n: u64,
    request: impl Fn() -> http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> std::time::Duration {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("handshake: {e}"));
    tokio::spawn(conn);
    let start = std::time::Instant::now();
    for _ in 0..n {
        sender
            .ready()
            .await
            .unwrap_or_else(|e| panic!("connection: {e}"));
        let res = sender
            .send_request(request())
            .await
            .unwrap_or_else(|e| panic!("request: {e}"));
        assert!(res.status().is_success(), "{}", res.status());
        let body = res
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"));
        std::hint::black_box(body);
    }
    start.elapsed()
}

/// What a request through a layer came to: the response, and what the
/// application behind the layer saw (`None` when it never ran).
#[derive(Debug)]
pub struct Recorded<T> {
    /// The response status.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The response extensions (a layer's rejection value, say).
    pub extensions: http::Extensions,
    /// The response body, as text.
    pub body: String,
    /// What `record` took from the request the application received.
    pub seen: Option<T>,
}

impl<T> Recorded<T> {
    /// What the application saw; panics, with the response, when it never
    /// ran.
    pub fn seen(&self) -> &T {
        self.seen
            .as_ref()
            .unwrap_or_else(|| panic!("the app did not run: {} {}", self.status, self.body))
    }

    /// The layer's rejection value of type `R`, if the response has one.
    pub fn rejection<R: Clone + Send + Sync + 'static>(&self) -> Option<&R> {
        self.extensions.get::<R>()
    }
}

/// The application [`through_layer`] puts behind a layer.
pub type RecordingApp = tower::util::BoxCloneService<
    http::Request<()>,
    http::Response<http_body_util::Full<bytes::Bytes>>,
    std::convert::Infallible,
>;

/// Runs `req` through `layer` in front of an application that answers
/// `200 ok` and keeps `record(&request)` of the request it received.
pub async fn through_layer<L, B, T>(
    layer: &L,
    req: http::Request<()>,
    record: fn(&http::Request<()>) -> T,
) -> Recorded<T>
where
    L: tower_layer::Layer<RecordingApp>,
    L::Service: tower_service::Service<
            http::Request<()>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
    T: Send + 'static,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let app = tower::service_fn(move |req: http::Request<()>| {
        let _ = tx.send(record(&req));
        std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
        )))
    });
    let service = layer.layer(RecordingApp::new(app));
    let Ok(res) = service.oneshot(req).await;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("response body: {e:?}"))
        .to_bytes();
    Recorded {
        status: parts.status,
        headers: parts.headers,
        extensions: parts.extensions,
        body: String::from_utf8_lossy(&body).into_owned(),
        seen: rx.try_recv().ok(),
    }
}

/// A service as [`serve_loopback`] serves it: any body, boxed, so a layered
/// and a bare variant of one app differ only by the layer.
pub type BenchService = tower::util::BoxCloneService<
    http::Request<hyper::body::Incoming>,
    http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>>,
    std::convert::Infallible,
>;

/// Boxes `service`'s response body for [`serve_loopback`].
pub fn bench_service<S, B>(service: S) -> BenchService
where
    S: tower_service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes, Error = std::convert::Infallible>
        + Send
        + Sync
        + 'static,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    BenchService::new(service.map_response(|res: http::Response<B>| res.map(|b| b.boxed())))
}

/// Serves `service` over HTTP/1.1 and h2 on a loopback port (nodelay), on
/// the current runtime; returns the address. For benches.
pub async fn serve_loopback(service: BenchService) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    addr
}

/// Runs `setup` on a single-threaded runtime in a thread of its own, hands
/// back what it returns, and keeps that runtime (and the servers `setup`
/// spawned on it) running for the life of the process. For benches, so a
/// server and its client do not share, or steal, one runtime's workers.
pub fn on_own_thread<T, F>(setup: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(async move {
            let _ = tx.send(setup().await);
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .unwrap_or_else(|e| panic!("the server thread ended before its set-up: {e}"))
}

/// Serves HTTP/1.1 and h2 in plaintext on every connection `listener`
/// accepts, with `service_for(peer)` (which stamps the peer as the
/// listener under test would), until the task running this is dropped,
/// which closes every connection it accepted too.
pub async fn serve_plain<S, B>(
    listener: tokio::net::TcpListener,
    service_for: impl Fn(std::net::SocketAddr) -> S,
) where
    S: tower_service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    // Connections live as long as this future: aborting its task closes
    // them all, as a killed server would (a pooled client's keep-alive
    // connection must not outlive the "outage").
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { break };
                let service = hyper_util::service::TowerToHyperService::new(service_for(peer));
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
