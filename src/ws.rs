//! The WebSocket shell of a session, on the socket `ws_upgrade` hands over after the
//! handshake. It runs two halves. The reader feeds each inbound frame to the pure
//! [`SessionCore`] and carries out its [`Action`]; the writer drains the session's
//! [`Outbound`] queue into the socket.
//! Every frame to the client — replies, room broadcasts, the close — goes through that
//! one queue, so order is kept and a slow socket only ever blocks its own writer.
//!
//! The reader also keeps the connection honest: it pings an idle client every
//! `session.heartbeat_interval_ms` and closes one that sent nothing (not even a pong)
//! for `session.heartbeat_timeout_ms` with 4002; the client's own pings count against
//! its message rate and are answered without ever waiting on the socket.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_http::ws::ProtocolError;
use actix_web::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use lockstep_actors::clock::{now_ms, now_ms_f64};
use lockstep_actors::directory::RoomOptions;
use lockstep_actors::inventory::{Buy, BuyerRequest, SaleError};
use lockstep_actors::outbound::{Control, Drain, Outbound, SyncRequest};
use lockstep_actors::room::{Inbound, Join, Leave, RoomLink, SessionId};
use lockstep_actors::session::{Action, Endpoint, JoinError, SessionCore, SessionError};
use lockstep_actors::sync::Arc;
use lockstep_protocol::{CloseCode, RoomId, ServerMsg};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::auth::Claims;
use crate::state::AppState;
use crate::ws_media::{MediaLink, Viewer};
use crate::ws_socket::{Reader, write_close, write_frames};
use crate::ws_wire::{Message, OpCode, OutFrame};

/// `GET /ws/rooms/{id}` and `/ws/rooms/{id}/control` without an upgrade: a WebSocket
/// handshake reaches `ws_upgrade` instead, so what gets here is refused with the reason
/// the handshake fails.
pub async fn not_upgraded(req: HttpRequest) -> HttpResponse {
    let refusal = match actix_http::ws::verify_handshake(req.head()) {
        Err(e) => e,
        Ok(()) => actix_http::ws::HandshakeError::NoWebsocketUpgrade,
    };
    actix_http::Response::from(refusal).into()
}

/// Runs the session of an upgraded connection until it ends. `leftover`: the bytes read
/// with the upgrade request.
pub async fn serve(
    state: std::sync::Arc<AppState>,
    room: RoomId,
    endpoint: Endpoint,
    peer: Option<IpAddr>,
    socket: TcpStream,
    leftover: BytesMut,
) {
    Session::new(state, room, endpoint, peer)
        .run(socket, leftover)
        .await;
}

struct Session {
    id: SessionId,
    room_id: RoomId,
    state: std::sync::Arc<AppState>,
    core: SessionCore,
    outbound: Arc<Outbound>,
    room: Option<RoomLink>,
    /// The token subject once joined (`None` for anonymous viewers).
    user: Option<String>,
    /// The session's video subscription.
    media: MediaLink,
    /// The client's address for per-address limits (`None` when exempt).
    peer: Option<IpAddr>,
    /// When the client last sent anything (a frame, a ping or a pong).
    heard: Instant,
}

/// Whether the reader keeps going after an action.
enum Flow {
    Continue,
    Stop,
}

impl Session {
    fn new(
        state: std::sync::Arc<AppState>,
        room_id: RoomId,
        endpoint: Endpoint,
        peer: Option<IpAddr>,
    ) -> Self {
        Self {
            id: state.next_session_id(),
            core: SessionCore::new(endpoint, &state.session, now_ms()),
            outbound: Arc::new(Outbound::new(state.session.outbound_queue_frames)),
            room: None,
            user: None,
            media: MediaLink::default(),
            peer,
            heard: Instant::now(),
            room_id,
            state,
        }
    }

