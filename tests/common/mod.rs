//! Test harness: a real Lockstep server on 127.0.0.1:0 in its own actix system thread
//! (`server.rs`), and real WebSocket / HTTP clients talking to it over loopback
//! (`client.rs`; video clients in `media.rs`); a real Redis for cluster tests (`redis.rs`).

#![allow(dead_code)]

mod client;
pub mod media;
pub mod node;
pub mod redis;
mod server;

use std::time::Duration;

pub use client::*;
pub use server::*;

/// How long any single expected event may take before a test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
