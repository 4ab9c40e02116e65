//! Tokens: HMAC-SHA256 signed JWTs carrying role, subject, scope and expiry.
//! Verification maps every failure to a wire [`ErrorCode`] so the caller can answer
//! with a clear error; nothing here panics on input.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use lockstep_protocol::{ErrorCode, Role};
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

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, (ErrorCode, String)> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    (ErrorCode::TokenExpired, "token has expired".into())
                }
                _ => (ErrorCode::Unauthorized, format!("invalid token: {e}")),
            })
    }

    /// Verifies an anchor token for `room`.
    pub fn anchor_of(
        &self,
        token: Option<&str>,
        room: &str,
    ) -> Result<Claims, (ErrorCode, String)> {
        let token = token.ok_or((
            ErrorCode::Unauthorized,
            "an anchor token is required".to_string(),
        ))?;
        let claims = self.verify(token)?;
        if claims.role != Role::Anchor || claims.room.as_deref() != Some(room) {
            return Err((
                ErrorCode::Forbidden,
                format!("this token is not the anchor of room `{room}`"),
            ));
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    lockstep_actors::clock::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

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
            auth.anchor_of(Some(&t), "r2").unwrap_err().0,
            ErrorCode::Forbidden
        );
        let viewer = auth.issue(&claims(Role::Viewer, Some("r1"), unix_now() + 60));
        assert_eq!(
            auth.anchor_of(Some(&viewer), "r1").unwrap_err().0,
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn rejects_expired_forged_and_garbage() {
        let auth = Auth::new("s3cret");
        let expired = auth.issue(&claims(Role::Viewer, None, unix_now() - 5));
        assert_eq!(
            auth.verify(&expired).unwrap_err().0,
            ErrorCode::TokenExpired
        );
        let forged = Auth::new("other").issue(&claims(Role::Anchor, Some("r1"), unix_now() + 60));
        assert_eq!(auth.verify(&forged).unwrap_err().0, ErrorCode::Unauthorized);
        assert_eq!(
            auth.verify("not.a.token").unwrap_err().0,
            ErrorCode::Unauthorized
        );
    }
}
