//! The video endpoints: WHIP ingest for the anchor (RFC 9725: `POST` an SDP offer,
//! `201` with the answer and the session's `Location`, `DELETE` to stop), WHEP playback
//! for standard players, and the glue that lets rooms see their video (live/away
//! notices, the media clock for link drops, stopping the video when a room ends or
//! ending a banned user's subscriptions).
//!
//! Session resources are named by 128 random bits (`/whep/{room}/{32 hex digits}`), so
//! nobody can guess another viewer's. Ending a WHEP session needs the token that
//! started it or the room's anchor token; a guest's session (started without a token)
//! ends for whoever holds its URL. WHIP sessions end only with the anchor's token.

use std::sync::{Arc, Weak};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::media::RoomMedia;
use lockstep_actors::room::{SetMedia, Snapshot};
use lockstep_protocol::{ErrorCode, MediaInfo, RoomSnapshot, RoomState};
use lockstep_sfu::layers::Preference;
use lockstep_sfu::{Caller, MediaDirectory, MediaId};

use crate::auth::Watcher;
use crate::forward;
use crate::http::{ApiError, bearer, read_body};
use crate::state::AppState;

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

    fn user_banned(&self, room: &str, user: &str) {
        self.0.user_banned(room, user);
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

/// The request body, within `media.max_sdp_bytes`.
async fn sdp_bytes(state: &AppState, body: web::Payload) -> Result<web::Bytes, ApiError> {
    let limit = state.media.config().max_sdp_bytes.min(state.max_body);
    read_body(body, limit).await
}

/// The SDP offer in the body: `application/sdp`, UTF-8.
fn sdp_offer(req: &HttpRequest, body: web::Bytes) -> Result<String, ApiError> {
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

fn parse_session(id: &str) -> Result<MediaId, ApiError> {
    id.parse()
        .map_err(|()| ApiError::new(ErrorCode::SessionNotFound, format!("no session `{id}`")))
}

/// `POST /whip/{room}`: the room's anchor publishes. The room must be live.
pub async fn whip_publish(
    req: HttpRequest,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    state.auth.anchor_of(bearer(&req), &room)?;
    let body = sdp_bytes(&state, body).await?;
    // Cluster mode: the room's video runs on the node that runs the room.
    if let Some(answer) = forward::to_owner(&state, &req, body.clone(), &room).await {
        return answer;
    }
    let offer = sdp_offer(&req, body)?;
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
    if let Some(answer) = forward::to_owner(&state, &req, Default::default(), &room).await {
        return answer;
    }
    state
        .media
        .unpublish(&room, parse_session(&session)?)
        .await?;
    Ok(HttpResponse::Ok().finish())
}

/// `POST /whep/{room}`: a player subscribes. Needs a viewer token unless the room lets
/// guests in; banned viewers are refused.
pub async fn whep_subscribe(
    req: HttpRequest,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    let body = sdp_bytes(&state, body).await?;
    let owner = if crate::edge_media::serves(&state, &room) {
        // Cluster mode: the room's node says who may watch; the video comes from this
        // node's own SFU, pulling the stream from the room's node.
        let watcher = edge_watcher(&state, &req, &room).await?;
        crate::edge_media::pull(&state, &room).await?;
        watcher
    } else {
        // Cluster mode without edge media: the media flows from the room's node.
        if let Some(answer) = forward::to_owner(&state, &req, body.clone(), &room).await {
            return answer;
        }
        let (watcher, _) = crate::rooms::snapshot_for(&state, &req, &room).await?;
        watcher.user().map(str::to_owned)
    };
    let offer = sdp_offer(&req, body)?;
    let (session, sdp) = state
        .media
        .subscribe(
            &room,
            offer,
            Preference::Auto,
            owner,
            state.counted_peer(req.peer_addr()),
        )
        .await?;
    Ok(answer(format!("/whep/{room}/{session}"), sdp))
}

/// Whether the bearer of `req` may watch `room` (run by another node): the room's node
/// decides, as for its own viewers. The viewer's user id (`None` for a guest).
async fn edge_watcher(
    state: &AppState,
    req: &HttpRequest,
    room: &str,
) -> Result<Option<String>, ApiError> {
    let watcher = state.auth.watcher(bearer(req), room)?;
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| vec![("authorization".to_owned(), v.as_bytes().to_vec())])
        .unwrap_or_default();
    let path = format!("/api/v1/rooms/{room}");
    let Some(answer) =
        forward::call_owner(state, room, ("GET", &path), headers, Default::default()).await
    else {
        // Nobody runs the room (or it just moved here): answer as for a local room.
        let (watcher, _) = crate::rooms::snapshot_for(state, req, room).await?;
        return Ok(watcher.user().map(str::to_owned));
    };
    let answer = answer?;
    if !answer.status().is_success() {
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let code = serde_json::from_value(body["name"].clone()).unwrap_or(ErrorCode::Unavailable);
        let message = body["message"].as_str().map_or_else(
            || format!("the room's node answered {status}"),
            str::to_owned,
        );
        return Err(ApiError::new(code, message));
    }
    Ok(watcher.user().map(str::to_owned))
}

/// `DELETE /whep/{room}/{session}`: the player stops (see the module docs for who may).
pub async fn whep_stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, session) = path.into_inner();
    if !crate::edge_media::serves(&state, &room)
        && let Some(answer) = forward::to_owner(&state, &req, Default::default(), &room).await
    {
        return answer;
    }
    let caller = match state.auth.watcher(bearer(&req), &room)? {
        Watcher::Guest => Caller::Guest,
        Watcher::Viewer(user) => Caller::User(user),
        Watcher::Anchor(_) => Caller::Anchor,
    };
    state
        .media
        .unsubscribe(&room, parse_session(&session)?, caller)
        .await?;
    Ok(HttpResponse::Ok().finish())
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
