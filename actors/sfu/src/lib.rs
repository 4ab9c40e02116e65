//! Lockstep's selective forwarding unit, co-located with the rooms so a room's video and
//! its link drop share one clock.
//!
//! The actor tree, per room with video:
//!
//! - [`MediaRoom`](room::MediaRoom) — supervises the room's media: starts the ingest
//!   actor of the current publisher and the relays, admits subscribers (the configured
//!   cap), passes keyframe requests up, and reports the stream live or away.
//! - The ingest actor (`Ingest`, `ingest/mod.rs`), one per publisher (the anchor's WHIP
//!   session): owns its connection and a task per track (`ingest/track.rs`) that reads
//!   RTP, aligns the simulcast layers onto the media clock and hands each packet
//!   ([`packet::Deliver`]) to every relay; sends keyframe requests to the publisher,
//!   throttled per layer.
//! - [`Relay`](relay::Relay) — one per shard, spread over the arbiter pool. Each holds a
//!   share of the subscribers and forwards every packet to them by `try_send` into each
//!   subscriber's bounded queue: a subscriber that cannot keep up loses packets, it never
//!   stalls the others. The relay picks each subscriber's simulcast layer.
//! - Subscriber writer tasks — one per subscriber, on its relay's arbiter, draining its
//!   queue into its own peer connection (which lives on that arbiter too).
//!
//! Imports run one way, down the tree: `room` → `ingest` → `ingest/track`, and `room` →
//! `relay` → `subscriber`. A child never names its parent: it declares the messages it
//! sends up (`SourceReady`, `SubscriberLeft`, `SubscriberReady`, …) and is handed
//! `Recipient`s for them when it starts.
//!
//! - The recorder ([`record`]) — one thread per recorded room, fed by the track tasks
//!   through a bounded queue, writing the highest layer and the audio to WebM.
//!
//! Pure cores: [`codec`] (keyframe detection), [`layers`] (layer choice, capacity
//! estimate, switching with sequence rewriting), [`clock`] (layer timestamp alignment,
//! latest frame), [`keyframe`] (request throttle).

pub mod admission;
pub mod clock;
pub mod codec;
pub mod config;
pub mod directory;
pub mod engine;
mod error;
pub mod gop;
mod ingest;
pub mod keyframe;
pub mod layers;
pub mod metrics;
pub mod packet;
pub mod record;
pub mod relay;
pub mod room;
pub mod rtcp_tap;
mod subscriber;
pub mod uplink;

pub use admission::{Admission, Ticket};
pub use config::MediaConfig;
pub use directory::MediaDirectory;
pub use error::MediaError;
pub use room::Caller;

/// Identifies one publishing or subscribing session: 128 random bits, written as 32 hex
/// digits in WHIP/WHEP resource URLs, so nobody can name (and delete) another viewer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(u128);

impl MediaId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl std::fmt::Display for MediaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for MediaId {
    type Err = ();

    /// Exactly 32 lowercase hex digits, as [`Display`](std::fmt::Display) writes them.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(());
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::MediaId;

    #[test]
    fn media_ids_round_trip_and_reject_anything_else() {
        let id = MediaId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<MediaId>(), Ok(id));
        for bad in [
            "1",
            "",
            "g".repeat(32).as_str(),
            &text.to_uppercase(),
            &format!("{text}0"),
        ] {
            if bad != text {
                assert!(bad.parse::<MediaId>().is_err(), "{bad}");
            }
        }
        assert_ne!(MediaId::random(), MediaId::random());
    }
}
