//! Server configuration: built-in defaults, overridden by a TOML file (`--config`) and then
//! by environment variables (`LOCKSTEP_ROOM__TICK_MS=50` sets `room.tick_ms`).
//! `config/default.toml` documents every key and parses to exactly [`Config::default`].

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use lockstep_actors::config::{RoomConfig, SessionConfig};
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
    pub store: StoreConfig,
    pub media: lockstep_sfu::MediaConfig,
}

/// `[store]`: the embedded database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file (created if missing; `-wal` and `-shm` files beside it).
    pub path: String,
    /// fsync every commit (`synchronous = FULL`): acked orders survive power loss. With
    /// false (`NORMAL`) they survive a process crash but not a power loss.
    pub synchronous_full: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "lockstep.db".into(),
            synchronous_full: true,
        }
    }
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
            socket_send_buffer_bytes: 0,
            log: "info".into(),
            log_json: false,
        }
    }
}

/// `[auth]`: token signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC-SHA256 secret for tokens. Change it for any deployment.
    pub secret: String,
    /// Lifetime of tokens printed by `lockstep token`, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: "lockstep-development-secret-change-me".into(),
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

impl Config {
    /// Defaults, then `file` (if given), then `LOCKSTEP_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("LOCKSTEP_").split("__"))
            .extract()
            .map_err(Box::new)
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
