//! Messages the server sends. Broadcasts (`tick`, `pinned`, `room_state`, …) are encoded
//! once per room event and the same bytes go to every session.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::{ErrorCode, LinkCard, OrderOutcome, Role, SaleState, SaleStock};

/// Lifecycle of a room: created → live ⇄ paused → ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    Created,
    Live,
    Paused,
    Ended,
}

/// A comment as viewers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Assigned by the room, increasing within a room.
    pub id: u64,
    /// The author's user id (the token subject).
    pub user: String,
    /// Display name.
    pub name: String,
    pub text: String,
    /// Server time, ms since the Unix epoch.
    pub at: u64,
    /// True for comments posted by the anchor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anchor: bool,
}

/// Likes aggregated over one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeTally {
    /// All likes the room has received.
    pub total: u64,
    /// Likes received since the previous tally.
    pub delta: u64,
}

/// What a joining session learns about the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub id: String,
    pub title: String,
    pub state: RoomState,
    pub online: u64,
    pub likes: u64,
    /// Most recent comments, oldest first.
    pub recent_comments: Vec<Comment>,
    pub pinned: Option<Comment>,
    /// Slow-mode interval in seconds; 0 when off.
    pub slow_mode: u32,
    /// Whether anonymous viewers may join.
    pub allow_anonymous: bool,
    /// The product link currently shown (or counting down), if any.
    pub link: Option<LinkCard>,
    /// The room's video.
    #[serde(default)]
    pub media: MediaInfo,
}

/// Whether the room's video can be watched, and the playout delay every viewer uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The anchor is streaming: send `rtc_offer` to watch.
    pub live: bool,
    /// The common playout delay (ms) every subscriber is driven to; pages set their
    /// receivers' `jitterBufferTarget` to it.
    pub playout_delay_ms: u16,
}

/// Who the server thinks this session is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct You {
    /// User id; `None` for an anonymous viewer.
    pub user: Option<String>,
    pub name: String,
    pub role: Role,
}

/// Moderation notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    Muted,
    Unmuted,
    Banned,
    Unbanned,
    /// The user's comments were removed; clients should hide them.
    CommentsCleared,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to a successful `join`.
    Welcome {
        protocol: u32,
        room: Box<RoomSnapshot>,
        you: You,
        /// Server time when the welcome was built, ms since the Unix epoch.
        server_time: u64,
    },
    /// Everything that accumulated during one room tick, in one frame. Sections with
    /// nothing new are omitted; a tick with nothing new sends no frame.
    Tick {
        at: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        comments: Vec<Comment>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        likes: Option<LikeTally>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        online: Option<u64>,
        /// Remaining stock of sales whose stock changed during the tick, by sale id.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        sales: BTreeMap<String, SaleStock>,
    },
    /// The anchor dropped a product link: show it at `link.reveal_at` (server time).
    Link { link: LinkCard },
    /// A sale changed state (opened, sold out, back in stock, ended).
    Sale {
        sale_id: String,
        state: SaleState,
        remaining: u32,
    },
    /// Answer to `order` (and `cancel_order`, with `outcome` describing the cancel).
    OrderResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        sale_id: String,
        /// The idempotency key of the order (empty for cancels).
        key: String,
        outcome: OrderOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        /// Units left after this decision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining: Option<u32>,
        /// For accepted reservations: when it expires unless paid, ms since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
        /// Why, for refusals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The pinned comment changed (`None`: unpinned).
    Pinned { comment: Option<Comment> },
    /// The room changed state.
    RoomState { state: RoomState, at: u64 },
    /// Slow mode changed.
    SlowMode { seconds: u32 },
    /// Whether anonymous viewers may join changed.
    AllowAnonymous { allowed: bool },
    /// A moderation action. Broadcast for bans and cleared comments; sent only to the
    /// affected viewer for mutes.
    Moderation {
        action: ModerationAction,
        user: String,
        /// For mutes: when it ends, ms since the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
    /// A request succeeded. `comment_id` is set when the request posted a comment.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment_id: Option<u64>,
    },
    /// A request failed; nothing changed.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Stable number ([`ErrorCode::code`]).
        code: u16,
        /// Stable name.
        name: ErrorCode,
        /// Human-readable detail; may change between versions.
        message: String,
        /// For rate limits and slow mode: ms until a retry can succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Answer to `time_sync`.
    TimeSync { t0: f64, t1: f64, t2: f64 },
    /// Answer to `rtc_offer`: the SDP answer (with every candidate).
    RtcAnswer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        sdp: String,
    },
    /// The room's video went live or away; broadcast to every session.
    Media {
        #[serde(flatten)]
        media: MediaInfo,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

impl ServerMsg {
    /// An `error` frame for `code` with a human-readable `message`.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            id,
            code: code.code(),
            name: code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Serializes to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys,
        // no custom Serialize impls that error.
        serde_json::to_string(self).expect("ServerMsg always serializes")
    }
}
