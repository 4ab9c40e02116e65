//! Room and session limits. Every number that bounds a room's work or memory lives here
//! and in `config/default.toml`, where each key is documented.

use serde::{Deserialize, Serialize};

/// Per-room behaviour and limits (`[room]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomConfig {
    /// Room tick: comments and likes are batched into one frame per tick.
    pub tick_ms: u64,
    /// How often the online count is sent and sampled into the time series.
    pub online_interval_ms: u64,
    /// Comments kept for late joiners' welcome snapshot.
    pub recent_comments: usize,
    /// Longest comment accepted, in characters.
    pub comment_max_chars: usize,
    /// Sustained comments per second per viewer.
    pub comment_rate_per_sec: f64,
    /// Comments a viewer may post in a burst.
    pub comment_burst: u32,
    /// Most viewer comments fanned out per tick; beyond it the tick's comments are
    /// sampled uniformly. Anchor comments and pins are never sampled away.
    pub comment_budget_per_tick: usize,
    /// Whether viewers without a token may join (watch and like, not comment).
    pub allow_anonymous: bool,
    /// Comments containing any of these (case-insensitive) are refused.
    pub keyword_filter: Vec<String>,
    /// Most viewers in one room; further joins get `room_full`.
    pub max_viewers: usize,
    /// Largest `count` one like message may carry.
    pub like_max_per_msg: u32,
    /// Room events kept in memory for replay and analytics (oldest dropped first).
    pub timeline_max_events: usize,
    /// Points kept in the online-count time series.
    pub online_series_max_points: usize,
    /// A room with no sessions at all for this long ends itself.
    pub idle_end_secs: u64,
    /// Default countdown of a link drop ("3, 2, 1 — link!"), in ms.
    pub link_countdown_ms: u64,
    /// Longest countdown an anchor may ask for, in ms.
    pub max_link_countdown_ms: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            tick_ms: 100,
            online_interval_ms: 1000,
            recent_comments: 50,
            comment_max_chars: 300,
            comment_rate_per_sec: 1.0,
            comment_burst: 5,
            comment_budget_per_tick: 50,
            allow_anonymous: true,
            keyword_filter: Vec::new(),
            max_viewers: 20_000,
            like_max_per_msg: 100,
            timeline_max_events: 100_000,
            online_series_max_points: 86_400,
            idle_end_secs: 600,
            link_countdown_ms: 3000,
            max_link_countdown_ms: 60_000,
        }
    }
}

/// Per-connection limits (`[session]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Largest inbound frame; a bigger one closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Frames waiting to be written to one socket before the viewer is cut (4001).
    pub outbound_queue_frames: usize,
    /// Time to send `join` after connecting before the socket is closed (1008).
    pub join_timeout_ms: u64,
    /// Sustained inbound messages per second per connection.
    pub msg_rate_per_sec: f64,
    /// Inbound messages a connection may send in a burst.
    pub msg_burst: u32,
    /// Refused (rate-limited) messages in a row before the socket is closed (1008).
    pub flood_strikes: u32,
    /// After a cut or close, how long to wait for the close frame to be written before
    /// dropping the connection.
    pub close_grace_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 65536,
            outbound_queue_frames: 256,
            join_timeout_ms: 10_000,
            msg_rate_per_sec: 50.0,
            msg_burst: 100,
            flood_strikes: 50,
            close_grace_ms: 2000,
        }
    }
}
