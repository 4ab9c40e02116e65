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
    /// Room events kept in memory (oldest dropped first). An event takes at most ~1 KiB
    /// (a comment's text, user id and name).
    pub timeline_max_events: usize,
    /// Room events waiting for the next once-a-second hand-over to the archive (replay
    /// and analytics); beyond it the newest are dropped and counted
    /// (`lockstep_archive_dropped_total{what="event"}`).
    pub archive_max_pending_events: usize,
    /// Points kept in the online-count time series.
    pub online_series_max_points: usize,
    /// A room with no sessions at all for this long ends itself.
    pub idle_end_secs: u64,
    /// Default countdown of a link drop ("3, 2, 1 — link!"), in ms.
    pub link_countdown_ms: u64,
    /// Longest countdown an anchor may ask for, in ms.
    pub max_link_countdown_ms: u64,
    /// Most users banned from one room; a further ban answers `limit_reached`.
    pub max_bans: usize,
    /// Most users muted at once in one room; a further mute answers `limit_reached`.
    pub max_mutes: usize,
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
            timeline_max_events: 20_000,
            archive_max_pending_events: 5_000,
            online_series_max_points: 86_400,
            idle_end_secs: 600,
            link_countdown_ms: 3000,
            max_link_countdown_ms: 60_000,
            max_bans: 10_000,
            max_mutes: 10_000,
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
    /// Of those, how many are answered with a `rate_limited` error; the rest are dropped
    /// silently until the flood stops or the socket is closed.
    pub rate_limit_replies: u32,
    /// How often the server pings an idle connection (WebSocket ping).
    pub heartbeat_interval_ms: u64,
    /// A connection that sent nothing (no frame, no pong) for this long is closed with
    /// 4002: half-open sockets do not keep rooms alive or count as online.
    pub heartbeat_timeout_ms: u64,
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
            rate_limit_replies: 3,
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 45_000,
            close_grace_ms: 2000,
        }
    }
}

/// Flash-sale inventory limits and policies (`[sales]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesConfig {
    /// How often each sale's actor expires reservations and checks its end time, in ms.
    pub tick_ms: u64,
    /// Requests (orders, cancels, merchant commands) waiting for one sale's answer; a
    /// request beyond it is answered `unavailable` at once (retry with the same key).
    pub max_pending_requests: usize,
    /// Refused idempotency keys (`sold_out`, `limit_exceeded`) one sale remembers; the
    /// oldest are forgotten first (a forgotten key is decided again on a retry).
    pub max_refused_keys: usize,
    /// Orders one buyer may create in one sale, cancelled and expired ones included
    /// (bounds reserve → cancel loops); further orders are `limit_exceeded`.
    pub max_orders_per_buyer: u32,
    /// An ended sale with no open reservation is unloaded from memory after this many
    /// seconds; it is loaded again on demand (merchant reads, order commands).
    pub retire_after_secs: u64,
    /// After a storage failure a sale refuses requests (`unavailable`) and retries
    /// rebuilding itself from the database, first after this many ms ...
    pub recovery_backoff_initial_ms: u64,
    /// ... doubling up to this.
    pub recovery_backoff_max_ms: u64,
    /// A sale hands its decisions' writes to the store after at most this many, even
    /// in the middle of a burst of requests, so the store commits one part while the
    /// sale decides the next (the store still commits everything waiting together).
    /// At least 1.
    pub max_writes_per_flush: usize,
}

impl Default for SalesConfig {
    fn default() -> Self {
        Self {
            tick_ms: 100,
            max_pending_requests: 20_000,
            max_refused_keys: 100_000,
            max_orders_per_buyer: 100,
            retire_after_secs: 3_600,
            recovery_backoff_initial_ms: 500,
            recovery_backoff_max_ms: 30_000,
            max_writes_per_flush: 256,
        }
    }
}

/// The embedded database (`[store]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file (created if missing; `-wal` and `-shm` files beside it).
    pub path: String,
    /// fsync every commit (`synchronous = FULL`): acked orders survive power loss. With
    /// false (`NORMAL`) they survive a process crash but not a power loss.
    pub synchronous_full: bool,
    /// Jobs waiting for the store thread; a merchant API call beyond it is answered
    /// `unavailable` (503), sale writes wait for room.
    pub queue_depth: usize,
    /// Largest database file, in MiB (0 = no limit beyond the disk's). Writes that would
    /// pass it fail like a full disk: the sale refuses orders until space is made.
    pub max_size_mb: u64,
    /// SQLite's page cache for the writer, in MiB (SQLite's own default is 2 MiB, small
    /// enough that a big batch spills pages and re-reads index pages from disk).
    pub cache_mb: u64,
    /// WAL checkpoints run on their own thread this often, off the commit path (0:
    /// SQLite's automatic checkpoint, inside the commit that crosses 1,000 pages).
    pub checkpoint_interval_ms: u64,
    /// Before committing, the store thread lets the threads ready on its core run once
    /// (`sched_yield`), so writes they are about to hand over join this commit instead
    /// of the next. At most once per commit; with a core to itself it returns at once.
    pub yield_before_commit: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "lockstep.db".into(),
            synchronous_full: true,
            queue_depth: 10_000,
            max_size_mb: 0,
            cache_mb: 64,
            checkpoint_interval_ms: 500,
            yield_before_commit: true,
        }
    }
}

/// `[archive]`: what rooms leave behind for their replays and analytics (see
/// [`crate::archive`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Keep rooms' timelines and time series (off: no replays, no dashboard data).
    pub enabled: bool,
    /// SQLite file of the archive (its own file, so the archive's writes never wait on
    /// or delay the sales' commits). Empty: beside the store's, `<store.path>` with
    /// `-archive` before its extension.
    pub path: String,
    /// Room seconds waiting for the archive thread; beyond it a room's second is dropped
    /// and counted (`lockstep_archive_dropped_total{what="batch"}`).
    pub queue_depth: usize,
    /// One-second points kept per replay (43,200 = 12 hours); later seconds are dropped
    /// and counted (`what="point"`).
    pub max_points_per_replay: usize,
    /// Timeline events kept per replay; later events are dropped and counted.
    pub max_events_per_replay: usize,
    /// A replay's one-second points become `downsample_secs` points this many hours after
    /// its room ended (0: never).
    pub downsample_after_hours: u64,
    /// Width of a downsampled point, in seconds.
    pub downsample_secs: u64,
    /// Replays (with their events, series and recordings' metadata) are deleted this many
    /// days after their room ended (0: kept forever).
    pub retention_days: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: String::new(),
            queue_depth: 4096,
            max_points_per_replay: 43_200,
            max_events_per_replay: 2_000_000,
            downsample_after_hours: 24 * 7,
            downsample_secs: 10,
            retention_days: 90,
        }
    }
}
