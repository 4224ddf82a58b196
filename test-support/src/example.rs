//! The project's example binaries run as a deployment runs them: their own
//! process, configured only by the environment, found through the address
//! they print once bound.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running example, killed when dropped.
#[derive(Debug)]
pub struct Example {
    name: String,
    child: Child,
    addr: SocketAddr,
    metrics: Option<String>,
    log: PathBuf,
}

/// Where cargo put the examples built beside this test binary
/// (`target/<profile>/examples/`).
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("no target directory above {}", exe.display()));
    profile_dir.join("examples").join(name)
}

impl Example {
    /// Starts example `name` with exactly `env` (and `PATH`), its output
    /// in `log`. Ready when it printed the address it bound (the `listening
    /// on` or `control plane on` line, with `LISTEN_ADDR=127.0.0.1:0`
    /// unless `env` names one: the kernel picks the port, so tests running
    /// at once never race for one). Panics with the log if it exits first
    /// or is not ready within 30 s.
    pub fn start(name: &str, env: &[(&str, &str)], log: PathBuf) -> Self {
        let path = example_path(name);
        assert!(
            path.is_file(),
            "{} is not built: cargo test builds the examples (with --all-features for those that need one)",
            path.display()
        );
        let mut command = Command::new(&path);
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        if !env.iter().any(|(k, _)| *k == "LISTEN_ADDR") {
            command.env("LISTEN_ADDR", "127.0.0.1:0");
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        let copy = log.with_extension("stdout");
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(copy).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(out) = out.as_mut() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        let mut example = Example {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: None,
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("metrics on ") {
                        example.metrics = Some(url.trim().to_owned());
                    }
                    if let Some(addr) = bound_address(&line) {
                        example.addr = addr;
                        return example;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = example.child.wait();
                    panic!(
                        "example {name} exited ({status:?}) before listening:\n{}",
                        example.log_text()
                    );
                }
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "example {name} printed no address within 30 s:\n{}",
                    example.log_text()
                );
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics endpoint it printed (`metrics on <url>`, before it
    /// listened), when `METRICS_ADDR` is set.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics.as_deref()
    }

    /// What it wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends it SIGTERM, as an orchestrator stopping it does (`kill
    /// -TERM`), and returns at once.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -TERM {}: {status}", self.child.id());
    }

    /// Waits for it to exit, at most `limit`: its exit status, or `None`
    /// if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it now, as a crashed or killed process stops (connections
    /// closed, nothing finished).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `…on http://127.0.0.1:4321…` → the address.
fn bound_address(line: &str) -> Option<SocketAddr> {
    let rest = line
        .split_once("://")
        .filter(|(before, _)| {
            before.contains("listening on") || before.contains("control plane on")
        })?
        .1;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ';' || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Drop for Example {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_printed_address() {
        assert_eq!(
            bound_address("listening on https://127.0.0.1:4321"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(
            bound_address("listening on http://127.0.0.1:80 (no TLS_CERT: plaintext)"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            bound_address("listening on http://127.0.0.1:8080; trusting []"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(bound_address("3 keys from tenants.json"), None);
    }
}
