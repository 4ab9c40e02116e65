//! Cluster mode: video over a viewer's own socket on a node that does not run the room.
//! The session's `rtc_offer` goes to the room's node as a WHEP request made for the
//! session's user (a short-lived viewer token from the secret every node shares; a guest
//! goes as a guest), its answer comes back as `rtc_answer`, and the media flows from that
//! node's SFU to the viewer. `rtc_close` and the session's end delete the WHEP session;
//! choosing a layer (`rtc_layer`) needs the room's own node.

use actix_web::web::Bytes;
use lockstep_protocol::{ErrorCode, Role, WireError};

use crate::auth::{Claims, unix_now};
use crate::forward::call_owner;
use crate::http::ApiError;
use crate::state::AppState;

/// How long the token a node makes for a remote subscription lasts.
const TOKEN_SECS: u64 = 600;

/// A subscription held on the room's node.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The WHEP session's path there (`/whep/{room}/{session}`).
    location: String,
    token: Option<String>,
}

/// A refusal from the room's node, or from reaching it, for the session's socket.
#[derive(Debug)]
pub struct Refused(pub ApiError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl WireError for Refused {
    fn code(&self) -> ErrorCode {
        self.0.code
    }
}

/// Subscribes `user` (a guest when `None`) to `room`'s video on the room's node; the
/// subscription and the SDP answer.
pub async fn subscribe(
    state: &AppState,
    room: &str,
    offer: String,
    user: Option<&str>,
) -> Result<(Remote, String), Refused> {
    let token = user.map(|user| {
        state.auth.issue(&Claims {
            sub: user.to_owned(),
            role: Role::Viewer,
            room: Some(room.to_owned()),
            merchant: None,
            name: None,
            exp: unix_now() + TOKEN_SECS,
        })
    });
    let mut headers = vec![("content-type".to_owned(), b"application/sdp".to_vec())];
    if let Some(token) = &token {
        headers.push((
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        ));
    }
    let path = format!("/whep/{room}");
    let answer = call_owner(state, room, ("POST", &path), headers, Bytes::from(offer))
        .await
        .unwrap_or_else(|| {
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "the room moved to this node meanwhile; send the offer again",
            ))
        })
        .map_err(Refused)?;
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = answer.text().await.unwrap_or_default();
    match (status, location) {
        (201, Some(location)) => Ok((Remote { location, token }, body)),
        _ => Err(Refused(refusal(&body))),
    }
}

/// Ends a subscription held on the room's node (in the background).
pub fn unsubscribe(state: &std::sync::Arc<AppState>, room: &str, remote: Remote) {
    let (state, room) = (state.clone(), room.to_owned());
    actix_web::rt::spawn(async move {
        let headers = remote
            .token
            .map(|t| {
                vec![(
                    "authorization".to_owned(),
                    format!("Bearer {t}").into_bytes(),
                )]
            })
            .unwrap_or_default();
        let _ = call_owner(
            &state,
            &room,
            ("DELETE", &remote.location),
            headers,
            Bytes::new(),
        )
        .await;
    });
}

/// The room's node's error answer as this node's refusal.
fn refusal(body: &str) -> ApiError {
    let parsed: Option<(ErrorCode, String)> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let code = serde_json::from_value(v.get("name")?.clone()).ok()?;
            Some((code, v.get("message")?.as_str()?.to_owned()))
        });
    match parsed {
        Some((code, message)) => ApiError::new(code, message),
        None => ApiError::new(
            ErrorCode::Unavailable,
            "the room's node did not answer the offer; retry",
        ),
    }
}
