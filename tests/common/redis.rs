//! A real Redis for a test — one `redis-server`, or a 3-master Redis Cluster made with
//! `redis-cli --cluster create` — on free ports with their own directories, stopped (or
//! killed) when dropped. `scripts/test.sh` installs Debian's `redis-server` (and with it
//! `redis-cli`) when missing. [`against_redis!`] runs one test body against both.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process.
struct Instance {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Keeps every write on disk (append-only file, fsynced per write).
    durable: bool,
    cluster: bool,
}

impl Instance {
    fn new(durable: bool, cluster: bool) -> Self {
        let port = free_port(cluster);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            port,
            dir,
            child: None,
            durable,
            cluster,
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .arg("--dir")
            .arg(&self.dir);
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        self.ask("PING").is_some_and(|reply| reply == "+PONG\r\n")
    }

    /// One inline command's raw reply (enough for PING and CLUSTER INFO).
    fn ask(&self, command: &str) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        conn.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut reply = vec![0u8; 4096];
        let n = conn.read(&mut reply).ok()?;
        String::from_utf8(reply[..n].to_vec()).ok()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A free port; for a Cluster node one whose bus port (port + 10000) is free too.
fn free_port(cluster: bool) -> u16 {
    let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port));
    loop {
        let port = bind(0).unwrap().local_addr().unwrap().port();
        if !cluster || (port < 55_000 && bind(port + 10_000).is_ok()) {
            return port;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Redis of a test: a standalone server or a Redis Cluster of three primaries.
pub struct RedisServer {
    instances: Vec<Instance>,
}

impl RedisServer {
    /// Starts a standalone Redis with an append-only file fsynced on every write.
    pub fn start() -> Self {
        let mut instance = Instance::new(true, false);
        instance.spawn();
        Self {
            instances: vec![instance],
        }
    }

    /// Starts one that keeps nothing on disk.
    pub fn start_volatile() -> Self {
        let mut instance = Instance::new(false, false);
        instance.spawn();
        Self {
            instances: vec![instance],
        }
    }

    /// Starts a Redis Cluster of three primaries (no replicas), each with an append-only
    /// file fsynced on every write, and waits until it serves every slot.
    pub fn start_cluster() -> Self {
        let mut instances: Vec<Instance> = (0..3).map(|_| Instance::new(true, true)).collect();
        for instance in &mut instances {
            instance.spawn();
        }
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(instances.iter().map(|i| format!("127.0.0.1:{}", i.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli (Debian package redis-tools, installed with redis-server)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let server = Self { instances };
        server.wait_until_serving();
        server
    }

    pub fn is_cluster(&self) -> bool {
        self.instances.len() > 1
    }

    /// Waits until every primary says the cluster serves all its slots.
    fn wait_until_serving(&self) {
        if !self.is_cluster() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.instances.iter().all(|i| {
            i.ask("CLUSTER INFO")
                .is_some_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills every server (their data stays in their directories).
    pub fn kill(&mut self) {
        for instance in &mut self.instances {
            instance.kill();
        }
    }

    /// Starts them again on the same ports, from their append-only files.
    pub fn restart(&mut self) {
        self.kill();
        for instance in &mut self.instances {
            instance.spawn();
        }
        self.wait_until_serving();
    }

    /// A plain connection to each server (each primary of a Cluster), to look inside.
    pub fn each_server(&self) -> Vec<redis::Connection> {
        self.instances
            .iter()
            .map(|i| {
                redis::Client::open(i.url())
                    .and_then(|c| c.get_connection())
                    .expect("the test's Redis answers")
            })
            .collect()
    }

    /// What `cluster.redis_url` takes: the server's URL, or the Cluster's seed nodes.
    pub fn url(&self) -> String {
        self.instances
            .iter()
            .map(Instance::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl RedisServer {
    /// The test config of cluster node `node-{name}` on this Redis.
    pub fn node_config(&self, name: &str) -> lockstep::Config {
        let mut cfg = super::test_config();
        cfg.cluster.redis_url = self.url();
        cfg.cluster.node_id = format!("node-{name}");
        cfg
    }

    /// Three nodes (`node-a`, `node-b`, `node-c`) of one cluster on this Redis.
    pub fn three_nodes(&self) -> Vec<super::TestServer> {
        ["a", "b", "c"]
            .iter()
            .map(|name| super::TestServer::start(self.node_config(name)))
            .collect()
    }
}

/// Runs an async test body `fn(RedisServer)` twice, as `NAME::standalone` against one
/// Redis server and as `NAME::cluster` against a 3-master Redis Cluster, under the given
/// test attribute.
#[macro_export]
macro_rules! against_redis {
    ($(#[$attr:meta])* $name:ident => $body:ident) => {
        mod $name {
            $(#[$attr])*
            async fn standalone() {
                super::$body($crate::common::redis::RedisServer::start()).await
            }

            $(#[$attr])*
            async fn cluster() {
                super::$body($crate::common::redis::RedisServer::start_cluster()).await
            }
        }
    };
}
