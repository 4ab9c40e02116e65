//! Real `lockstep serve` processes as cluster nodes on a test's Redis, for tests that
//! kill or freeze a node (`kill -9`, `SIGSTOP`): short leases so a takeover comes fast.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// The nodes' `cluster.lease_ms`.
pub const LEASE_MS: u64 = 1_500;

/// Where a node's log goes: `target/tmp/lockstep-tests/node-<name>-<pid>-<port>.log`,
/// for reading after a failed test.
fn log_file(name: &str) -> Stdio {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lockstep-tests");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "node-{name}-{}-{}.log",
        std::process::id(),
        lockstep_actors::clock::now_ms()
    ));
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// One node: its process and HTTP port.
pub struct Node {
    pub child: Child,
    pub port: u16,
}

impl Node {
    pub async fn start(redis: &RedisServer, name: &str) -> Self {
        Self::start_with(redis, name, &[]).await
    }

    /// [`Node::start`] with more environment (`LOCKSTEP_...` settings).
    pub async fn start_with(redis: &RedisServer, name: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .arg("serve")
            .env("LOCKSTEP_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("LOCKSTEP_SERVER__LOG", "info")
            .env("LOCKSTEP_SESSION__MSG_RATE_PER_SEC", "10000.0")
            .env("LOCKSTEP_SESSION__MSG_BURST", "10000")
            .env("LOCKSTEP_SALES__MAX_ORDERS_PER_BUYER", "4294967295")
            .env("LOCKSTEP_CLUSTER__REDIS_URL", redis.url())
            .env("LOCKSTEP_CLUSTER__NODE_ID", name)
            .env("LOCKSTEP_CLUSTER__LEASE_MS", LEASE_MS.to_string())
            .env("LOCKSTEP_CLUSTER__ALIVE_INTERVAL_MS", "250")
            .env("LOCKSTEP_CLUSTER__NODE_TIMEOUT_MS", "1500")
            .env("LOCKSTEP_CLUSTER__JOIN_TIMEOUT_MS", "3000")
            .envs(env.iter().copied())
            .stdout(log_file(name))
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server binary");
        let node = Self { child, port };
        let deadline = Instant::now() + super::EVENT_TIMEOUT;
        while reqwest::get(node.url("/healthz")).await.is_err() {
            assert!(Instant::now() < deadline, "node {name} did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
