//! Lockstep's actors. Each actor is a thin actix shell around a pure core that takes
//! `now` as an argument and returns what to do, so the logic is tested without a runtime.
//!
//! - [`directory`]: finds a room's actor by id and spreads rooms over arbiters.
//! - [`broker`]: the seam every room broadcast goes through (in-process today; the
//!   cluster's broker plugs in here).
//! - [`room`]: one live room — viewers, comments, likes, presence, moderation, timeline;
//!   its actor supervises the core (a panic restarts it).
//! - [`session`]: per-connection rules (join handshake, rate limits) for the socket shell.
//! - [`outbound`]: the bounded per-session queue that makes slow viewers cheap to cut.
//! - [`inventory`]: one actor per flash sale around a linearizable core; durable answers,
//!   bounded admission, rebuilding from the database after a failure.
//! - [`archive`]: what rooms leave for their replays and dashboards (SQLite, rules).
//! - [`store`]: the SQLite store thread (group commit, failure marks, recovery) and the
//!   catalogue SQL.
//! - [`media`]: what a room needs from its video (implemented by `lockstep-sfu`).
//! - [`config`], [`limits`], [`metrics`], [`clock`], [`text`]: settings, token buckets,
//!   Prometheus metrics, time, and which characters user text may hold.
//! - [`sync`]: the loom facade every shared-memory primitive goes through.

pub mod archive;
mod boundary;
pub mod broker;
pub mod clock;
pub mod config;
pub mod directory;
#[cfg(feature = "test-hooks")]
pub mod hooks;
pub mod inventory;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod outbound;
pub mod room;
pub mod session;
pub mod store;
pub mod sync;
pub mod text;

pub use lockstep_protocol as protocol;
