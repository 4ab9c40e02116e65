//! The room actor: a thin actix shell around [`RoomCore`]. It forwards messages into the
//! core with the current time, runs the tick timer, and carries out the core's outputs —
//! encoding each broadcast once and pushing the shared bytes to every session queue.

use std::sync::Weak;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use lockstep_protocol::{CloseCode, ControlCmd, ErrorCode, RoomSnapshot, ServerMsg};

use super::core::{Identity, Output, Refusal, RoomCore, SessionId};
use super::fanout::Fanout;
use crate::clock::now_ms;
use crate::directory::RoomDirectory;
use crate::inventory::{Reply, SaleDirectory, SaleHandle, reply_channel};
use crate::media::{RoomMedia, reveal_time};
use crate::metrics::Metrics;
use crate::outbound::{Outbound, Push};
use crate::sync::Arc;

/// Adds a session. On success the welcome frame is already in the session's queue, ahead
/// of every broadcast that follows.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct Join {
    pub session: SessionId,
    pub identity: Identity,
    pub outbound: Arc<Outbound>,
}

/// A session left (socket closed). Unknown sessions are ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// A decoded request from a joined session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    pub session: SessionId,
    pub input: RoomInput,
}

/// The room-level requests a session forwards.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomInput {
    Comment { text: String, id: Option<u64> },
    Like { count: u32, id: Option<u64> },
    Control { cmd: ControlCmd, id: Option<u64> },
}

/// A sale of this room changed stock or state (from its inventory actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SaleUpdate {
    pub sale_id: String,
    pub remaining: u32,
    pub state: lockstep_protocol::SaleState,
}

/// The room's video went live or away.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetMedia(pub lockstep_protocol::MediaInfo);

/// Asks for the room's current snapshot (HTTP status endpoint).
#[derive(Message)]
#[rtype(result = "RoomSnapshot")]
pub struct Snapshot;

/// One live room.
pub struct Room {
    core: RoomCore,
    fanout: Fanout,
    directory: Weak<RoomDirectory>,
    sales: Option<std::sync::Arc<SaleDirectory>>,
    media: Option<std::sync::Arc<dyn RoomMedia>>,
    /// Frame timestamps of links already dropped, by sale (a re-drop repeats them).
    reveal_frames: std::collections::HashMap<String, Option<u32>>,
    metrics: Metrics,
    tick: Duration,
    /// When the last `tick` frame went out (for the leading-edge flush).
    last_frame: Instant,
}

impl Room {
    pub(crate) fn new(
        core: RoomCore,
        directory: Weak<RoomDirectory>,
        sales: Option<std::sync::Arc<SaleDirectory>>,
        media: Option<std::sync::Arc<dyn RoomMedia>>,
        metrics: Metrics,
        tick: Duration,
    ) -> Self {
        Self {
            core,
            fanout: Fanout::default(),
            directory,
            sales,
            media,
            reveal_frames: std::collections::HashMap::new(),
            metrics,
            tick,
            last_frame: Instant::now(),
        }
    }

