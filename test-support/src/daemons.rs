//! Outside programs a test drives: finding them (or skipping), scratch
//! directories, curl, free ports, and daemons ready by their protocol.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pki;

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
    /// An HTTP server, or a TCP proxy in front of one: a plaintext
    /// `GET /whoami` gets an HTTP/1.x status line back.
    Http,
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
            Readiness::Http => {
                let mut answer = [0u8; 7];
                tcp.write_all(b"GET /whoami HTTP/1.0\r\nhost: probe\r\n\r\n")
                    .is_ok()
                    && tcp.read_exact(&mut answer).is_ok()
                    && answer.starts_with(b"HTTP/1.")
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
    crate::redis::throwaway(&mut command, dir.path());
    command.args(["--port", &port.to_string()]);
    Some(Daemon::start(
        "redis-server",
        command,
        port,
        dir.join(&format!("redis-{port}.log")),
        Readiness::Redis,
    ))
}
