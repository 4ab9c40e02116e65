//! Why a session refused a frame before it reached the room, and the wire code each
//! reason is sent with ([`WireError`]).

use lockstep_protocol::{ErrorCode, WireError};

/// A session's refusal of one inbound frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Over the message rate; the client may retry after `retry_after_ms`.
    #[error("too many messages")]
    TooManyMessages { retry_after_ms: u64 },
    /// Over the rate for too long: the connection is closed.
    #[error("message flood")]
    Flood,
    #[error("send JSON text frames")]
    Binary,
    #[error("this connection already joined")]
    AlreadyJoined,
    #[error("send `join` first")]
    NotJoined,
    #[error("no `join` before the join timeout")]
    JoinTimeout,
    #[error("anchor commands are only accepted on the control channel")]
    ControlOnViewerSocket,
    #[error("ordering needs a viewer token")]
    OrderNeedsToken,
    /// One negotiation at a time per connection.
    #[error("an offer of this connection is still being answered")]
    OfferPending,
    #[error("this session has no video subscription (send rtc_offer first)")]
    NotSubscribed,
}

impl WireError for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::TooManyMessages { .. } | Self::Flood | Self::OfferPending => {
                ErrorCode::RateLimited
            }
            Self::NotSubscribed => ErrorCode::SessionNotFound,
            Self::Binary => ErrorCode::BinaryNotSupported,
            Self::AlreadyJoined => ErrorCode::AlreadyJoined,
            Self::NotJoined | Self::JoinTimeout => ErrorCode::NotJoined,
            Self::ControlOnViewerSocket => ErrorCode::Forbidden,
            Self::OrderNeedsToken => ErrorCode::AuthRequired,
        }
    }

    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::TooManyMessages { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}
