//! The video endpoints: WHIP ingest for the anchor (RFC 9725: `POST` an SDP offer,
//! `201` with the answer and the session's `Location`, `DELETE` to stop), WHEP playback
//! for standard players, and the glue that lets rooms see their video (live/away
//! notices, the media clock for link drops, stopping the video when a room ends).

use std::sync::{Arc, Weak};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::media::RoomMedia;
use lockstep_actors::room::{SetMedia, Snapshot};
use lockstep_protocol::{ErrorCode, MediaInfo, Role, RoomSnapshot, RoomState};
use lockstep_sfu::layers::Preference;
use lockstep_sfu::{MediaDirectory, MediaError};

use crate::http::{ApiError, bearer};
use crate::state::AppState;

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        let code = match &e {
            MediaError::Unavailable(_) => ErrorCode::MediaUnavailable,
            MediaError::TooManySubscribers(_) => ErrorCode::TooManySubscribers,
            MediaError::InvalidSdp(_) => ErrorCode::InvalidSdp,
            MediaError::SessionNotFound(_) => ErrorCode::SessionNotFound,
            MediaError::Internal(message) => {
                tracing::error!(error = %message, "media failure");
                ErrorCode::Internal
            }
        };
        ApiError::new(code, e.to_string())
    }
}

/// Lets rooms see their video without depending on the SFU.
pub struct RoomVideo(pub Arc<MediaDirectory>);

impl RoomMedia for RoomVideo {
    fn latest_frame(&self, room: &str) -> Option<(u32, u64)> {
        self.0
            .latest_frame(room)
            .map(|frame| (frame.rtp_ts, frame.arrived_ms))
    }

    fn playout_delay_ms(&self) -> u64 {
        u64::from(self.0.config().playout_delay_ms)
    }

    fn room_ended(&self, room: &str) {
        self.0.end_room(room);
    }
}

/// The hook the SFU calls when a room's stream goes live or away: tell the room, which
/// tells every viewer.
pub fn live_hook(
    rooms: Weak<RoomDirectory>,
    playout_delay_ms: u16,
) -> lockstep_sfu::room::LiveHook {
    Arc::new(move |room: &str, live: bool| {
        if let Some(addr) = rooms.upgrade().and_then(|d| d.get(room)) {
            addr.do_send(SetMedia(MediaInfo {
                live,
                playout_delay_ms,
            }));
        }
    })
}

fn sdp_body(req: &HttpRequest, body: web::Bytes) -> Result<String, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/sdp") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the SDP offer with Content-Type: application/sdp",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::InvalidSdp, "the offer is not UTF-8 text"))
}

fn answer(location: String, sdp: String) -> HttpResponse {
    HttpResponse::Created()
        .content_type("application/sdp")
        .insert_header((header::LOCATION, location))
        .body(sdp)
}

/// The room's current snapshot, or 404 / `room_ended`.
async fn room_snapshot(state: &AppState, room: &str) -> Result<RoomSnapshot, ApiError> {
    let addr = state
        .directory
        .get(room)
        .ok_or_else(|| ApiError::new(ErrorCode::RoomNotFound, format!("no open room `{room}`")))?;
    addr.send(Snapshot)
        .await
        .map_err(|_| ApiError::new(ErrorCode::RoomEnded, "the room ended"))
}

fn parse_session(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::new(ErrorCode::SessionNotFound, format!("no session `{id}`")))
}

/// `POST /whip/{room}`: the room's anchor publishes. The room must be live.
pub async fn whip_publish(
    req: HttpRequest,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    state.auth.anchor_of(bearer(&req), &room)?;
    let offer = sdp_body(&req, body)?;
    let snapshot = room_snapshot(&state, &room).await?;
    if snapshot.state != RoomState::Live {
        return Err(ApiError::new(
            ErrorCode::RoomNotLive,
            format!(
                "the room is {:?}; send go_live on the control channel first",
                snapshot.state
            )
            .to_lowercase(),
        ));
    }
    let (session, sdp) = state.media.publish(&room, offer).await?;
    Ok(answer(format!("/whip/{room}/{session}"), sdp))
}

/// `DELETE /whip/{room}/{session}`: the anchor stops publishing.
pub async fn whip_stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, session) = path.into_inner();
    state.auth.anchor_of(bearer(&req), &room)?;
    state
        .media
        .unpublish(&room, parse_session(&session)?)
        .await?;
    Ok(HttpResponse::Ok().finish())
}

/// `POST /whep/{room}`: a player subscribes. Needs a viewer token unless the room lets
/// anonymous viewers in.
pub async fn whep_subscribe(
    req: HttpRequest,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    let snapshot = room_snapshot(&state, &room).await?;
    match bearer(&req) {
        Some(token) => {
            let claims = state.auth.verify(token).map_err(ApiError::from)?;
            if claims.room.as_deref().is_some_and(|r| r != room) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this token is for another room",
                ));
            }
            if claims.role == Role::Merchant {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "merchant tokens cannot watch",
                ));
            }
        }
        None => {
            if !snapshot.allow_anonymous {
                return Err(ApiError::new(
                    ErrorCode::AuthRequired,
                    "this room needs a viewer token (Authorization: Bearer …)",
                ));
            }
        }
    }
    let offer = sdp_body(&req, body)?;
    let (session, sdp) = state
        .media
        .subscribe(&room, offer, Preference::Auto)
        .await?;
    Ok(answer(format!("/whep/{room}/{session}"), sdp))
}

/// `DELETE /whep/{room}/{session}`: the player stops.
pub async fn whep_stop(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, session) = path.into_inner();
    if state
        .media
        .unsubscribe(&room, parse_session(&session)?)
        .await
    {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("no playback session `{session}` in room `{room}`"),
        ))
    }
}

/// `PATCH` on a WHIP/WHEP session: trickle ICE and ICE restarts are not supported (every
/// candidate is in the offer and the answer), so RFC 9725's answer is 405.
pub async fn no_trickle() -> HttpResponse {
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        "trickle ICE is not supported: put every candidate in the offer",
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    response.headers_mut().insert(
        header::ALLOW,
        header::HeaderValue::from_static("POST, DELETE"),
    );
    response
}
