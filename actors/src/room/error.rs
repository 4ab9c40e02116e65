//! Why a room refused a session's request, in the room's own terms, and the wire code
//! each reason is sent with ([`WireError`]).

use lockstep_protocol::{ErrorCode, RoomState, WireError};

/// A room's refusal; nothing changed. Serializable: in a cluster the room's owner node
/// sends it to the node holding the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RoomError {
    #[error("the room has ended")]
    Ended,
    #[error("session already joined")]
    AlreadyJoined,
    #[error("join the room first")]
    NotJoined,
    #[error("the room is full")]
    Full,
    /// A guest, where the anchor admits only signed-in viewers.
    #[error("this room needs a viewer token")]
    GuestsNotAdmitted,
    #[error("commenting needs a viewer token")]
    CommentNeedsToken,
    #[error("you are banned from this room")]
    Banned,
    #[error("you are muted")]
    Muted { retry_after_ms: u64 },
    #[error("slow mode: one comment every {seconds}s")]
    SlowMode { seconds: u32, retry_after_ms: u64 },
    #[error("commenting too fast")]
    CommentRate { retry_after_ms: u64 },
    #[error("comment is empty")]
    CommentEmpty,
    #[error("comment contains control characters")]
    CommentControlChars,
    #[error("comment has {chars} characters; the limit is {max}")]
    CommentTooLong { chars: usize, max: usize },
    #[error("comment contains a filtered word")]
    CommentFiltered,
    #[error("like count must be between 1 and {max}")]
    LikeCount { max: u32 },
    /// An anchor command came from a viewer's socket.
    #[error("anchor commands need the control channel")]
    NotAnchor,
    /// A sale command (drop a link, close a sale) came from a viewer's socket.
    #[error("sale commands need the control channel")]
    SaleNeedsAnchor,
    #[error("cannot go from {} to {}", state_name(*from), state_name(*to))]
    Transition { from: RoomState, to: RoomState },
    #[error("comment {0} is not in the recent history")]
    CommentNotFound(u64),
    #[error("{0} users are muted, the most this room allows (room.max_mutes)")]
    TooManyMuted(usize),
    #[error("{0} users are banned, the most this room allows (room.max_bans)")]
    TooManyBanned(usize),
    /// The room's actor restarted after a fault; the session must join again.
    #[error("the room restarted; join again")]
    Restarted,
    #[error("the server holds its maximum of {0} rooms")]
    TooManyRooms(usize),
    /// A sale command reached the room core; the room shell handles those (a bug).
    #[error("sale commands are handled by the room shell")]
    SaleCommandInCore,
}

fn state_name(state: RoomState) -> &'static str {
    match state {
        RoomState::Created => "created",
        RoomState::Live => "live",
        RoomState::Paused => "paused",
        RoomState::Ended => "ended",
    }
}

impl WireError for RoomError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Ended => ErrorCode::RoomEnded,
            Self::AlreadyJoined => ErrorCode::AlreadyJoined,
            Self::NotJoined => ErrorCode::NotJoined,
            Self::Full => ErrorCode::RoomFull,
            Self::GuestsNotAdmitted | Self::CommentNeedsToken => ErrorCode::AuthRequired,
            Self::Banned => ErrorCode::Banned,
            Self::Muted { .. } => ErrorCode::Muted,
            Self::SlowMode { .. } => ErrorCode::SlowMode,
            Self::CommentRate { .. } => ErrorCode::RateLimited,
            Self::CommentEmpty => ErrorCode::CommentEmpty,
            Self::CommentControlChars | Self::LikeCount { .. } => ErrorCode::InvalidMessage,
            Self::CommentTooLong { .. } => ErrorCode::CommentTooLong,
            Self::CommentFiltered => ErrorCode::CommentFiltered,
            Self::NotAnchor | Self::SaleNeedsAnchor => ErrorCode::Forbidden,
            Self::Transition { .. } => ErrorCode::InvalidTransition,
            Self::CommentNotFound(_) => ErrorCode::CommentNotFound,
            Self::TooManyMuted(_) | Self::TooManyBanned(_) => ErrorCode::LimitReached,
            Self::Restarted => ErrorCode::Unavailable,
            Self::TooManyRooms(_) => ErrorCode::TooManyRooms,
            Self::SaleCommandInCore => ErrorCode::Internal,
        }
    }

    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Muted { retry_after_ms }
            | Self::SlowMode { retry_after_ms, .. }
            | Self::CommentRate { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}
