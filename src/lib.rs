//! Lockstep: the server behind a live-shopping room. This crate wires the actors
//! (`lockstep-actors`) to the network: WebSocket sessions for viewers and anchors, the
//! HTTP API, the video endpoints (WHIP/WHEP, backed by `lockstep-sfu`), the web pages,
//! configuration, tokens, metrics, startup and shutdown.
//!
//! Start it with [`run`]; tests bind `127.0.0.1:0` and pass the listener in.

mod analytics;
pub mod auth;
pub mod config;
mod edge_media;
mod forward;
mod health;
mod http;
mod limits;
mod media;
mod merchant;
mod middleware;
pub mod openapi;
mod pages;
mod placement;
mod replay_data;
mod replay_orders;
mod replays;
mod rooms;
mod server;
mod state;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod ws;
mod ws_media;
mod ws_media_remote;
mod ws_socket;
mod ws_upgrade;
mod ws_wire;

pub use config::Config;
pub use server::run;
