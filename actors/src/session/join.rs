//! The join policy, pure: which protocol version, which token on which endpoint of which
//! room makes whom. The shell verifies a token's signature and expiry and hands over
//! what it says ([`Bearer`]) or why it is no good ([`TokenError`]); bans and guest
//! access are the room's to check when the session reaches it.

use lockstep_protocol::{ErrorCode, PROTOCOL_VERSION, Role, WireError};

use super::core::{Endpoint, SessionCore};
use crate::room::{Identity, RoomError, SessionId};

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// The token's subject (user id).
    pub sub: String,
    pub role: Role,
    /// The one room the token is for (anchors: the room they run); `None`: any room.
    pub room: Option<String>,
    /// The name to show.
    pub name: String,
}

/// Why a token is no good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    /// Bad signature, malformed, or ids that break the rules (the message says which).
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl WireError for TokenError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            Self::Invalid(_) => ErrorCode::Unauthorized,
        }
    }
}

/// Why a token does not give access to what was asked (the same on WebSocket and HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("an anchor token is required")]
    AnchorTokenRequired,
    #[error("this token is not the anchor of room `{0}`")]
    NotTheAnchor(String),
    #[error("the viewer socket needs a viewer token")]
    NotAViewer,
    #[error("this token is for another room")]
    OtherRoom,
    #[error("merchant tokens cannot watch rooms")]
    MerchantCannotWatch,
}

impl WireError for AccessError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Token(e) => e.code(),
            Self::AnchorTokenRequired => ErrorCode::Unauthorized,
            Self::NotTheAnchor(_)
            | Self::NotAViewer
            | Self::OtherRoom
            | Self::MerchantCannotWatch => ErrorCode::Forbidden,
        }
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("this server speaks protocol {PROTOCOL_VERSION}, not {0}")]
    UnsupportedProtocol(u32),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("no open room `{0}`")]
    RoomNotOpen(String),
    #[error("room `{0}` has closed")]
    RoomClosed(String),
    /// In a cluster: the shared Redis cannot be reached, so the room's owner cannot be
    /// found or told.
    #[error("the cluster cannot be reached; retry")]
    ClusterUnavailable,
    /// The room itself refused (ended, full, banned, guests not admitted, …).
    #[error(transparent)]
    Room(#[from] RoomError),
}

impl From<TokenError> for JoinError {
    fn from(e: TokenError) -> Self {
        Self::Access(e.into())
    }
}

impl WireError for JoinError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedProtocol(_) => ErrorCode::UnsupportedProtocol,
            Self::Access(e) => e.code(),
            Self::RoomNotOpen(_) | Self::RoomClosed(_) => ErrorCode::RoomNotFound,
            Self::ClusterUnavailable => ErrorCode::Unavailable,
            Self::Room(e) => e.code(),
        }
    }
}

