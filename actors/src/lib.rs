//! Lockstep's actors. Each actor is a thin actix shell around a pure core that takes
//! `now` as an argument and returns what to do, so the logic is tested without a runtime.
//!
//! - [`directory`]: finds a room's actor by id and spreads rooms over arbiters.
//! - [`room`]: one live room — viewers, comments, likes, presence, moderation, timeline.
//! - [`session`]: per-connection rules (join handshake, rate limits) for the socket shell.
//! - [`outbound`]: the bounded per-session queue that makes slow viewers cheap to cut.

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
