//! Tokens: HMAC-SHA256 signed JWTs carrying role, subject, scope and expiry.
//! Verification turns every failure into a [`TokenError`] (and scope checks into an
//! [`AccessError`]) so the caller can answer with a clear error; nothing here panics on
//! input. A token's ids are checked too:
//! subjects and merchant ids are 1–128 bytes without control characters, rooms are
//! valid room ids; display names are cleaned where they are shown.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use lockstep_actors::session::{AccessError, Bearer, TokenError};
use lockstep_protocol::{Role, RoomId};
use serde::{Deserialize, Serialize};

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id (viewer, anchor) or merchant id.
    pub sub: String,
    pub role: Role,
    /// For anchors: the one room they run. For viewers: the room they may join, or any
    /// room when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// For merchants: the merchant whose data they may see and change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Display name; defaults to the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// What a replay's media URL carries (see [`Auth::issue_media`]).
#[derive(Debug, Serialize, Deserialize)]
struct MediaGrant {
    sub: String,
    replay: i64,
    exp: u64,
}

/// What a node sends with its request for a room's stream (see [`Auth::issue_uplink`]).
#[derive(Debug, Serialize, Deserialize)]
struct UplinkGrant {
    sub: String,
    room: String,
    exp: u64,
}

/// The subject of an uplink grant, which no user token carries.
const UPLINK_SUBJECT: &str = "node-uplink";

/// Longest subject or merchant id a token may carry, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Longest display name shown, in characters (longer ones are cut).
pub const MAX_NAME_CHARS: usize = 64;

impl Claims {
    /// The name to show: the token's `name` without control characters and at most
    /// [`MAX_NAME_CHARS`] long, or the subject when that leaves nothing.
    pub fn display_name(&self) -> String {
        let name = self
            .name
            .as_deref()
            .map(|n| lockstep_actors::text::clean_label(n, MAX_NAME_CHARS))
            .unwrap_or_default();
        if name.is_empty() {
            lockstep_actors::text::clean_label(&self.sub, MAX_NAME_CHARS)
        } else {
            name
        }
    }

    /// What the token says, for the join policy.
    pub fn into_bearer(self) -> Bearer {
        Bearer {
            name: self.display_name(),
            sub: self.sub,
            role: self.role,
            room: self.room,
        }
    }

    fn check_ids(&self) -> Result<(), String> {
        let id_ok = |id: &str| {
            (1..=MAX_ID_BYTES).contains(&id.len()) && !lockstep_actors::text::has_disallowed(id)
        };
        if !id_ok(&self.sub) {
            return Err("its subject must be 1-128 bytes without control characters".into());
        }
        if self.merchant.as_deref().is_some_and(|m| !id_ok(m)) {
            return Err("its merchant must be 1-128 bytes without control characters".into());
        }
        if let Some(Err(e)) = self.room.as_deref().map(RoomId::parse) {
            return Err(format!("its room: {e}"));
        }
        Ok(())
    }
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        // HS256 signing of a serializable struct has no failure mode.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature, expiry and the ids the token carries.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        claims.check_ids().map_err(TokenError::Invalid)?;
        Ok(claims)
    }

    /// A grant to fetch replay `replay`'s recording for `ttl_secs` (the `access` query of
    /// its media URL: a `<video>` cannot send headers). It is no token: it carries no
    /// role, so nothing but the media endpoint takes it.
    pub fn issue_media(&self, replay: i64, ttl_secs: u64) -> String {
        let grant = MediaGrant {
            sub: "replay-media".into(),
            replay,
            exp: unix_now() + ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &grant, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// A grant for one node to pull `room`'s stream from another (cluster mode), signed
    /// with the secret every node shares; lasts `ttl_secs`.
    pub fn issue_uplink(&self, room: &str, ttl_secs: u64) -> String {
        let grant = UplinkGrant {
            sub: UPLINK_SUBJECT.into(),
            room: room.to_owned(),
            exp: unix_now() + ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &grant, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The room an uplink grant is for, if it is valid.
    pub fn uplink_grant(&self, grant: &str) -> Option<String> {
        jsonwebtoken::decode::<UplinkGrant>(grant, &self.decoding, &self.validation)
            .ok()
            .filter(|data| data.claims.sub == UPLINK_SUBJECT)
            .map(|data| data.claims.room)
    }

    /// The replay a media grant is for, if it is valid.
    pub fn media_grant(&self, grant: &str) -> Option<i64> {
        jsonwebtoken::decode::<MediaGrant>(grant, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims.replay)
    }

    /// The claims of a token if one was given (`None` without a token); an invalid
    /// token is an error, never treated as no token.
    pub fn optional(&self, token: Option<&str>) -> Result<Option<Claims>, TokenError> {
        token.map(|t| self.verify(t)).transpose()
    }

    /// Verifies an anchor token for `room`.
    pub fn anchor_of(&self, token: Option<&str>, room: &str) -> Result<Claims, AccessError> {
        let token = token.ok_or(AccessError::AnchorTokenRequired)?;
        let claims = self.verify(token)?;
        if claims.role != Role::Anchor || claims.room.as_deref() != Some(room) {
            return Err(AccessError::NotTheAnchor(room.to_owned()));
        }
        Ok(claims)
    }
}

/// Who is looking at a room, from the token they sent (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watcher {
    /// No token.
    Guest,
    /// A viewer token valid for the room; the subject.
    Viewer(String),
    /// The room's own anchor; the subject.
    Anchor(String),
}

impl Watcher {
    /// The user to check bans and anonymity against (`None` for a guest); the anchor is
    /// never checked.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Guest => None,
            Self::Viewer(user) | Self::Anchor(user) => Some(user),
        }
    }
}

