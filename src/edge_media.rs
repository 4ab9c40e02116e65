//! Cluster mode: video for a room another node runs, served by this node's own SFU
//! (`cluster.edge_media`). The first viewer here makes this node pull the room's stream
//! from the room's node, once, over one WebRTC connection (every simulcast layer and the
//! audio, on the room's media clock); every later viewer here is served from that pull.
//! The pull is signalled node to node: this node's offer goes to the room's node's
//! `POST /internal/v1/uplink/{room}` with a short-lived grant signed by the secret every
//! node shares, and the answer names each layer's track. The pull stops
//! `media.pull_linger_ms` after this node's last viewer of the room left, and this node
//! then ends its uplink there (`DELETE /internal/v1/uplink/{room}/{id}`) rather than
//! leaving it to time out.

use std::sync::{Arc, Weak};

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_protocol::ErrorCode;
use lockstep_sfu::room::PullHooks;
use lockstep_sfu::uplink::UplinkAnswer;
use lockstep_sfu::{MediaError, MediaId};
use serde::{Deserialize, Serialize};

use crate::forward::call_owner;
use crate::http::{ApiError, bearer};
use crate::state::AppState;

/// How long a node's uplink grant lasts.
const GRANT_SECS: u64 = 30;

/// What a node sends to pull a room's stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct UplinkRequest {
    pub sdp: String,
}

/// Whether this node serves `room`'s video from its own SFU although another node runs
/// the room.
pub fn serves(state: &AppState, room: &str) -> bool {
    state
        .cluster
        .as_ref()
        .is_some_and(|c| c.edge_media() && state.directory.get(room).is_none())
}

/// Makes sure `room`'s stream is pulled here from the room's node; returns once it is
/// live here.
pub async fn pull(state: &AppState, room: &str) -> Result<(), MediaError> {
    state
        .media
        .ensure_pulled(room, |offer| ask_owner(state, room, offer))
        .await
}

/// Carries a pull's offer to the room's node; its answer.
async fn ask_owner(state: &AppState, room: &str, sdp: String) -> Result<UplinkAnswer, MediaError> {
    let grant = state.auth.issue_uplink(room, GRANT_SECS);
    let headers = vec![
        ("content-type".to_owned(), b"application/json".to_vec()),
        (
            "authorization".to_owned(),
            format!("Bearer {grant}").into_bytes(),
        ),
    ];
    let body = serde_json::to_vec(&UplinkRequest { sdp })
        .map_err(|e| MediaError::Upstream(e.to_string()))?;
    let path = format!("/internal/v1/uplink/{room}");
    let answer = call_owner(state, room, ("POST", &path), headers, Bytes::from(body))
        .await
        .unwrap_or_else(|| {
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "the room moved to this node meanwhile",
            ))
        })
        .map_err(|e| MediaError::Upstream(e.message))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(MediaError::Upstream(format!(
            "the room's node answered {status}: {text}"
        )));
    }
    serde_json::from_str(&text).map_err(|e| MediaError::Upstream(format!("unreadable answer: {e}")))
}

/// Between two attempts to pull a room's stream again after a pull broke.
const REPULL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What this node does when it stops pulling a room's stream (ends its uplink at the
/// room's node) and when a pull breaks while it has viewers (pulls again, from whichever
/// node owns the room now, until it works or twice `media.connect_timeout_ms` passed), in
/// the background.
pub fn pull_hooks(state: Weak<AppState>) -> PullHooks {
    let weak = state.clone();
    let lost = Arc::new(move |room: &str| {
        let Some(state) = weak.upgrade() else { return };
        let room = room.to_owned();
        actix_web::rt::spawn(async move {
            let give_up = tokio::time::Instant::now()
                + std::time::Duration::from_millis(2 * state.media.config().connect_timeout_ms);
            while tokio::time::Instant::now() < give_up && serves(&state, &room) {
                match pull(&state, &room).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(room, error = %e, "pulling again failed; retrying"),
                }
                tokio::time::sleep(REPULL_EVERY).await;
            }
        });
    });
    PullHooks {
        ended: end_hook(state),
        lost,
    }
}

fn end_hook(state: Weak<AppState>) -> lockstep_sfu::room::PullEndHook {
    Arc::new(move |room: &str, uplink: &str| {
        let Some(state) = state.upgrade() else { return };
        let (room, uplink) = (room.to_owned(), uplink.to_owned());
        actix_web::rt::spawn(async move {
            let grant = state.auth.issue_uplink(&room, GRANT_SECS);
            let headers = vec![(
                "authorization".to_owned(),
                format!("Bearer {grant}").into_bytes(),
            )];
            let path = format!("/internal/v1/uplink/{room}/{uplink}");
            let _ = call_owner(&state, &room, ("DELETE", &path), headers, Bytes::new()).await;
        });
    })
}

/// The node grant on `req`, checked for `room`.
fn granted(state: &AppState, req: &HttpRequest, room: &str) -> Result<(), ApiError> {
    let Some(token) = bearer(req) else {
        return Err(ApiError::new(
            ErrorCode::AuthRequired,
            "pulling a room's stream needs a node's grant",
        ));
    };
    if state.auth.uplink_grant(token).as_deref() != Some(room) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("not a valid node grant for room `{room}`"),
        ));
    }
    Ok(())
}

/// `DELETE /internal/v1/uplink/{room}/{id}`: the node that pulled ends its uplink.
pub async fn end_uplink(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, id) = path.into_inner();
    granted(&state, &req, &room)?;
    let id: MediaId = id
        .parse()
        .map_err(|()| ApiError::new(ErrorCode::SessionNotFound, format!("no uplink `{id}`")))?;
    state.media.close_uplink(&room, id);
    Ok(HttpResponse::Ok().finish())
}

/// `POST /internal/v1/uplink/{room}`: another node pulls the stream of a room this node
/// runs. Needs that node's grant for the room.
pub async fn uplink(
    req: HttpRequest,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Json<UplinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let room = room.into_inner();
    granted(&state, &req, &room)?;
    let answer = state
        .media
        .open_uplink(&room, body.into_inner().sdp)
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}
