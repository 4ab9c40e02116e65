//! Error codes sent in `error` frames and HTTP error bodies, and WebSocket close codes.
//!
//! Error codes are grouped in ranges so a client can act on the range alone:
//! 1xx the frame itself was wrong, 2xx authentication and permission, 3xx the room,
//! 4xx comment and moderation limits, 5xx the server. Close codes use the RFC 6455
//! registry where one fits and the private range 4000–4999 for Lockstep's own reasons.

use serde::{Deserialize, Serialize};

/// Why a request was refused. Serialized by name (`"rate_limited"`); [`ErrorCode::code`]
/// gives the stable number sent beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON.
    MalformedJson,
    /// The `type` tag names no message this endpoint knows.
    UnknownType,
    /// A field is missing, has the wrong type or an invalid value.
    InvalidMessage,
    /// `join` asked for a protocol version this server does not speak.
    UnsupportedProtocol,
    /// A binary frame arrived where the protocol only uses text.
    BinaryNotSupported,
    /// A room message arrived before a successful `join`.
    NotJoined,
    /// A second `join` on a connection that already joined.
    AlreadyJoined,
    /// No such HTTP endpoint or resource.
    NotFound,
    /// The HTTP request body is larger than `server.max_body_bytes`.
    TooLarge,
    /// An SDP offer that is not valid SDP or cannot be answered.
    InvalidSdp,
    /// A WHIP/WHEP request whose `Content-Type` is not `application/sdp`.
    UnsupportedMediaType,
    /// The resource exists but not this method (WHIP/WHEP `PATCH`: no trickle ICE).
    MethodNotAllowed,
    /// The HTTP request body did not arrive within `server.body_read_timeout_ms`.
    RequestTimeout,
    /// The token is missing, malformed or its signature is wrong.
    Unauthorized,
    /// The token's expiry has passed.
    TokenExpired,
    /// The token is valid but its role or scope does not allow this.
    Forbidden,
    /// Anonymous viewers may not do this (comment, buy) or may not join this room.
    AuthRequired,
    /// No room with this id is open.
    RoomNotFound,
    /// The room has ended.
    RoomEnded,
    /// The room holds its configured maximum of viewers.
    RoomFull,
    /// The server holds its configured maximum of rooms.
    TooManyRooms,
    /// The requested room state change is not allowed from the current state.
    InvalidTransition,
    /// The named comment is not in the room's recent history.
    CommentNotFound,
    /// No sale with this id (or not one of this room's / merchant's).
    SaleNotFound,
    /// No product with this id for this merchant.
    ProductNotFound,
    /// No SKU with this id for this merchant.
    SkuNotFound,
    /// No order with this id for this merchant or buyer.
    OrderNotFound,
    /// The SKU's free stock cannot cover the request.
    InsufficientStock,
    /// The order is not in a state that allows this (e.g. confirm a cancelled order).
    InvalidOrderState,
    /// The sale is not in a state that allows this (e.g. close an ended sale).
    InvalidSaleState,
    /// An object with this id already exists.
    AlreadyExists,
    /// The room is not live (the anchor must `go_live` before publishing video).
    RoomNotLive,
    /// The room has no video to watch (the anchor is not streaming).
    MediaUnavailable,
    /// No replay with this id (or not one this caller may see).
    ReplayNotFound,
    /// The room's video has its configured maximum of subscribers.
    TooManySubscribers,
    /// No such WHIP/WHEP session.
    SessionNotFound,
    /// Too many messages or comments in too short a time.
    RateLimited,
    /// Slow mode is on and this viewer commented too recently.
    SlowMode,
    /// The viewer is muted.
    Muted,
    /// The viewer is banned from the room.
    Banned,
    /// The comment is longer than the configured maximum.
    CommentTooLong,
    /// The comment is empty or only whitespace.
    CommentEmpty,
    /// The comment contains a filtered keyword.
    CommentFiltered,
    /// The connection was refused by a connection limit (`server.max_connections`,
    /// `server.max_connections_per_ip`) or a video admission limit per address.
    TooManyConnections,
    /// A configured bound is full (the room's ban or mute list).
    LimitReached,
    /// The server failed internally; the request had no effect.
    Internal,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
}

impl ErrorCode {
    /// The stable numeric code. Never reuse a number for another meaning.
    pub const fn code(self) -> u16 {
        match self {
            Self::MalformedJson => 100,
            Self::UnknownType => 101,
            Self::InvalidMessage => 102,
            Self::UnsupportedProtocol => 103,
            Self::BinaryNotSupported => 104,
            Self::NotJoined => 105,
            Self::AlreadyJoined => 106,
            Self::NotFound => 107,
            Self::TooLarge => 108,
            Self::InvalidSdp => 109,
            Self::UnsupportedMediaType => 110,
            Self::MethodNotAllowed => 111,
            Self::RequestTimeout => 112,
            Self::Unauthorized => 200,
            Self::TokenExpired => 201,
            Self::Forbidden => 202,
            Self::AuthRequired => 203,
            Self::RoomNotFound => 300,
            Self::RoomEnded => 301,
            Self::RoomFull => 302,
            Self::TooManyRooms => 303,
            Self::InvalidTransition => 304,
            Self::CommentNotFound => 305,
            Self::SaleNotFound => 306,
            Self::ProductNotFound => 307,
            Self::SkuNotFound => 308,
            Self::OrderNotFound => 309,
            Self::InsufficientStock => 310,
            Self::InvalidOrderState => 311,
            Self::InvalidSaleState => 312,
            Self::AlreadyExists => 313,
            Self::RoomNotLive => 314,
            Self::MediaUnavailable => 315,
            Self::TooManySubscribers => 316,
            Self::SessionNotFound => 317,
            Self::ReplayNotFound => 318,
            Self::RateLimited => 400,
            Self::SlowMode => 401,
            Self::Muted => 402,
            Self::Banned => 403,
            Self::CommentTooLong => 404,
            Self::CommentEmpty => 405,
            Self::CommentFiltered => 406,
            Self::TooManyConnections => 407,
            Self::LimitReached => 408,
            Self::Internal => 500,
            Self::Unavailable => 501,
        }
    }

