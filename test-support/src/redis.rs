//! Redis as operators run it, for tests: over TLS, and as a three-node
//! Cluster, each started from `redis-server`'s own flags and ready only
//! once it answers in its protocol.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Daemon, Readiness, TempDir, free_port, interop_binary, pki};

/// The flags every throwaway server gets: loopback, no persistence, its
/// files in `dir`.
pub(crate) fn throwaway(command: &mut Command, dir: &std::path::Path) {
    command
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(dir);
}

/// A `redis-server` serving TLS only, on 127.0.0.1:`port`, with the test
/// PKI's server certificate (for `localhost`); clients need no
/// certificate. Connect with `rediss://localhost:<port>` trusting
/// `pki().ca()`. `None` (with a skip notice) without redis-server, unless
/// interop is required.
pub fn redis_tls_server(dir: &TempDir, port: u16) -> Option<Daemon> {
    redis_tls_and_plain_server(dir, port, 0)
}

/// As [`redis_tls_server`], also serving plaintext on `plain_port` (`0`:
/// not at all): one server, both ways in, for comparing them.
pub fn redis_tls_and_plain_server(dir: &TempDir, port: u16, plain_port: u16) -> Option<Daemon> {
    let binary = interop_binary("redis-server")?;
    let cert = dir.write("redis-server.pem", pki().end().chain_pem());
    let key = dir.write("redis-server.key", pki().end().key_pem());
    let ca = dir.write("redis-ca.pem", pki().ca().cert_pem());
    let mut command = Command::new(binary);
    throwaway(&mut command, dir.path());
    command
        .args([
            "--port",
            &plain_port.to_string(),
            "--tls-port",
            &port.to_string(),
        ])
        .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
        .args(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"]);
    Some(Daemon::start(
        "redis-server (TLS)",
        command,
        port,
        dir.join(&format!("redis-tls-{port}.log")),
        Readiness::Tls,
    ))
}

/// A Redis Cluster of three primaries (no replicas) on 127.0.0.1, its
/// slots spread by `redis-cli --cluster create`. Nodes can be killed and
/// started again (they rejoin from their `nodes-<port>.conf`).
#[derive(Debug)]
pub struct RedisCluster {
    dir_path: std::path::PathBuf,
    ports: [u16; 3],
    /// The cluster bus ports (by default port + 10,000, which nobody
    /// reserved for this test).
    bus_ports: [u16; 3],
    nodes: [Option<Daemon>; 3],
    binary: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three nodes on free ports and creates the cluster; ready
    /// once every node reports `cluster_state:ok`. `None` (with a skip
    /// notice) without redis-server and redis-cli, unless interop is
    /// required.
    pub fn start(dir: &TempDir) -> Option<Self> {
        let ports = [free_port(), free_port(), free_port()];
        let bus_ports = [free_port(), free_port(), free_port()];
        let binary = interop_binary("redis-server")?;
        let cli = interop_binary("redis-cli")?;
        let mut cluster = RedisCluster {
            dir_path: dir.path().to_path_buf(),
            ports,
            bus_ports,
            nodes: [None, None, None],
            binary,
        };
        for index in 0..3 {
            cluster.start_node(index);
        }
        let mut create = Command::new(cli);
        create.args(["--cluster", "create"]);
        for port in ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli --cluster create: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_ok();
        Some(cluster)
    }

    fn start_node(&mut self, index: usize) {
        let port = self.ports[index];
        let mut command = Command::new(&self.binary);
        throwaway(&mut command, &self.dir_path);
        command
            .args(["--port", &port.to_string()])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-port", &self.bus_ports[index].to_string()])
            // Quick to notice a node gone, and the rest keep serving
            // their own slots meanwhile.
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-require-full-coverage", "no"]);
        self.nodes[index] = Some(Daemon::start(
            "redis-server (cluster)",
            command,
            port,
            self.dir_path.join(format!("redis-cluster-{port}.log")),
            Readiness::Redis,
        ));
    }

    /// `redis://127.0.0.1:<port>` for every node, comma-separated: what
    /// `REDIS_URL` takes for a Cluster.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the nodes.
    pub fn ports(&self) -> [u16; 3] {
        self.ports
    }

    /// Kills node `index` (as a crash does).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index] = None;
    }

    /// Starts node `index` again; it rejoins with its slots, and the
    /// cluster is ready again when every node says so.
    pub fn restart(&mut self, index: usize) {
        self.start_node(index);
        self.wait_until_ok();
    }

    /// Waits (up to 20 s) until every running node reports
    /// `cluster_state:ok`.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let states: Vec<String> = self
                .ports
                .iter()
                .zip(&self.nodes)
                .filter(|(_, node)| node.is_some())
                .map(|(port, _)| cluster_state(*port))
                .collect();
            if states.iter().all(|state| state == "ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster is not ok after 20 s: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `CLUSTER INFO`'s `cluster_state` from the node on `port`, in Redis's
/// own protocol.
fn cluster_state(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return "unreachable".to_owned();
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    if tcp.write_all(b"CLUSTER INFO\r\n").is_err() {
        return "unreachable".to_owned();
    }
    // A bulk string: `$<length>\r\n<payload>\r\n`.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some((head, _)) = text.split_once("\r\n") else {
            return false;
        };
        head.strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .is_none_or(|n| answer.len() >= head.len() + 2 + n + 2)
    };
    while !complete(&answer) {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .map_or_else(|| "unknown".to_owned(), |state| state.trim().to_owned())
}
