//! Room ids: 1–64 characters of `[A-Za-z0-9_-]`, the same in URLs, tokens and sales. A
//! [`RoomId`] can only be made by [`RoomId::parse`], so one that exists is valid.

use crate::{ErrorCode, WireError};

/// Longest room id, in characters (all ASCII).
pub const MAX_ROOM_ID_CHARS: usize = 64;

/// A valid room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

/// Why a string is not a room id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRoomId;

impl std::fmt::Display for InvalidRoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "room ids are 1-{MAX_ROOM_ID_CHARS} characters of [A-Za-z0-9_-]"
        )
    }
}

impl std::error::Error for InvalidRoomId {}

impl WireError for InvalidRoomId {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidMessage
    }
}

impl RoomId {
    pub fn parse(id: &str) -> Result<Self, InvalidRoomId> {
        let valid = (1..=MAX_ROOM_ID_CHARS).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| Self(id.to_owned())).ok_or(InvalidRoomId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoomId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_parse() {
        for good in ["r", "Room_1-a", &"x".repeat(64)] {
            assert_eq!(RoomId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "has space", "é", "a/b", "a.b", &"x".repeat(65), "nul\0"] {
            assert_eq!(RoomId::parse(bad), Err(InvalidRoomId), "{bad:?}");
        }
    }
}
