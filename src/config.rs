//! Server configuration: built-in defaults, overridden by a TOML file (`--config`) and then
//! by environment variables (`LOCKSTEP_ROOM__TICK_MS=50` sets `room.tick_ms`).
//! `config/default.toml` documents every key and parses to exactly [`Config::default`].

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use lockstep_actors::config::{ArchiveConfig, RoomConfig, SalesConfig, SessionConfig, StoreConfig};
use serde::{Deserialize, Serialize};

/// Everything the server reads at startup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub rooms: RoomsConfig,
    pub room: RoomConfig,
    pub session: SessionConfig,
    pub sales: SalesConfig,
    pub store: StoreConfig,
    pub archive: ArchiveConfig,
    pub media: lockstep_sfu::MediaConfig,
    pub cluster: lockstep_cluster::ClusterConfig,
}

/// `[server]`: listening and process-level settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address `lockstep serve` listens on.
    pub bind: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds to wait for connections to close on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Pending connections the kernel queues before `accept` (listen backlog).
    pub backlog: u32,
    /// Most open client connections (HTTP and WebSocket) across the whole process. A
    /// connection beyond it is answered 503 `too_many_connections` and closed.
    pub max_connections: usize,
    /// Most open connections from one IP address (0 = no per-address limit); beyond it,
    /// 503 `too_many_connections`.
    pub max_connections_per_ip: usize,
    /// Networks the per-address limits do not apply to (CIDR, e.g. "10.0.0.0/8"): a
    /// reverse proxy on the same host, or a load generator on loopback.
    pub connection_limit_exempt: Vec<String>,
    /// Time a client has to send a request's head (request line and headers), in ms;
    /// after it the connection is answered 408 and closed.
    pub request_head_timeout_ms: u64,
    /// Time a client has to send a request's body once the head arrived, in ms; after it
    /// 408 `request_timeout`. WebSocket connections are not affected.
    pub body_read_timeout_ms: u64,
    /// An idle keep-alive HTTP connection is closed after this many seconds.
    pub keep_alive_secs: u64,
    /// Kernel send buffer per accepted socket, in bytes; 0 keeps the kernel's autotuning
    /// (which on Linux may grow to `net.ipv4.tcp_wmem` max, 4 MiB, per connection).
    /// A small buffer bounds kernel memory per viewer and makes a viewer that stops
    /// reading show up as a slow consumer sooner.
    pub socket_send_buffer_bytes: usize,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub log: String,
    /// Log as JSON lines instead of human-readable text.
    pub log_json: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 5,
            backlog: 4096,
            max_connections: 25_000,
            max_connections_per_ip: 256,
            connection_limit_exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            request_head_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            keep_alive_secs: 30,
            socket_send_buffer_bytes: 0,
            log: "info".into(),
            log_json: false,
        }
    }
}

/// The secret in the built-in defaults. Anyone who read the repository knows it, so the
/// server refuses it on any address other than loopback.
pub const DEVELOPMENT_SECRET: &str = "lockstep-development-secret-change-me";

/// Shortest secret accepted on a non-loopback address, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// `[auth]`: token signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC-SHA256 secret for tokens. Change it for any deployment.
    pub secret: String,
    /// A file holding the secret (surrounding whitespace ignored); when set it replaces
    /// `secret`, which then need not appear in the config or the environment.
    pub secret_file: String,
    /// Lifetime of tokens printed by `lockstep token`, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: DEVELOPMENT_SECRET.into(),
            secret_file: String::new(),
            token_ttl_secs: 24 * 3600,
        }
    }
}

/// `[rooms]`: the room directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Arbiter threads rooms are spread over; 0 means one per core.
    pub arbiters: usize,
    /// Most rooms open at once.
    pub max_rooms: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            arbiters: 0,
            max_rooms: 1000,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("reading auth.secret_file `{path}`: {error}")]
    SecretFile { path: String, error: std::io::Error },
    #[error(
        "refusing to serve on {addr} with {problem}: anyone could sign anchor and merchant tokens. \
         Set auth.secret (or LOCKSTEP_AUTH__SECRET, or auth.secret_file) to at least {MIN_SECRET_BYTES} \
         random bytes, e.g. the output of `lockstep secret`. Only loopback addresses may run on the \
         development secret."
    )]
    WeakSecret {
        addr: std::net::SocketAddr,
        problem: &'static str,
    },
    #[error("auth.secret is empty")]
    EmptySecret,
    #[error("server.connection_limit_exempt: `{0}` is not a network (CIDR such as 10.0.0.0/8)")]
    BadNetwork(String),
    #[error(
        "session.heartbeat_timeout_ms ({timeout}) must be longer than session.heartbeat_interval_ms ({interval})"
    )]
    Heartbeat { timeout: u64, interval: u64 },
}