    async fn run(mut self, socket: TcpStream, leftover: BytesMut) {
        self.state.metrics.connections.inc();
        let grace = Duration::from_millis(self.state.session.close_grace_ms);
        let (read_half, write_half) = socket.into_split();
        let mut reader = Reader::new(read_half, leftover, self.state.session.max_frame_bytes);
        let mut writer = actix_web::rt::spawn(write_loop(self.outbound.clone(), write_half, grace));
        let join_deadline =
            tokio::time::sleep(Duration::from_millis(self.state.session.join_timeout_ms));
        tokio::pin!(join_deadline);
        let shutdown = self.state.shutdown.clone();
        let heartbeat_timeout = Duration::from_millis(self.state.session.heartbeat_timeout_ms);
        let period = Duration::from_millis(self.state.session.heartbeat_interval_ms.max(1));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut writer_done = false;
        let mut client_done = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.outbound.close(CloseCode::GoingAway);
                    break;
                }
                _ = heartbeat.tick() => {
                    if self.heard.elapsed() >= heartbeat_timeout {
                        self.state.metrics.heartbeat_timeouts.inc();
                        self.outbound.close(CloseCode::HeartbeatTimeout);
                        break;
                    }
                    // Never wait on the socket: a client too slow to take a ping is
                    // the writer's problem (it gets cut as a slow consumer).
                    self.outbound.push_control(Control::Ping);
                }
                _ = &mut join_deadline, if !self.core.is_joined() => {
                    self.reply(ServerMsg::refusal(None, &SessionError::JoinTimeout));
                    self.outbound.close(CloseCode::PolicyViolation);
                    break;
                }
                _ = &mut writer => {
                    writer_done = true;
                    break;
                }
                frame = reader.next() => {
                    let eof = frame.is_none();
                    if let Flow::Stop = self.on_frame(frame).await {
                        client_done = eof;
                        break;
                    }
                }
            }
        }
        if let Some(room) = self.room.take() {
            room.leave.do_send(Leave { session: self.id });
        }
        self.media.end(self.room_id.as_str(), &self.state);
        if !writer_done {
            // The writer finishes the queued frames and the close frame, bounded by `grace`.
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), writer).await;
        }
        if !client_done {
            // Let the client read the close before the socket goes (see `Reader::drain`).
            let _ = tokio::time::timeout(grace, reader.drain()).await;
        }
        self.outbound.finish();
        self.state.metrics.connections.dec();
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, ProtocolError>>) -> Flow {
        self.heard = Instant::now();
        let action = match frame {
            None => {
                self.outbound.close(CloseCode::Normal);
                return Flow::Stop;
            }
            Some(Err(ProtocolError::Overflow)) => {
                self.outbound.close(CloseCode::MessageTooBig);
                return Flow::Stop;
            }
            Some(Err(e)) => {
                tracing::debug!(session = self.id.0, error = %e, "websocket protocol error");
                self.outbound.close(CloseCode::PolicyViolation);
                return Flow::Stop;
            }
            Some(Ok(Message::Text(text))) => {
                self.state.metrics.frames_in.inc();
                self.core.on_text(now_ms(), now_ms_f64(), &text)
            }
            Some(Ok(Message::Binary(_))) => {
                self.state.metrics.frames_in.inc();
                self.core.on_binary()
            }
            Some(Ok(Message::Ping(bytes))) => match self.core.on_ping(now_ms()) {
                Action::Pong => {
                    // Answered through the writer, never waiting: a client that pings
                    // but never reads must not stall its own reader.
                    self.outbound.push_control(Control::Pong(bytes.to_vec()));
                    return Flow::Continue;
                }
                refused => refused,
            },
            Some(Ok(Message::Pong(_))) => return Flow::Continue,
            Some(Ok(Message::Close)) => {
                self.outbound.close(CloseCode::Normal);
                return Flow::Stop;
            }
        };
        self.act(action).await
    }

    async fn act(&mut self, action: Action) -> Flow {
        match action {
            Action::Reply(msg) => {
                if matches!(msg, ServerMsg::Error { .. }) {
                    self.state.metrics.client_errors.inc();
                }
                self.reply(msg);
                Flow::Continue
            }
            Action::TimeSync { t0, t1 } => {
                // Answered by the writer, ahead of the queued frames (see Outbound).
                self.outbound.push_time_sync(SyncRequest { t0, t1 });
                Flow::Continue
            }
            Action::Ignore | Action::Pong => Flow::Continue,
            Action::Order {
                sale_id,
                qty,
                key,
                id,
            } => {
                self.buy(BuyerRequest::Order {
                    sale_id,
                    qty,
                    key,
                    id,
                });
                Flow::Continue
            }
            Action::CancelOrder { order_id, id } => {
                self.buy(BuyerRequest::Cancel { order_id, id });
                Flow::Continue
            }
            Action::Media(request) => {
                let viewer = Viewer {
                    owner: self.user.clone(),
                    source: self.peer,
                };
                self.media.handle(
                    request,
                    self.room_id.as_str(),
                    &self.state,
                    &self.outbound,
                    &viewer,
                );
                Flow::Continue
            }
            Action::ReplyThenClose(msg, code) => {
                self.state.metrics.client_errors.inc();
                self.reply(msg);
                self.outbound.close(code);
                Flow::Stop
            }
            Action::Room(input) => {
                if let Some(room) = &self.room {
                    room.inbound.do_send(Inbound {
                        session: self.id,
                        input,
                    });
                }
                Flow::Continue
            }
            Action::Join {
                protocol,
                token,
                title,
                id,
                // Boxed: the join's await states are large and needed once, so they are
                // not carried in every session's future for its whole life.
            } => match Box::pin(self.join(protocol, token, title)).await {
                Ok(()) => {
                    self.core.joined();
                    Flow::Continue
                }
                Err(refusal) => {
                    self.state.metrics.client_errors.inc();
                    self.reply(ServerMsg::refusal(id, &refusal));
                    self.outbound.close(CloseCode::JoinRefused);
                    Flow::Stop
                }
            },
        }
    }

    /// Admits the session by the join policy ([`SessionCore::admit`]), opens the room
    /// (control channel) or finds it (viewers), and joins it.
    async fn join(
        &mut self,
        protocol: u32,
        token: Option<String>,
        title: Option<String>,
    ) -> Result<(), JoinError> {
        let bearer = token.map(|t| self.state.auth.verify(&t).map(Claims::into_bearer));
        let identity = self
            .core
            .admit(protocol, bearer, self.room_id.as_str(), self.id)?;
        let room = match self.core.endpoint() {
            Endpoint::Viewer => self
                .state
                .find_room(self.room_id.as_str())
                .await?
                .ok_or_else(|| JoinError::RoomNotOpen(self.room_id.to_string()))?,
            Endpoint::Control => {
                let options = RoomOptions {
                    title: title
                        .map(|t| {
                            lockstep_actors::text::clean_label(&t, crate::rooms::MAX_TITLE_CHARS)
                        })
                        .filter(|t| !t.is_empty()),
                    allow_anonymous: None,
                };
                self.state.open_room(&self.room_id, &options).await?.link
            }
        };
        let user = identity.user.clone();
        let join = Join {
            session: self.id,
            identity,
            outbound: Some(self.outbound.clone()),
        };
        match room.join.send(join).await {
            Ok(Ok(())) => {
                self.room = Some(room);
                self.user = user;
                Ok(())
            }
            Ok(Err(refusal)) => Err(refusal.into()),
            Err(_) => Err(JoinError::RoomClosed(self.room_id.to_string())),
        }
    }

    /// Sends an order or cancel to the sale — here, or through the room's edge to the
    /// node that runs it; the answer (once the decision is durable) reaches this
    /// session's queue directly.
    fn buy(&mut self, request: BuyerRequest) {
        let Some(buyer) = self.user.clone() else {
            let refusal = match request {
                BuyerRequest::Order { id, .. } => {
                    ServerMsg::refusal(id, &SessionError::OrderNeedsToken)
                }
                BuyerRequest::Cancel { order_id, id } => {
                    ServerMsg::refusal(id, &SaleError::OrderNotFound(order_id))
                }
            };
            return self.reply(refusal);
        };
        match self.room.as_ref().and_then(|room| room.buy.clone()) {
            Some(edge) => edge.do_send(Buy {
                session: self.id,
                buyer,
                request,
            }),
            None => {
                let outbound = self.outbound.clone();
                self.state.sales.buy(
                    self.room_id.as_str(),
                    buyer,
                    request,
                    Box::new(move |frame| {
                        let _ = outbound.push(frame);
                    }),
                );
            }
        }
    }

    fn reply(&self, msg: ServerMsg) {
        let _ = self.outbound.push(ByteString::from(msg.to_json()));
    }
}

