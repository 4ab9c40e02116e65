//! The SFU's settings (`[media]` in the config file). Every limit on what one room's
//! video may cost lives here and in `config/default.toml`.

use serde::{Deserialize, Serialize};

/// Media (WebRTC) behaviour and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Whether rooms carry video at all (WHIP/WHEP and `rtc_offer` answer
    /// `media_unavailable` when off).
    pub enabled: bool,
    /// Address the ICE UDP sockets bind to (port 0 = one ephemeral port per connection).
    /// Use the host's reachable address in production; loopback suits local use and tests.
    pub udp_bind: String,
    /// Address announced in ICE candidates instead of the bound one (behind 1:1 NAT);
    /// empty = announce what is bound.
    pub public_ip: String,
    /// Most subscribers (WebSocket + WHEP) one room's video may have.
    pub max_subscribers_per_room: usize,
    /// Most subscribers across every room of this server (each holds a UDP socket and a
    /// peer connection, ~0.5 MiB); counted from the offer, so negotiations count too.
    pub max_subscribers_total: usize,
    /// Most subscribers from one IP address across every room (0 = no limit; addresses
    /// in `server.connection_limit_exempt` are not limited).
    pub max_subscribers_per_ip: usize,
    /// A peer connection (subscriber or publisher) that is not up this long after its
    /// answer is dropped, so offers that never complete do not hold video slots.
    pub connect_timeout_ms: u64,
    /// Cluster mode: an edge node keeps pulling a room's stream from its owner this long
    /// after its last subscriber of that room left, so a viewer who reloads starts at once.
    pub pull_linger_ms: u64,
    /// Packets of a layer's latest keyframe group each relay keeps so a new viewer
    /// starts at once (0: none; a longer group is not kept).
    pub keyframe_cache_packets: usize,
    /// Relay actors per room; subscribers are spread over them and over the arbiters.
    pub relay_shards: usize,
    /// Packets queued per subscriber before the newest are dropped for that subscriber
    /// only (a slow subscriber loses packets, it never holds up the others).
    pub subscriber_queue_packets: usize,
    /// Common playout delay every subscriber is driven to, in ms (playout-delay RTP
    /// header extension with min = max, and the page's `jitterBufferTarget`).
    pub playout_delay_ms: u16,
    /// At most one keyframe request per layer is sent to the publisher in this interval.
    pub keyframe_request_interval_ms: u64,
    /// ICE: no traffic for this long marks a connection disconnected.
    pub ice_disconnected_timeout_ms: u64,
    /// ICE: no traffic for this long fails the connection; the SFU then removes it.
    pub ice_failed_timeout_ms: u64,
    /// A negotiation (offer → answer with gathered candidates) must finish within this.
    pub negotiation_timeout_ms: u64,
    /// Automatic layer choice: starting estimate of what a subscriber can take, bits/s.
    pub initial_estimate_bps: u64,
    /// Largest SDP offer accepted, in bytes.
    pub max_sdp_bytes: usize,
    /// Record each room's video (the publisher's highest simulcast layer, VP8, and its
    /// Opus audio) to a WebM file for the room's replay.
    pub record: bool,
    /// Rooms never recorded, whatever `record` says.
    pub record_exclude_rooms: Vec<String>,
    /// Where recordings go: `<dir>/<room>/<start ms>.webm` (VP8) or `.mp4` (H.264), with
    /// a `.json` beside each (keyframe index, media clock anchors, duration).
    pub recording_dir: String,
    /// Packets queued for a room's recorder; beyond it packets are dropped from the
    /// recording only (`lockstep_media_recording_dropped_packets_total`), never from the
    /// live stream, and the recording skips to the next keyframe.
    pub recording_queue_packets: usize,
    /// Recordings older than this many hours are deleted (0: kept whatever their age).
    pub recording_max_age_hours: u64,
    /// Recordings together may take at most this many MiB; the oldest are deleted first
    /// (0: no limit).
    pub recording_max_total_mb: u64,
    /// A recording stops when its disk has less than this many MiB free (and on any
    /// "no space" error); the live room goes on, `/readyz` names the reason.
    pub recording_min_free_mb: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp_bind: "127.0.0.1".into(),
            public_ip: String::new(),
            max_subscribers_per_room: 2_000,
            max_subscribers_total: 4_000,
            max_subscribers_per_ip: 50,
            connect_timeout_ms: 15_000,
            pull_linger_ms: 10_000,
            keyframe_cache_packets: 600,
            relay_shards: 2,
            subscriber_queue_packets: 512,
            playout_delay_ms: 300,
            keyframe_request_interval_ms: 1_000,
            ice_disconnected_timeout_ms: 3_000,
            ice_failed_timeout_ms: 10_000,
            negotiation_timeout_ms: 10_000,
            initial_estimate_bps: 2_500_000,
            max_sdp_bytes: 64 * 1024,
            record: true,
            record_exclude_rooms: Vec::new(),
            recording_dir: "recordings".into(),
            recording_queue_packets: 4096,
            recording_max_age_hours: 24 * 30,
            recording_max_total_mb: 20 * 1024,
            recording_min_free_mb: 1024,
        }
    }
}
