//! Lockstep's selective forwarding unit, co-located with the rooms so a room's video and
//! its link drop share one clock.
//!
//! The actor tree, per room with video:
//!
//! - [`MediaRoom`](room::MediaRoom) — supervises the room's media: the publisher (the
//!   anchor's WHIP session and its ingest tasks), the relays, subscriber admission (the
//!   configured cap), keyframe requests going up (throttled), and the media clock.
//! - [`Relay`](relay::Relay) — one per shard, spread over the arbiter pool. Each holds a
//!   share of the subscribers and forwards every packet to them by `try_send` into each
//!   subscriber's bounded queue: a subscriber that cannot keep up loses packets, it never
//!   stalls the others. The relay picks each subscriber's simulcast layer.
//! - Subscriber writer tasks — one per subscriber, on its relay's arbiter, draining its
//!   queue into its own peer connection (which lives on that arbiter too).
//!
//! Pure cores: [`codec`] (keyframe detection), [`layers`] (layer choice, capacity
//! estimate, switching with sequence rewriting), [`clock`] (layer timestamp alignment,
//! latest frame), [`keyframe`] (request throttle).

pub mod clock;
pub mod codec;
pub mod config;
pub mod directory;
pub mod engine;
mod ingest;
pub mod keyframe;
pub mod layers;
pub mod metrics;
pub mod relay;
pub mod room;
mod subscriber;

pub use config::MediaConfig;
pub use directory::{MediaDirectory, MediaStatus};

/// Why a media request failed. Each maps to one protocol error code / HTTP status.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    /// The room has no stream to watch (no publisher, or video is disabled).
    #[error("{0}")]
    Unavailable(String),
    /// The room's subscriber cap (`media.max_subscribers_per_room`) is reached.
    #[error("{0}")]
    TooManySubscribers(String),
    /// The offer is not valid SDP or cannot be answered.
    #[error("{0}")]
    InvalidSdp(String),
    /// No such WHIP/WHEP session.
    #[error("{0}")]
    SessionNotFound(String),
    /// A fault on the server side.
    #[error("{0}")]
    Internal(String),
}

impl MediaError {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}