/// Drains the queue into the socket until the queue asks for a close or the socket dies:
/// each wake-up's control frames, clock-sync answers and queued frames go out together.
async fn write_loop(outbound: Arc<Outbound>, write_half: OwnedWriteHalf, grace: Duration) {
    // When the loop ends the half is dropped, which shuts the sending side (after the
    // close frame, or on a socket that failed anyway).
    let socket: &TcpStream = write_half.as_ref();
    // Reused from wake-up to wake-up: a batch allocates nothing once they have grown.
    let mut batch = Vec::new();
    let mut syncs = Vec::new();
    let mut controls = Vec::new();
    let mut frames = Vec::new();
    loop {
        outbound.take_controls(&mut controls);
        outbound.take_time_syncs(&mut syncs);
        let drain = outbound.drain(&mut batch);
        frames.extend(controls.drain(..).map(|control| match control {
            Control::Ping => OutFrame::new(OpCode::Ping, Bytes::new()),
            Control::Pong(payload) => OutFrame::new(OpCode::Pong, payload.into()),
        }));
        // Stamped as they are written: the client's offset estimate assumes the answer
        // left when it says.
        frames.extend(syncs.drain(..).map(|SyncRequest { t0, t1 }| {
            let answer = ServerMsg::TimeSync {
                t0,
                t1,
                t2: now_ms_f64(),
            };
            OutFrame::new(OpCode::Text, answer.to_json().into())
        }));
        frames.extend(
            batch
                .drain(..)
                .map(|frame| OutFrame::new(OpCode::Text, frame.into_bytes())),
        );
        let wrote_any = !frames.is_empty();
        // A cut while this write waits on a full socket must not wait for the socket: the
        // frame begun is finished, the rest dropped, and the next drain reports the cut.
        let written = write_frames(socket, &frames, cut(&outbound), grace).await;
        frames.clear();
        if written.is_err() {
            // The socket is gone, or a cut client took nothing for `grace`.
            outbound.finish();
            return;
        }
        match drain {
            Drain::Close(code) => {
                write_close(socket, code.code(), code.reason(), grace).await;
                outbound.finish();
                return;
            }
            // Wake-ups may have been consumed while writing: look again before sleeping.
            Drain::Open if wrote_any => {}
            Drain::Open => outbound.wait().await,
        }
    }
}

/// Resolves once the queue has been cut for overflowing.
async fn cut(outbound: &Outbound) {
    while !outbound.is_cut() {
        outbound.wait().await;
    }
}
