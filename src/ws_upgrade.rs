//! The WebSocket endpoints' way in. actix-http hands every request that asks for a
//! WebSocket upgrade here with its connection instead of to the routes; this answers the
//! handshake for `/ws/rooms/{id}` (a viewer) and `/ws/rooms/{id}/control` (the anchor)
//! and keeps the bare socket for the session (`ws::serve`), so frames are read and
//! written without the HTTP layer's buffers and dispatcher in between. Any other
//! upgrade, a connection over the limits, a bad room id or a bad handshake gets the
//! same coded error response the routes would give, and the connection is closed.

use std::sync::Arc;

use actix_codec::{Framed, FramedParts};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{ConnectionType, Request, Response, h1};
use actix_web::ResponseError;
use futures_util::SinkExt;
use lockstep_actors::session::Endpoint;
use lockstep_protocol::{ErrorCode, RoomId};
use tokio::net::TcpStream;

use crate::http::ApiError;
use crate::limits::ConnSlot;
use crate::middleware::SECURITY_HEADERS;
use crate::state::AppState;
use crate::ws;

type Connection = Framed<TcpStream, h1::Codec>;

/// Answers one upgrade request on its connection and, if it is a session's, starts the
/// session on it.
pub async fn takeover(state: Arc<AppState>, req: Request, mut conn: Connection) {
    // The connection's slot under the limits is released when the session ends.
    let slot = req.conn_data::<Arc<ConnSlot>>().cloned();
    let accepted = match admit(&req, slot.as_deref()) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            let _ = respond(&mut conn, refusal, ConnectionType::Close).await;
            return;
        }
    };
    let (room, endpoint, switching) = accepted;
    if respond(&mut conn, switching, ConnectionType::Upgrade)
        .await
        .is_err()
    {
        return;
    }
    let peer = state.counted_peer(req.peer_addr());
    drop(req);
    // The HTTP layer's write buffer goes now; its read buffer goes once the bytes read
    // past the handshake (if any) are decoded.
    let FramedParts { io, read_buf, .. } = conn.into_parts();
    // The session is a task of its own (tracked for shutdown): this connection's HTTP
    // task, the dispatcher around this future, ends here and frees what it held.
    let sessions = state.sessions.clone();
    actix_web::rt::spawn(sessions.track_future(async move {
        ws::serve(state, room, endpoint, peer, io, read_buf).await;
        drop(slot);
    }));
}

/// The room, the endpoint and the `101 Switching Protocols` answer, or the refusal.
fn admit(
    req: &Request,
    slot: Option<&ConnSlot>,
) -> Result<(RoomId, Endpoint, Response<()>), Response<BoxBody>> {
    if let Some(message) = slot.and_then(|slot| slot.refusal.clone()) {
        return Err(refusal(ApiError::new(
            ErrorCode::TooManyConnections,
            message,
        )));
    }
    let Some((room, endpoint)) = route(req.path()) else {
        return Err(refusal(ApiError::new(
            ErrorCode::NotFound,
            "no such endpoint",
        )));
    };
    let room = RoomId::parse(room).map_err(|e| refusal(ApiError::from(e)))?;
    let switching = actix_http::ws::handshake(req.head())
        .map_err(Response::from)?
        .finish()
        .drop_body();
    Ok((room, endpoint, switching))
}

fn refusal(error: ApiError) -> Response<BoxBody> {
    error.error_response().into()
}

/// The session endpoint a path names: `/ws/rooms/{id}` or `/ws/rooms/{id}/control`.
fn route(path: &str) -> Option<(&str, Endpoint)> {
    let rest = path.strip_prefix("/ws/rooms/")?;
    let (room, endpoint) = match rest.split_once('/') {
        None => (rest, Endpoint::Viewer),
        Some((room, "control")) => (room, Endpoint::Control),
        Some(_) => return None,
    };
    (!room.is_empty()).then_some((room, endpoint))
}

/// Writes `response` (head and body) with the security headers every response carries.
async fn respond<B: MessageBody>(
    conn: &mut Connection,
    response: Response<B>,
    connection: ConnectionType,
) -> std::io::Result<()> {
    let (mut head, body) = response.into_parts();
    for (name, value) in SECURITY_HEADERS {
        head.headers_mut()
            .insert(name, actix_http::header::HeaderValue::from_static(value));
    }
    head.head_mut().set_connection_type(connection);
    let body = actix_http::body::to_bytes(body).await.unwrap_or_default();
    let size = match connection {
        ConnectionType::Upgrade => BodySize::None,
        _ => BodySize::Sized(body.len() as u64),
    };
    // Head and body go out in one write (`feed` buffers, `send` flushes).
    conn.feed(h1::Message::Item((head, size))).await?;
    if !body.is_empty() {
        conn.feed(h1::Message::Chunk(Some(body))).await?;
    }
    conn.send(h1::Message::Chunk(None)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_session_paths_are_routes() {
        assert!(matches!(
            route("/ws/rooms/r1"),
            Some(("r1", Endpoint::Viewer))
        ));
        assert!(matches!(
            route("/ws/rooms/r1/control"),
            Some(("r1", Endpoint::Control))
        ));
        for path in [
            "/ws/rooms/",
            "/ws/rooms/r1/other",
            "/ws/rooms//control",
            "/ws",
            "/",
        ] {
            assert!(route(path).is_none(), "{path}");
        }
    }
}
