//! Messages a client sends. One enum for both endpoints: the viewer socket accepts the
//! viewer messages, the anchor's control socket additionally accepts [`ClientMsg::Control`]
//! commands. Each message may carry a client-chosen `id` that the server echoes in the
//! `ack` or `error` it causes.

use serde::{Deserialize, Serialize};

/// A message from a viewer or anchor to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Opens the session. Must be the first message; anything else first is `not_joined`.
    Join {
        /// Must equal [`crate::PROTOCOL_VERSION`].
        protocol: u32,
        /// A signed token; absent for an anonymous viewer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// On the control channel: the title used if this join opens the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Posts a comment. Needs a viewer (or anchor) token.
    Comment {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// One or more like taps, batched by the client (`count` ≤ `room.like_max_per_msg`).
    Like {
        #[serde(default = "one")]
        count: u32,
    },
    /// NTP-style clock sync: `t0` is the client's send time (ms, any epoch). The server
    /// answers with its receive (`t1`) and send (`t2`) times in server ms since the Unix
    /// epoch; offset = ((t1 − t0) + (t2 − t3)) / 2 where t3 is the client's receive time.
    TimeSync { t0: f64 },
    /// Keep-alive; answered with `pong`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Reserves `qty` units of a sale for the token's subject. `key` makes retries safe:
    /// the same key returns the first result and never reserves twice.
    Order {
        sale_id: String,
        #[serde(default = "one")]
        qty: u32,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Cancels one of the buyer's own reservations (units go back on sale).
    CancelOrder {
        order_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Subscribes this session to the room's video: `sdp` is a WebRTC offer with every
    /// candidate gathered (non-trickle). Answered with `rtc_answer` or an `error`. A new
    /// offer replaces the session's previous subscription.
    RtcOffer {
        sdp: String,
        /// Simulcast layer wanted: `auto` (default), `low`, `mid` or `high`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Changes the simulcast layer of this session's subscription (`auto`, `low`, `mid`,
    /// `high`); switches happen on the next keyframe of the new layer.
    RtcLayer {
        layer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Ends this session's video subscription.
    RtcClose {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// The viewer page reports what the viewer did with a product card (for the room's
    /// funnel analytics): `shown` when the card appeared, `clicked` when Buy was pressed.
    /// Counted once per session, step and sale; never answered.
    Funnel { sale_id: String, step: FunnelStep },
    /// An anchor command; only accepted on the control channel.
    Control {
        #[serde(flatten)]
        cmd: ControlCmd,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

fn one() -> u32 {
    1
}

/// A step of a product card's funnel reported by the viewer page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunnelStep {
    Shown,
    Clicked,
}

/// Anchor commands, sent as `{"type":"control","cmd":"go_live","id":1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlCmd {
    /// created or paused → live.
    GoLive,
    /// live → paused.
    Pause,
    /// any → ended: every viewer is told and disconnected; the room is released.
    End,
    /// Pins a comment from the recent history for every viewer.
    Pin { comment_id: u64 },
    /// Removes the pinned comment.
    Unpin,
    /// Posts a comment as the anchor. Anchor comments are never sampled away.
    Say { text: String },
    /// Mutes a viewer (by user id) for `seconds`.
    Mute { user: String, seconds: u32 },
    /// Lifts a mute.
    Unmute { user: String },
    /// Bans a viewer: their sessions are closed (4003) and they cannot rejoin.
    /// With `clear_comments`, their comments leave the history and viewers are told.
    Ban {
        user: String,
        #[serde(default)]
        clear_comments: bool,
    },
    /// Lifts a ban.
    Unban { user: String },
    /// Removes a viewer's comments from the recent history; viewers are told to hide them.
    ClearComments { user: String },
    /// Slow mode: each viewer may comment at most once per `seconds` (0 turns it off).
    SlowMode { seconds: u32 },
    /// Whether viewers without a token may join from now on (those present stay).
    AllowAnonymous { allowed: bool },
    /// "3, 2, 1 — link!": announces a sale's link to every viewer now, to be shown (and
    /// orderable) at now + `countdown_ms` (default `room.link_countdown_ms`).
    DropLink {
        sale_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        countdown_ms: Option<u64>,
    },
    /// Ends a sale: no more orders; unsold units go back to stock.
    CloseSale { sale_id: String },
}
