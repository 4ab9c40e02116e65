//! Lockstep's wire protocol: the JSON messages viewers and anchors exchange with a room
//! over WebSocket, and the numeric error and close codes the server answers with.
//!
//! This crate owns only types and their (de)serialization. It has no runtime, no I/O and
//! no knowledge of rooms; the server and the load generator both depend on it, so a
//! message means the same thing on both ends. The human-readable reference is
//! `docs/protocol.md` in the repository.
//!
//! Every message is a JSON object with a `type` tag. A client opens with
//! [`ClientMsg::Join`] carrying [`PROTOCOL_VERSION`]; the server answers
//! [`ServerMsg::Welcome`] or an [`ServerMsg::Error`].

mod client;
mod codes;
mod decode;
mod refusal;
mod room_id;
mod sale;
mod server;

pub use client::{ClientMsg, ControlCmd, FunnelStep};
pub use codes::{CloseCode, ErrorCode};
pub use decode::{DecodeError, decode_client};
pub use refusal::WireError;
pub use room_id::{InvalidRoomId, MAX_ROOM_ID_CHARS, RoomId};
pub use sale::{LinkCard, OrderOutcome, SaleState, SaleStock};
pub use server::{
    Comment, LikeTally, MediaInfo, ModerationAction, RoomSnapshot, RoomState, ServerMsg, You,
};

/// The protocol version this build speaks. A `join` naming another version is refused
/// with [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Who a connection acts as; carried in tokens and in the welcome frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches, comments, likes, buys.
    Viewer,
    /// Runs one room: state, moderation, links.
    Anchor,
    /// Owns products and stock through the HTTP inventory API.
    Merchant,
}