    /// Carries out everything the core asked for.
    fn apply_outputs(&mut self, ctx: &mut Context<Self>) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Broadcast(msg) => self.broadcast(&msg),
                Output::Send(session, msg) => self.send(session, &msg),
                Output::Close(session, code) => {
                    if let Some(queue) = self.fanout.remove(session) {
                        queue.close(code);
                    }
                }
                Output::Release => self.release(ctx),
            }
        }
    }

    fn broadcast(&mut self, msg: &ServerMsg) {
        let frame = ByteString::from(msg.to_json());
        let started = Instant::now();
        let delivery = self.fanout.broadcast(&frame);
        self.metrics
            .fanout_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.frames_out.inc_by(delivery.queued);
        if !delivery.cut.is_empty() {
            self.cut(delivery.cut);
        }
    }

    fn send(&mut self, session: SessionId, msg: &ServerMsg) {
        let Some(queue) = self.fanout.get(session) else {
            return;
        };
        match queue.push(ByteString::from(msg.to_json())) {
            Push::Queued => self.metrics.frames_out.inc(),
            Push::Overflowed => self.cut(vec![session]),
            Push::Closed => {}
        }
    }

    /// Removes sessions whose queue overflowed; their writers close them with 4001.
    fn cut(&mut self, sessions: Vec<SessionId>) {
        let now = now_ms();
        for session in sessions {
            self.metrics.slow_viewer_cuts.inc();
            if let Some(queue) = self.fanout.remove(session) {
                // The frames it held and the one that overflowed are lost to that viewer.
                self.metrics.queue_drops.inc_by(queue.len() as u64 + 1);
            }
            self.core.leave(now, session);
        }
    }

    fn release(&mut self, ctx: &mut Context<Self>) {
        for (_, queue) in self.fanout.take_all() {
            queue.close(CloseCode::RoomEnded);
        }
        if let Some(media) = &self.media {
            media.room_ended(self.core.id());
        }
        ctx.stop();
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.rooms.inc();
        ctx.run_interval(self.tick, |room, ctx| {
            if room.core.tick(now_ms()) {
                room.last_frame = Instant::now();
            }
            room.apply_outputs(ctx);
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.metrics.rooms.dec();
        for (_, queue) in self.fanout.take_all() {
            queue.close(CloseCode::RoomEnded);
        }
        if let Some(directory) = self.directory.upgrade() {
            directory.release(self.core.id(), &ctx.address());
        }
    }
}

impl Handler<Join> for Room {
    type Result = Result<(), Refusal>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        let welcome = self.core.join(now_ms(), msg.session, msg.identity)?;
        if msg.outbound.push(ByteString::from(welcome.to_json())) == Push::Queued {
            self.metrics.frames_out.inc();
            self.fanout.add(msg.session, msg.outbound);
        } else {
            self.core.leave(now_ms(), msg.session);
        }
        self.apply_outputs(ctx);
        Ok(())
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.fanout.remove(msg.session);
        self.core.leave(now_ms(), msg.session);
        self.apply_outputs(ctx);
    }
}

impl Handler<Inbound> for Room {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let now = now_ms();
        match msg.input {
            RoomInput::Comment { text, id } => {
                self.core.comment(now, msg.session, &text, id);
                self.flush_if_idle(now);
            }
            RoomInput::Like { count, id } => self.core.like(msg.session, count, id),
            RoomInput::Control {
                cmd:
                    ControlCmd::DropLink {
                        sale_id,
                        countdown_ms,
                    },
                id,
            } => {
                self.drop_link(ctx, msg.session, &sale_id, countdown_ms, id);
            }
            RoomInput::Control {
                cmd: ControlCmd::CloseSale { sale_id },
                id,
            } => {
                self.close_sale(ctx, msg.session, &sale_id, id);
            }
            RoomInput::Control { cmd, id } => {
                self.core.control(now, msg.session, cmd, id);
                self.flush_if_idle(now);
            }
        }
        self.apply_outputs(ctx);
    }
}

impl Room {
    /// Leading-edge batching: a comment arriving when no frame went out for half a tick is
    /// sent at once; comments arriving sooner wait for the tick timer. A quiet room gets
    /// the latency of one fan-out; a busy one gets at most ~3 frames per tick per viewer.
    fn flush_if_idle(&mut self, now: u64) {
        if self.core.has_pending_comments()
            && self.last_frame.elapsed() >= self.tick / 2
            && self.core.tick(now)
        {
            self.last_frame = Instant::now();
        }
    }
}

impl Handler<SaleUpdate> for Room {
    type Result = ();

    fn handle(&mut self, msg: SaleUpdate, ctx: &mut Context<Self>) {
        self.core
            .sale_update(now_ms(), &msg.sale_id, msg.remaining, msg.state);
        self.apply_outputs(ctx);
    }
}