    /// The HTTP status the same refusal gets on the HTTP API.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized | Self::TokenExpired | Self::AuthRequired => 401,
            Self::Forbidden | Self::Banned | Self::Muted => 403,
            Self::RoomNotFound
            | Self::CommentNotFound
            | Self::NotFound
            | Self::SaleNotFound
            | Self::ProductNotFound
            | Self::SkuNotFound
            | Self::SessionNotFound
            | Self::ReplayNotFound
            | Self::OrderNotFound => 404,
            Self::RoomEnded
            | Self::InvalidTransition
            | Self::InsufficientStock
            | Self::InvalidOrderState
            | Self::InvalidSaleState
            | Self::AlreadyExists
            | Self::RoomNotLive
            | Self::MediaUnavailable
            | Self::LimitReached => 409,
            Self::TooManySubscribers => 503,
            Self::UnsupportedMediaType => 415,
            Self::MethodNotAllowed => 405,
            Self::RateLimited | Self::SlowMode => 429,
            Self::RoomFull | Self::TooManyRooms | Self::Unavailable | Self::TooManyConnections => {
                503
            }
            Self::RequestTimeout => 408,
            Self::Internal => 500,
            Self::TooLarge => 413,
            _ => 400,
        }
    }
}

/// Why the server closed a WebSocket. [`CloseCode::code`] is the number in the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCode {
    /// 1000: the client closed, or the server answered its close.
    Normal,
    /// 1000: the room ended; nothing more will come.
    RoomEnded,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1003: a binary frame was sent; the protocol is text only.
    UnsupportedData,
    /// 1008: policy violation — failed join on the control channel, join timeout,
    /// or persistent flooding.
    PolicyViolation,
    /// 1009: a frame exceeded `session.max_frame_bytes`.
    MessageTooBig,
    /// 1011: the server hit an internal error.
    InternalError,
    /// 1012: the room restarted after an internal failure; reconnect and join again.
    Restarting,
    /// 4002: the client sent nothing (not even a pong to the server's ping) for
    /// `session.heartbeat_timeout_ms`: the connection is presumed dead.
    HeartbeatTimeout,
    /// 4001: the viewer did not read fast enough; its outbound queue overflowed.
    SlowConsumer,
    /// 4003: the viewer was banned by the anchor.
    Banned,
    /// 4004: the join was refused (room not found, ended, full, or auth failed);
    /// the preceding `error` frame says why.
    JoinRefused,
}

impl CloseCode {
    /// The close code sent on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal | Self::RoomEnded => 1000,
            Self::GoingAway => 1001,
            Self::UnsupportedData => 1003,
            Self::PolicyViolation => 1008,
            Self::MessageTooBig => 1009,
            Self::InternalError => 1011,
            Self::Restarting => 1012,
            Self::HeartbeatTimeout => 4002,
            Self::SlowConsumer => 4001,
            Self::Banned => 4003,
            Self::JoinRefused => 4004,
        }
    }

    /// The short reason sent in the close frame (well under the 123-byte limit).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Normal => "closing",
            Self::RoomEnded => "room ended",
            Self::GoingAway => "server shutting down",
            Self::UnsupportedData => "binary frames are not supported",
            Self::PolicyViolation => "policy violation",
            Self::MessageTooBig => "frame too large",
            Self::InternalError => "internal error",
            Self::Restarting => "room restarted; reconnect",
            Self::HeartbeatTimeout => "no heartbeat",
            Self::SlowConsumer => "slow consumer",
            Self::Banned => "banned",
            Self::JoinRefused => "join refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_unique() {
        let all = [
            ErrorCode::MalformedJson,
            ErrorCode::UnknownType,
            ErrorCode::InvalidMessage,
            ErrorCode::UnsupportedProtocol,
            ErrorCode::BinaryNotSupported,
            ErrorCode::NotJoined,
            ErrorCode::AlreadyJoined,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::Forbidden,
            ErrorCode::AuthRequired,
            ErrorCode::RoomNotFound,
            ErrorCode::RoomEnded,
            ErrorCode::RoomFull,
            ErrorCode::TooManyRooms,
            ErrorCode::InvalidTransition,
            ErrorCode::CommentNotFound,
            ErrorCode::SaleNotFound,
            ErrorCode::ProductNotFound,
            ErrorCode::SkuNotFound,
            ErrorCode::OrderNotFound,
            ErrorCode::InsufficientStock,
            ErrorCode::InvalidOrderState,
            ErrorCode::InvalidSaleState,
            ErrorCode::AlreadyExists,
            ErrorCode::InvalidSdp,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RoomNotLive,
            ErrorCode::MediaUnavailable,
            ErrorCode::TooManySubscribers,
            ErrorCode::SessionNotFound,
            ErrorCode::ReplayNotFound,
            ErrorCode::RateLimited,
            ErrorCode::SlowMode,
            ErrorCode::Muted,
            ErrorCode::Banned,
            ErrorCode::CommentTooLong,
            ErrorCode::CommentEmpty,
            ErrorCode::CommentFiltered,
            ErrorCode::TooManyConnections,
            ErrorCode::LimitReached,
            ErrorCode::RequestTimeout,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ];
        let mut codes: Vec<u16> = all.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
