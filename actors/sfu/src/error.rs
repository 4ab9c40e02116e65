//! Why a media request failed, in the SFU's own terms, and the wire code each reason is
//! sent with ([`WireError`]).

use lockstep_protocol::{ErrorCode, WireError};

/// Why a media request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the anchor is not streaming in this room")]
    NotStreaming,
    #[error("video is turned off on this server (media.enabled)")]
    Disabled,
    #[error(
        "this room's video has its maximum of {0} subscribers (media.max_subscribers_per_room)"
    )]
    RoomFull(usize),
    #[error("this server has its maximum of {0} video subscribers (media.max_subscribers_total)")]
    ServerFull(usize),
    #[error("{ip} already holds {max} video subscriptions (media.max_subscribers_per_ip)")]
    TooManyFromAddress { ip: std::net::IpAddr, max: usize },
    #[error("the offer is {bytes} bytes; the limit is {max} (media.max_sdp_bytes)")]
    OfferTooLarge { bytes: usize, max: usize },
    #[error("the body is not an SDP offer (it must start with v=0 and have media sections)")]
    NotAnOffer,
    #[error("the offer sends no audio or video")]
    NothingSent,
    /// webrtc-rs refused the offer; its reason follows.
    #[error("the offer does not parse: {0}")]
    Unparsable(String),
    #[error("the offer cannot be applied: {0}")]
    NotApplicable(String),
    #[error("no answer is possible for this offer: {0}")]
    Unanswerable(String),
    /// Processing the offer panicked inside webrtc-rs (contained; counted).
    #[error("the offer could not be processed")]
    Unprocessable,
    #[error("unknown layer `{0}`; use auto, low, mid or high")]
    UnknownLayer(String),
    #[error("no publishing session in this room")]
    NoPublisher,
    #[error("no such playback session in this room")]
    NoSubscriber,
    #[error("this playback session belongs to another viewer")]
    NotYours,
    #[error("ending this playback session needs the token that started it")]
    OwnerTokenNeeded,
    /// An actor of the media tree stopped while answering.
    #[error("the {0} stopped")]
    Stopped(&'static str),
    #[error("the connection closed while gathering candidates")]
    ClosedWhileGathering,
    #[error("gathering ICE candidates timed out")]
    GatheringTimedOut,
    /// webrtc-rs failed on our side of a negotiation; its reason follows.
    #[error("{0}")]
    Engine(String),
    /// Cluster mode: the room's stream could not be pulled from the node that owns it.
    #[error("the room's video could not be pulled from its node: {0}; retry")]
    Upstream(String),
}

impl MediaError {
    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        Self::Engine(e.to_string())
    }
}

impl WireError for MediaError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotStreaming | Self::Disabled => ErrorCode::MediaUnavailable,
            Self::RoomFull(_) | Self::ServerFull(_) => ErrorCode::TooManySubscribers,
            Self::TooManyFromAddress { .. } => ErrorCode::TooManyConnections,
            Self::OfferTooLarge { .. }
            | Self::NotAnOffer
            | Self::NothingSent
            | Self::Unparsable(_)
            | Self::NotApplicable(_)
            | Self::Unanswerable(_)
            | Self::Unprocessable => ErrorCode::InvalidSdp,
            Self::UnknownLayer(_) => ErrorCode::InvalidMessage,
            Self::NoPublisher | Self::NoSubscriber => ErrorCode::SessionNotFound,
            Self::NotYours => ErrorCode::Forbidden,
            Self::OwnerTokenNeeded => ErrorCode::AuthRequired,
            Self::Stopped(_)
            | Self::ClosedWhileGathering
            | Self::GatheringTimedOut
            | Self::Engine(_) => ErrorCode::Internal,
            Self::Upstream(_) => ErrorCode::Unavailable,
        }
    }
}
