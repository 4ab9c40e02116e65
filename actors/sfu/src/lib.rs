//! Lockstep's selective forwarding unit, co-located with the rooms so a room's video and
//! its link drop share one clock.
//!
//! The actor tree, per room with video:
//!
//! - [`MediaRoom`](room::MediaRoom) — supervises the room's media: starts the ingest
//!   actor of the current publisher and the relays, admits subscribers (the configured
//!   cap), passes keyframe requests up, and reports the stream live or away.
//! - The ingest actor (`publisher.rs`), one per publisher (the anchor's WHIP session):
//!   owns its connection and a task per track (`ingest.rs`) that reads RTP, aligns the
//!   simulcast layers onto the media clock and hands each packet to every relay; sends
//!   keyframe requests to the publisher, throttled per layer.
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
mod publisher;
pub mod relay;
pub mod room;
mod subscriber;

pub use config::MediaConfig;
pub use directory::MediaDirectory;

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