impl Auth {
    /// Who may watch `room` with this token: a guest without one, a viewer whose token
    /// is for any room or this one, or the room's anchor. Anyone else is refused here;
    /// bans and guest access are the room's to check.
    pub fn watcher(&self, token: Option<&str>, room: &str) -> Result<Watcher, AccessError> {
        let Some(claims) = self.optional(token)? else {
            return Ok(Watcher::Guest);
        };
        match claims.role {
            Role::Viewer if claims.room.as_deref().is_none_or(|r| r == room) => {
                Ok(Watcher::Viewer(claims.sub))
            }
            Role::Viewer => Err(AccessError::OtherRoom),
            Role::Anchor if claims.room.as_deref() == Some(room) => Ok(Watcher::Anchor(claims.sub)),
            Role::Anchor => Err(AccessError::NotTheAnchor(room.to_owned())),
            Role::Merchant => Err(AccessError::MerchantCannotWatch),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    lockstep_actors::clock::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::{ErrorCode, WireError};

    fn claims(role: Role, room: Option<&str>, exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            role,
            room: room.map(Into::into),
            merchant: None,
            name: None,
            exp,
        }
    }

    #[test]
    fn round_trip_and_scope() {
        let auth = Auth::new("s3cret");
        let t = auth.issue(&claims(Role::Anchor, Some("r1"), unix_now() + 60));
        assert_eq!(auth.verify(&t).unwrap().room.as_deref(), Some("r1"));
        assert!(auth.anchor_of(Some(&t), "r1").is_ok());
        assert_eq!(
            auth.anchor_of(Some(&t), "r2").unwrap_err().code(),
            ErrorCode::Forbidden
        );
        let viewer = auth.issue(&claims(Role::Viewer, Some("r1"), unix_now() + 60));
        assert_eq!(
            auth.anchor_of(Some(&viewer), "r1").unwrap_err().code(),
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn ids_are_checked_and_names_cleaned() {
        let auth = Auth::new("s3cret");
        let mut c = claims(Role::Viewer, None, unix_now() + 60);
        c.sub = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            auth.verify(&auth.issue(&c)).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        c.sub = "nul\u{0}".into();
        assert_eq!(
            auth.verify(&auth.issue(&c)).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        c.sub = "u1".into();
        c.room = Some("bad room".into());
        assert_eq!(
            auth.verify(&auth.issue(&c)).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        c.room = None;
        c.name = Some(" Al\u{202E}ice\u{0} ".into());
        assert_eq!(
            auth.verify(&auth.issue(&c)).unwrap().display_name(),
            "Alice"
        );
        c.name = Some("\u{7}".into());
        assert_eq!(
            c.display_name(),
            "u1",
            "an empty name falls back to the subject"
        );
    }

    #[test]
    fn rejects_expired_forged_and_garbage() {
        let auth = Auth::new("s3cret");
        let expired = auth.issue(&claims(Role::Viewer, None, unix_now() - 5));
        assert_eq!(
            auth.verify(&expired).unwrap_err().code(),
            ErrorCode::TokenExpired
        );
        let forged = Auth::new("other").issue(&claims(Role::Anchor, Some("r1"), unix_now() + 60));
        assert_eq!(
            auth.verify(&forged).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        assert_eq!(
            auth.verify("not.a.token").unwrap_err().code(),
            ErrorCode::Unauthorized
        );
    }
}
