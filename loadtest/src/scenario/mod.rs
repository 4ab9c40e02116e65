//! The scenarios. Each takes its arguments and this process's share of the work (a
//! [`Slot`]) and returns a [`crate::report::Report`]; `main` merges the workers' reports.

pub mod flash_sale;
pub mod join_storm;
pub mod link_drop;
pub mod soak;
pub mod subscribers;
pub mod viewers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where to connect and as whom: shared by every scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Server address (loopback only), e.g. 127.0.0.1:8080 — for `flash-sale --target
    /// redis`, the Redis server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: String,
    /// Lockstep cluster: the nodes to spread the connections over (loopback only, comma
    /// separated); connection i goes to node i mod n, the run's setup (room, anchor, sale,
    /// publisher) to the first. Replaces --server.
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Room (Lockstep) or subject (NATS) to use.
    #[arg(long, default_value = "load")]
    pub room: String,
    /// Lockstep: the server's `auth.secret`, to mint the anchor, viewer and merchant
    /// tokens the scenario needs.
    #[arg(long, default_value = "lockstep-development-secret-change-me")]
    pub secret: String,
}

impl Conn {
    /// The servers of this run, checked.
    pub fn nodes(&self) -> anyhow::Result<Nodes> {
        let addrs = if self.servers.is_empty() {
            vec![loopback(&self.server)?]
        } else {
            self.servers
                .iter()
                .map(|s| loopback(s))
                .collect::<anyhow::Result<_>>()?
        };
        Ok(Nodes(addrs))
    }
}

/// The servers connections are spread over (one, or the nodes of a cluster).
#[derive(Debug, Clone)]
pub struct Nodes(Vec<SocketAddr>);

impl Nodes {
    /// Where the run's setup goes (and a single server's only address).
    pub fn first(&self) -> SocketAddr {
        self.0[0]
    }

    /// How many servers the run has.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the run has no server (never: [`Conn::nodes`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The server of the run's `global`-th connection.
    pub fn of(&self, global: usize) -> SocketAddr {
        self.0[global % self.0.len()]
    }
}

/// This process's part of a run split over `count` worker processes.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub index: usize,
    pub count: usize,
    /// Unix ms at which the measured traffic starts (shared by all workers).
    pub start_at_ms: u64,
    /// Whether to draw progress bars (only when running alone, on a terminal).
    pub progress: bool,
}

impl Slot {
    /// How many of `total` this worker takes.
    pub fn share(&self, total: usize) -> usize {
        total / self.count + usize::from(self.index < total % self.count)
    }

    /// Each worker connects from its own loopback source address (127.0.0.2, .3, ...),
    /// so each has its own ephemeral-port range toward the server.
    pub fn source(&self) -> Option<IpAddr> {
        (self.count > 1).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + self.index as u8)))
    }

    /// Global index of this worker's `i`-th item.
    pub fn global(&self, i: usize) -> usize {
        i * self.count + self.index
    }
}

/// Resolves `host:port`; only loopback targets are accepted.
pub fn loopback(server: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = server.parse().map_err(|_| {
        anyhow::anyhow!("--server must be an IP:port such as 127.0.0.1:8080, got `{server}`")
    })?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--server must be a loopback address (127.0.0.0/8 or ::1)"
    );
    Ok(addr)
}

/// Sleeps until the given Unix time in ms.
pub async fn sleep_until_unix_ms(at_ms: u64) {
    let now = crate::wire::now_ns() / 1_000_000;
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// Signs a token with the server's secret (for viewers, the anchor, the merchant).
pub fn token(
    secret: &str,
    role: &str,
    sub: &str,
    room: Option<&str>,
    merchant: Option<&str>,
) -> String {
    let exp = crate::wire::now_ns() / 1_000_000_000 + 24 * 3600;
    let claims = serde_json::json!({"sub": sub, "role": role, "room": room, "merchant": merchant, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// A progress bar, hidden unless this run draws progress.
pub fn bar(show: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {per_sec} {elapsed}",
        )
        .expect("constant template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}