impl Config {
    /// Defaults, then `file` (if given), then `LOCKSTEP_*` environment variables; then
    /// `auth.secret_file`, if set, is read into `auth.secret`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment
            .merge(Env::prefixed("LOCKSTEP_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.read_secret_file()?;
        Ok(config)
    }

    fn read_secret_file(&mut self) -> Result<(), ConfigError> {
        let path = &self.auth.secret_file;
        if path.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::SecretFile {
            path: path.clone(),
            error,
        })?;
        self.auth.secret = text.trim().to_owned();
        Ok(())
    }

    /// Checks what can only be checked against the address the server listens on: a
    /// non-loopback address needs a real secret.
    pub fn check_for(&self, addr: std::net::SocketAddr) -> Result<(), ConfigError> {
        let secret = &self.auth.secret;
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if !addr.ip().is_loopback() {
            let problem = if secret == DEVELOPMENT_SECRET {
                Some("the development secret shipped in the defaults")
            } else if secret.len() < MIN_SECRET_BYTES {
                Some("a secret shorter than 32 bytes")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::WeakSecret { addr, problem });
            }
        }
        for net in &self.server.connection_limit_exempt {
            net.parse::<ipnet::IpNet>()
                .map_err(|_| ConfigError::BadNetwork(net.clone()))?;
        }
        let session = &self.session;
        if session.heartbeat_timeout_ms <= session.heartbeat_interval_ms {
            return Err(ConfigError::Heartbeat {
                timeout: session.heartbeat_timeout_ms,
                interval: session.heartbeat_interval_ms,
            });
        }
        Ok(())
    }

    /// Sockets this configuration may hold at once: client connections, video peers
    /// (a UDP socket each) and a margin for the database and listeners. Compared with
    /// the process's open-files limit at startup.
    pub fn sockets_needed(&self) -> usize {
        self.server.max_connections + self.media.max_subscribers_total + self.rooms.max_rooms + 64
    }

    /// Parses a TOML document on top of the defaults (no environment).
    pub fn from_toml(text: &str) -> Result<Self, Box<figment::Error>> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)
    }
}

/// Resolves "0 means one per core".
pub fn threads_or_cores(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_toml_is_the_builtin_default() {
        let shipped = Config::from_toml(include_str!("../config/default.toml")).unwrap();
        assert_eq!(shipped, Config::default());
        // And it sets every key, so a default changed in code but not in the file shows up.
        let text = include_str!("../config/default.toml");
        let table: toml::Table = text.parse().unwrap();
        let builtin = toml::Table::try_from(Config::default()).unwrap();
        assert_eq!(table, builtin);
    }

    #[test]
    fn a_public_address_needs_a_real_secret() {
        let public: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut c = Config::default();
        assert!(
            c.check_for(loopback).is_ok(),
            "loopback runs on the defaults"
        );
        let refused = c.check_for(public).unwrap_err().to_string();
        assert!(
            refused.contains("auth.secret") && refused.contains("lockstep secret"),
            "{refused}"
        );
        c.auth.secret = "short".into();
        assert!(c.check_for(public).is_err());
        c.auth.secret = String::new();
        assert!(c.check_for(loopback).is_err(), "never an empty secret");
        c.auth.secret = "x".repeat(MIN_SECRET_BYTES);
        assert!(c.check_for(public).is_ok());
        c.session.heartbeat_timeout_ms = c.session.heartbeat_interval_ms;
        assert!(
            c.check_for(public).is_err(),
            "a timeout must outlast the ping interval"
        );
    }

    #[test]
    // figment's Jail API fixes the closure's error type to its own (large) error.
    #[allow(clippy::result_large_err)]
    fn secret_file_replaces_the_secret() {
        let dir = std::env::temp_dir().join(format!("lockstep-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, format!("{}\n", "s".repeat(40))).unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("LOCKSTEP_AUTH__SECRET_FILE", file.to_str().unwrap());
            let c = Config::load(None).unwrap();
            assert_eq!(c.auth.secret, "s".repeat(40));
            jail.set_env(
                "LOCKSTEP_AUTH__SECRET_FILE",
                dir.join("missing").to_str().unwrap(),
            );
            assert!(matches!(
                Config::load(None),
                Err(ConfigError::SecretFile { .. })
            ));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_toml("[room]\ntick_msec = 5\n").is_err());
    }

    #[test]
    // figment's Jail API fixes the closure's error type to its own (large) error.
    #[allow(clippy::result_large_err)]
    fn file_then_environment_override() {
        let dir = std::env::temp_dir().join(format!("lockstep-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[room]\ntick_ms = 7\n[session]\nmsg_burst = 3\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("LOCKSTEP_SESSION__MSG_BURST", "9");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.room.tick_ms, 7);
            assert_eq!(c.session.msg_burst, 9);
            assert_eq!(c.server, ServerConfig::default());
            Ok(())
        });
    }
}