impl Room {
    /// The anchor's sale, or the refusal to send back.
    fn anchor_sale(
        &mut self,
        session: SessionId,
        sale_id: &str,
        req: Option<u64>,
    ) -> Option<SaleHandle> {
        if !self.core.is_anchor(session) {
            self.send(
                session,
                &ServerMsg::error(
                    req,
                    ErrorCode::Forbidden,
                    "sale commands need the control channel",
                ),
            );
            return None;
        }
        let sale = self
            .sales
            .as_ref()
            .and_then(|s| s.get(sale_id))
            .filter(|s| s.room == self.core.id());
        if sale.is_none() {
            self.send(
                session,
                &ServerMsg::error(
                    req,
                    ErrorCode::SaleNotFound,
                    format!("no sale `{sale_id}` in this room"),
                ),
            );
        }
        sale
    }

    /// "3, 2, 1 — link!": the sale fixes the reveal time (durably), then every viewer
    /// gets the card at once, well ahead of `reveal_at`.
    fn drop_link(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        sale_id: &str,
        countdown_ms: Option<u64>,
        req: Option<u64>,
    ) {
        let Some(sale) = self.anchor_sale(session, sale_id, req) else {
            return;
        };
        let cfg = self.core.config();
        let countdown = countdown_ms
            .unwrap_or(cfg.link_countdown_ms)
            .min(cfg.max_link_countdown_ms);
        let (frame, delay) = match &self.media {
            Some(media) => (media.latest_frame(self.core.id()), media.playout_delay_ms()),
            None => (None, 0),
        };
        let (reveal_at, reveal_rtp) = reveal_time(now_ms(), countdown, frame, delay);
        let (sink, answer) = reply_channel();
        sale.addr.do_send(crate::inventory::Reveal {
            reveal_at,
            seed: rand::random(),
            reply: sink,
        });
        let card = sale.card.clone();
        let sale_id = sale_id.to_owned();
        let card_reveal_requested = reveal_at;
        ctx.spawn(answer.into_actor(self).map(move |answer, room, ctx| {
            match answer {
                Ok(Reply::Revealed(Ok((reveal_at, remaining)))) => {
                    let mut card = (*card).clone();
                    // The first drop fixes the frame; a re-drop repeats the first answer.
                    let first = reveal_at == card_reveal_requested;
                    card.reveal_rtp = *room.reveal_frames.entry(sale_id).or_insert(if first {
                        reveal_rtp
                    } else {
                        None
                    });
                    card.reveal_at = reveal_at;
                    card.remaining = remaining;
                    room.core.link_dropped(now_ms(), session, req, card);
                }
                Ok(Reply::Revealed(Err((code, message)))) => {
                    room.send(session, &ServerMsg::error(req, code, message))
                }
                _ => room.send(
                    session,
                    &ServerMsg::error(req, ErrorCode::Internal, "the sale did not answer"),
                ),
            }
            room.apply_outputs(ctx);
        }));
    }

    fn close_sale(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        sale_id: &str,
        req: Option<u64>,
    ) {
        let Some(sale) = self.anchor_sale(session, sale_id, req) else {
            return;
        };
        let (sink, answer) = reply_channel();
        sale.addr
            .do_send(crate::inventory::CloseSale { reply: sink });
        ctx.spawn(
            answer
                .into_actor(self)
                .map(move |answer, room, _| match answer {
                    Ok(Reply::Closed(Ok(()))) => room.send(
                        session,
                        &ServerMsg::Ack {
                            id: req,
                            comment_id: None,
                        },
                    ),
                    Ok(Reply::Closed(Err((code, message)))) => {
                        room.send(session, &ServerMsg::error(req, code, message))
                    }
                    _ => room.send(
                        session,
                        &ServerMsg::error(req, ErrorCode::Internal, "the sale did not answer"),
                    ),
                }),
        );
    }
}

impl Handler<Snapshot> for Room {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.snapshot())
    }
}

impl Handler<SetMedia> for Room {
    type Result = ();

    fn handle(&mut self, msg: SetMedia, ctx: &mut Context<Self>) {
        self.core.set_media(msg.0);
        self.apply_outputs(ctx);
    }
}