impl SessionCore {
    /// Who a `join` makes this session in `room`: checks the protocol version, then the
    /// token (`None`: none sent), then that its role and room fit this endpoint. A viewer
    /// without a token is the guest `guest-<session>`; the control channel needs the
    /// room's anchor.
    pub fn admit(
        &self,
        protocol: u32,
        token: Option<Result<Bearer, TokenError>>,
        room: &str,
        session: SessionId,
    ) -> Result<Identity, JoinError> {
        if protocol != PROTOCOL_VERSION {
            return Err(JoinError::UnsupportedProtocol(protocol));
        }
        let bearer = token.transpose()?;
        let identity = |b: Bearer, role| Identity {
            user: Some(b.sub),
            name: b.name,
            role,
        };
        match (self.endpoint(), bearer) {
            (Endpoint::Viewer, None) => Ok(Identity {
                user: None,
                name: format!("guest-{}", session.0),
                role: Role::Viewer,
            }),
            (Endpoint::Viewer, Some(b)) if b.role != Role::Viewer => {
                Err(AccessError::NotAViewer.into())
            }
            (Endpoint::Viewer, Some(b)) if b.room.as_deref().is_some_and(|r| r != room) => {
                Err(AccessError::OtherRoom.into())
            }
            (Endpoint::Viewer, Some(b)) => Ok(identity(b, Role::Viewer)),
            (Endpoint::Control, None) => Err(AccessError::AnchorTokenRequired.into()),
            (Endpoint::Control, Some(b))
                if b.role == Role::Anchor && b.room.as_deref() == Some(room) =>
            {
                Ok(identity(b, Role::Anchor))
            }
            (Endpoint::Control, Some(_)) => Err(AccessError::NotTheAnchor(room.to_owned()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;

    fn core(endpoint: Endpoint) -> SessionCore {
        SessionCore::new(endpoint, &SessionConfig::default(), 0)
    }

    fn bearer(role: Role, room: Option<&str>) -> Option<Result<Bearer, TokenError>> {
        Some(Ok(Bearer {
            sub: "u1".into(),
            role,
            room: room.map(Into::into),
            name: "Una".into(),
        }))
    }

    fn admit(
        endpoint: Endpoint,
        protocol: u32,
        token: Option<Result<Bearer, TokenError>>,
    ) -> Result<Identity, JoinError> {
        core(endpoint).admit(protocol, token, "r1", SessionId(7))
    }

    #[test]
    fn viewers_join_as_guests_or_as_their_token_says() {
        let guest = admit(Endpoint::Viewer, PROTOCOL_VERSION, None).unwrap();
        assert_eq!((guest.user, guest.name), (None, "guest-7".to_owned()));
        for room in [None, Some("r1")] {
            let viewer = admit(
                Endpoint::Viewer,
                PROTOCOL_VERSION,
                bearer(Role::Viewer, room),
            );
            let viewer = viewer.unwrap();
            assert_eq!(viewer.user.as_deref(), Some("u1"));
            assert_eq!((viewer.name.as_str(), viewer.role), ("Una", Role::Viewer));
        }
    }

    #[test]
    fn the_control_channel_takes_only_this_rooms_anchor() {
        let anchor = admit(
            Endpoint::Control,
            PROTOCOL_VERSION,
            bearer(Role::Anchor, Some("r1")),
        );
        assert_eq!(anchor.unwrap().role, Role::Anchor);
        let code = |r: Result<Identity, JoinError>| r.unwrap_err().code();
        assert_eq!(
            code(admit(Endpoint::Control, PROTOCOL_VERSION, None)),
            ErrorCode::Unauthorized
        );
        for wrong in [
            bearer(Role::Anchor, Some("r2")),
            bearer(Role::Viewer, Some("r1")),
        ] {
            assert_eq!(
                code(admit(Endpoint::Control, PROTOCOL_VERSION, wrong)),
                ErrorCode::Forbidden
            );
        }
    }

    #[test]
    fn refusals_come_in_order_protocol_then_token_then_scope() {
        let expired = Some(Err(TokenError::Expired));
        assert_eq!(
            admit(Endpoint::Viewer, 99, expired.clone()).unwrap_err(),
            JoinError::UnsupportedProtocol(99)
        );
        assert_eq!(
            admit(Endpoint::Viewer, PROTOCOL_VERSION, expired)
                .unwrap_err()
                .code(),
            ErrorCode::TokenExpired
        );
        assert_eq!(
            admit(
                Endpoint::Viewer,
                PROTOCOL_VERSION,
                bearer(Role::Viewer, Some("r2"))
            )
            .unwrap_err(),
            JoinError::Access(AccessError::OtherRoom)
        );
        for role in [Role::Anchor, Role::Merchant] {
            assert_eq!(
                admit(Endpoint::Viewer, PROTOCOL_VERSION, bearer(role, Some("r1"))).unwrap_err(),
                JoinError::Access(AccessError::NotAViewer)
            );
        }
    }
}
