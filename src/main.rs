//! The `lockstep` binary: `serve` runs the server, `token` prints a signed token,
//! `secret` prints a fresh random secret for `auth.secret`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lockstep::Config;
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_protocol::Role;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Real-time engine for live-commerce rooms"
)]
struct Cli {
    /// TOML config file (defaults are built in; see config/default.toml).
    #[arg(long, global = true, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Listen address (overrides `server.bind`).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Print a signed token for local use.
    Token {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Subject (user or merchant id).
        #[arg(long, default_value = "user-1")]
        sub: String,
        /// Room scope (required for anchors; optional for viewers).
        #[arg(long)]
        room: Option<String>,
        /// Merchant scope (merchants).
        #[arg(long)]
        merchant: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds (default: `auth.token_ttl_secs`).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print a new random secret (32 bytes, hex) for `auth.secret` or `auth.secret_file`.
    Secret,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Viewer,
    Anchor,
    Merchant,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = || Config::load(cli.config.as_deref()).context("reading configuration");
    match cli.command {
        Command::Secret => {
            let bytes: [u8; 32] = rand::random();
            println!(
                "{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            Ok(())
        }
        Command::Serve { bind } => serve(config()?, bind),
        Command::Token {
            role,
            sub,
            room,
            merchant,
            name,
            ttl,
        } => {
            let role = match role {
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Anchor => Role::Anchor,
                RoleArg::Merchant => Role::Merchant,
            };
            if role == Role::Anchor && room.is_none() {
                anyhow::bail!("an anchor token needs --room");
            }
            if role == Role::Merchant && merchant.is_none() {
                anyhow::bail!("a merchant token needs --merchant");
            }
            let config = config()?;
            let exp = unix_now() + ttl.unwrap_or(config.auth.token_ttl_secs);
            let claims = Claims {
                sub,
                role,
                room,
                merchant,
                name,
                exp,
            };
            println!("{}", Auth::new(&config.auth.secret).issue(&claims));
            Ok(())
        }
    }
}

fn serve(mut config: Config, bind: Option<String>) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        config.server.bind = bind;
    }
    init_logging(&config);
    let listener = std::net::TcpListener::bind(&config.server.bind)
        .with_context(|| format!("binding {}", config.server.bind))?;
    config.check_for(listener.local_addr()?)?;
    actix_rt::System::new().block_on(lockstep::run(listener, config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.server.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
