//! The room actor: a thin actix shell around [`RoomCore`]. It forwards messages into the
//! core with the current time, runs the tick timer, and carries out the core's outputs —
//! encoding each broadcast once and pushing the shared bytes to every session queue.
//!
//! It supervises its core: every input runs inside a panic boundary. A panic is counted
//! (`lockstep_actor_panics_total{actor="room"}`), the core is rebuilt with the room's
//! settings and moderation (see `recovery.rs`), and every session is closed with 1012 so
//! the pages reconnect into the new core. The room itself stays open.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use lockstep_protocol::{CloseCode, ControlCmd, RoomSnapshot, ServerMsg, WireError};

use super::core::{Identity, Output, RoomCore, SessionId};
use super::error::RoomError;
use super::fanout::Fanout;
use super::recovery::Durable;
use crate::archive::Archive;
use crate::boundary::contain;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::directory::RoomDirectory;
use crate::inventory::{
    CloseSale, Reveal, Revealed, SaleDirectory, SaleError, SaleHandle, reply_channel,
};
use crate::media::{RoomMedia, reveal_time};
use crate::metrics::Metrics;
use crate::outbound::{Outbound, Push};
use crate::sync::{Arc, plain};

/// Adds a session. On success the welcome frame is already on its way to the session,
/// ahead of every broadcast that follows.
#[derive(Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct Join {
    pub session: SessionId,
    pub identity: Identity,
    /// The session's queue when it is in this process; `None` for a session of another
    /// process, whose frames go through the room's broker.
    pub outbound: Option<Arc<Outbound>>,
}

/// Where a session's room messages go: the room's actor in this process, or, in a
/// cluster, this node's edge of a room another node runs.
#[derive(Clone)]
pub struct RoomLink {
    pub join: Recipient<Join>,
    pub inbound: Recipient<Inbound>,
    pub leave: Recipient<Leave>,
    /// Orders and cancels, when the room's sales run on another node; `None` when they
    /// run here (the session asks the sale directory itself).
    pub buy: Option<Recipient<crate::inventory::Buy>>,
}

impl From<Addr<Room>> for RoomLink {
    fn from(room: Addr<Room>) -> Self {
        Self {
            join: room.clone().recipient(),
            inbound: room.clone().recipient(),
            leave: room.recipient(),
            buy: None,
        }
    }
}

/// Cluster mode: another node now owns the room. Its sessions here are closed with 1012
/// (they rejoin, reaching the new owner) and the room stops without ending.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StepDown;

/// How often a room that keeps checkpoints hands over its durable state (when changed).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// How often the room hands its record to the archive: the analytics' resolution.
const ARCHIVE_EVERY: Duration = Duration::from_secs(1);

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RoomInput {
    Comment {
        text: String,
        id: Option<u64>,
    },
    Like {
        count: u32,
        id: Option<u64>,
    },
    Control {
        cmd: ControlCmd,
        id: Option<u64>,
    },
    /// A product card's funnel step reported by the viewer page.
    Funnel {
        sale_id: String,
        step: lockstep_protocol::FunnelStep,
    },
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

/// Asks whether a viewer (`None`: a guest) may see the room (see
/// [`RoomCore::may_view`]); answered with the snapshot when they may.
#[derive(Message)]
#[rtype(result = "Result<RoomSnapshot, RoomError>")]
pub struct ViewAs {
    pub user: Option<String>,
}

/// One live room.
pub struct Room {
    core: RoomCore,
    fanout: Fanout,
    directory: plain::Weak<RoomDirectory>,
    sales: Option<plain::Arc<SaleDirectory>>,
    media: Option<plain::Arc<dyn RoomMedia>>,
    /// Every broadcast goes out through it (see [`crate::broker`]).
    broker: plain::Arc<dyn Broker>,
    /// The durable state last handed to the broker (cluster mode).
    checkpointed: Option<Durable>,
    /// This node lost the room to another (cluster mode): its sessions are closed to
    /// rejoin, and the room is not ended.
    stepped_down: bool,
    metrics: Metrics,
    tick: Duration,
    /// When the last `tick` frame went out (for the leading-edge flush).
    last_frame: Instant,
    /// When the next tick is due (for `lockstep_room_tick_lag_seconds`).
    tick_due: Instant,
    /// Where the room's record goes once a second (replay and analytics).
    archive: Option<plain::Arc<dyn Archive>>,
}

impl Room {
    pub(crate) fn new(
        core: RoomCore,
        directory: plain::Weak<RoomDirectory>,
        sales: Option<plain::Arc<SaleDirectory>>,
        media: Option<plain::Arc<dyn RoomMedia>>,
        broker: plain::Arc<dyn Broker>,
        metrics: Metrics,
        tick: Duration,
    ) -> Self {
        Self {
            core,
            fanout: Fanout::default(),
            directory,
            sales,
            media,
            broker,
            checkpointed: None,
            stepped_down: false,
            metrics,
            tick,
            last_frame: Instant::now(),
            tick_due: Instant::now(),
            archive: None,
        }
    }

    pub(crate) fn with_archive(mut self, archive: Option<plain::Arc<dyn Archive>>) -> Self {
        self.archive = archive;
        self
    }

    /// Hands the last second's record to the archive and updates the room's gauges.
    fn archive_second(&mut self) {
        let batch = self.core.take_archive(now_ms());
        let room = [self.core.id()];
        self.metrics
            .room_online
            .with_label_values(&room)
            .set(batch.online as i64);
        self.metrics
            .room_comments
            .with_label_values(&room)
            .add(batch.comments as i64);
        self.metrics
            .room_likes
            .with_label_values(&room)
            .set(self.core.likes_total() as i64);
        if let Some(archive) = &self.archive {
            archive.append(self.core.id(), batch);
        }
    }

    fn forget_gauges(&self) {
        let room = [self.core.id()];
        for gauge in [
            &self.metrics.room_online,
            &self.metrics.room_comments,
            &self.metrics.room_likes,
        ] {
            let _ = gauge.remove_label_values(&room);
        }
    }

    /// Carries out everything the core asked for.
    fn apply_outputs(&mut self, ctx: &mut Context<Self>) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Broadcast(msg) => self.broadcast(&msg),
                Output::Send(session, msg) => self.send(session, &msg),
                Output::Close(session, code) => match self.fanout.remove(session) {
                    Some(queue) => queue.close(code),
                    None => self.broker.close(self.core.id(), Some(session), code),
                },
                Output::Banned(user) => {
                    if let Some(media) = &self.media {
                        media.user_banned(self.core.id(), &user);
                    }
                }
                Output::Release => self.release(ctx),
            }
        }
    }

    /// Runs `input` on the core inside the room's panic boundary, then carries out what
    /// the core asked for. `None` when the core panicked (and was rebuilt).
    fn guarded<R>(
        &mut self,
        ctx: &mut Context<Self>,
        input: impl FnOnce(&mut RoomCore) -> R,
    ) -> Option<R> {
        let name = |core: &RoomCore| format!("room:{}", core.id());
        match contain(&mut self.core, name, input) {
            Some(value) => {
                self.apply_outputs(ctx);
                Some(value)
            }
            None => {
                self.restart();
                None
            }
        }
    }

    /// Replaces a core that panicked (see the module docs).
    fn restart(&mut self) {
        self.metrics.actor_panics.with_label_values(&["room"]).inc();
        tracing::error!(room = %self.core.id(), "the room's core panicked; restarting it");
        let seed = rand::random();
        let fresh = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.core.restarted(now_ms(), seed)
        }))
        .unwrap_or_else(|_| {
            RoomCore::new(
                self.core.id().to_owned(),
                self.core.id().to_owned(),
                plain::Arc::new(self.core.config().clone()),
                now_ms(),
                seed,
            )
        });
        self.core = fresh;
        for (_, queue) in self.fanout.take_all() {
            queue.close(CloseCode::Restarting);
        }
        self.broker
            .close(self.core.id(), None, CloseCode::Restarting);
    }

    fn broadcast(&mut self, msg: &ServerMsg) {
        let frame = ByteString::from(msg.to_json());
        let started = Instant::now();
        let delivery = self.broker.publish(self.core.id(), &frame, &self.fanout);
        self.metrics
            .fanout_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.frames_out.inc_by(delivery.queued);
        if !delivery.cut.is_empty() {
            self.cut(delivery.cut);
        }
    }

    fn send(&mut self, session: SessionId, msg: &ServerMsg) {
        let frame = ByteString::from(msg.to_json());
        let Some(queue) = self.fanout.get(session) else {
            return self.broker.send_to(self.core.id(), session, &frame);
        };
        match queue.push(frame) {
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

    /// Hands the room's durable state to the broker when it changed.
    fn checkpoint(&mut self) {
        let state = self.core.durable();
        if self.checkpointed.as_ref() != Some(&state) {
            self.broker.checkpoint(self.core.id(), &state);
            self.checkpointed = Some(state);
        }
    }

    /// The tick timer keeps to its schedule (a late tick is followed by the missed ones
    /// at once), so each tick is measured against the time it was due.
    fn note_tick_lag(&mut self) {
        let now = Instant::now();
        self.metrics
            .tick_lag_seconds
            .observe(now.saturating_duration_since(self.tick_due).as_secs_f64());
        self.tick_due += self.tick;
    }

    fn release(&mut self, ctx: &mut Context<Self>) {
        for (_, queue) in self.fanout.take_all() {
            queue.close(CloseCode::RoomEnded);
        }
        self.broker
            .close(self.core.id(), None, CloseCode::RoomEnded);
        if let Some(media) = &self.media {
            media.room_ended(self.core.id());
        }
        self.archive_second();
        if let Some(archive) = &self.archive {
            archive.ended(self.core.id(), now_ms(), !self.core.allows_anonymous());
        }
        ctx.stop();
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.rooms.inc();
        self.tick_due = Instant::now() + self.tick;
        ctx.run_interval(self.tick, |room, ctx| {
            room.note_tick_lag();
            if room.guarded(ctx, |core| core.tick(now_ms())) == Some(true) {
                room.last_frame = Instant::now();
            }
        });
        if self.broker.keeps_checkpoints() {
            ctx.run_interval(CHECKPOINT_EVERY, |room, _| room.checkpoint());
        }
        ctx.run_interval(ARCHIVE_EVERY, |room, _| room.archive_second());
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.metrics.rooms.dec();
        self.forget_gauges();
        // The last word on the room: ended, or as it was when its process stopped.
        if !self.stepped_down && self.broker.keeps_checkpoints() {
            self.checkpoint();
        }
        let code = if self.stepped_down {
            CloseCode::Restarting
        } else {
            CloseCode::RoomEnded
        };
        for (_, queue) in self.fanout.take_all() {
            queue.close(code);
        }
        if let Some(directory) = self.directory.upgrade() {
            directory.release(self.core.id(), &ctx.address());
        }
    }
}

impl Handler<Join> for Room {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        let Join {
            session,
            identity,
            outbound,
        } = msg;
        let (broker, room) = (self.broker.clone(), self.core.id().to_owned());
        let joined = self.guarded(ctx, |core| {
            let welcome = ByteString::from(core.join(now_ms(), session, identity)?.to_json());
            let Some(outbound) = outbound else {
                // A session of another process: its node queues the welcome.
                broker.send_to(&room, session, &welcome);
                return Ok(None);
            };
            if outbound.push(welcome) != Push::Queued {
                core.leave(now_ms(), session);
                return Ok(None);
            }
            Ok(Some(outbound))
        });
        match joined {
            Some(Ok(Some(outbound))) => {
                self.metrics.frames_out.inc();
                self.fanout.add(session, outbound);
                Ok(())
            }
            Some(Ok(None)) => Ok(()),
            Some(Err(refusal)) => Err(refusal),
            None => Err(RoomError::Restarted),
        }
    }
}

impl Handler<StepDown> for Room {
    type Result = ();

    fn handle(&mut self, _: StepDown, ctx: &mut Context<Self>) {
        tracing::warn!(room = %self.core.id(), "another node owns the room now; stepping down");
        self.stepped_down = true;
        if let Some(media) = &self.media {
            media.room_ended(self.core.id());
        }
        ctx.stop();
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.fanout.remove(msg.session);
        self.guarded(ctx, |core| core.leave(now_ms(), msg.session));
    }
}

/// Cluster mode: the likes another node's sessions tapped since its last report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeLikes {
    pub count: u64,
}

impl Handler<NodeLikes> for Room {
    type Result = ();

    fn handle(&mut self, msg: NodeLikes, ctx: &mut Context<Self>) {
        self.guarded(ctx, |core| core.node_likes(msg.count));
    }
}

impl Handler<Inbound> for Room {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let now = now_ms();
        let session = msg.session;
        let half_tick = self.last_frame.elapsed() >= self.tick / 2;
        let flushed = match msg.input {
            RoomInput::Comment { text, id } => self.guarded(ctx, |core| {
                core.comment(now, session, &text, id);
                flush_if_idle(core, now, half_tick)
            }),
            RoomInput::Like { count, id } => {
                self.guarded(ctx, |core| core.like(session, count, id));
                None
            }
            RoomInput::Funnel { sale_id, step } => {
                self.guarded(ctx, |core| core.funnel(session, &sale_id, step));
                None
            }
            RoomInput::Control {
                cmd:
                    ControlCmd::DropLink {
                        sale_id,
                        countdown_ms,
                    },
                id,
            } => {
                self.sale_command(
                    ctx,
                    session,
                    sale_id,
                    id,
                    SaleCommand::DropLink(countdown_ms),
                );
                None
            }
            RoomInput::Control {
                cmd: ControlCmd::CloseSale { sale_id },
                id,
            } => {
                self.sale_command(ctx, session, sale_id, id, SaleCommand::Close);
                None
            }
            RoomInput::Control { cmd, id } => self.guarded(ctx, |core| {
                core.control(now, session, cmd, id);
                flush_if_idle(core, now, half_tick)
            }),
        };
        if flushed == Some(true) {
            self.last_frame = Instant::now();
        }
    }
}

/// Leading-edge batching: a comment arriving when no frame went out for half a tick
/// (`half_tick`) is sent at once; comments arriving sooner wait for the tick timer. A
/// quiet room gets the latency of one fan-out; a busy one gets at most ~3 frames per
/// tick per viewer. Returns whether a frame went out.
fn flush_if_idle(core: &mut RoomCore, now: u64, half_tick: bool) -> bool {
    core.has_pending_comments() && half_tick && core.tick(now)
}

/// An anchor command carried out by one of the room's sales.
enum SaleCommand {
    DropLink(Option<u64>),
    Close,
}

impl Handler<SaleUpdate> for Room {
    type Result = ();

    fn handle(&mut self, msg: SaleUpdate, ctx: &mut Context<Self>) {
        self.guarded(ctx, |core| {
            core.sale_update(now_ms(), &msg.sale_id, msg.remaining, msg.state)
        });
    }
}

impl Room {
    fn refuse(&mut self, session: SessionId, req: Option<u64>, error: &dyn WireError) {
        self.send(session, &ServerMsg::refusal(req, error));
    }

    /// Finds the anchor's sale (loading it if it retired from memory), then runs the
    /// command against it.
    fn sale_command(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        sale_id: String,
        req: Option<u64>,
        command: SaleCommand,
    ) {
        if !self.core.is_anchor(session) {
            return self.refuse(session, req, &RoomError::SaleNeedsAnchor);
        }
        let Some(sales) = self.sales.clone() else {
            return self.refuse(session, req, &SaleError::NotFound(sale_id));
        };
        let lookup = sale_id.clone();
        let load = async move { sales.get_or_load(&lookup).await };
        ctx.spawn(
            load.into_actor(self)
                .map(move |found, room, ctx| match found {
                    Ok(Some(sale)) if sale.room == room.core.id() => match command {
                        SaleCommand::DropLink(countdown) => {
                            room.drop_link(ctx, session, sale, countdown, req)
                        }
                        SaleCommand::Close => room.close_sale(ctx, session, sale, req),
                    },
                    Ok(_) => room.refuse(session, req, &SaleError::NotFound(sale_id)),
                    Err(e) => {
                        tracing::warn!(sale = %sale_id, error = %e, "the sale could not be loaded");
                        room.refuse(session, req, &e);
                    }
                }),
        );
    }

    /// "3, 2, 1 — link!": the sale fixes the reveal time (durably), then every viewer
    /// gets the card at once, well ahead of `reveal_at`.
    fn drop_link(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        sale: SaleHandle,
        countdown_ms: Option<u64>,
        req: Option<u64>,
    ) {
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
        if let Some(reply) = sale.admit(sink) {
            sale.addr.do_send(Reveal {
                reveal_at,
                seed: rand::random(),
                reply,
            });
        }
        let card = sale.card.clone();
        let card_reveal_requested = reveal_at;
        ctx.spawn(
            answer
                .into_actor(self)
                .map(move |answer, room, ctx| match answer {
                    Ok(Revealed {
                        reveal_at,
                        remaining,
                    }) => {
                        let mut card = (*card).clone();
                        let first = reveal_at == card_reveal_requested;
                        card.reveal_at = reveal_at;
                        card.remaining = remaining;
                        room.guarded(ctx, |core| {
                            core.link_dropped(now_ms(), session, req, card, reveal_rtp, first)
                        });
                    }
                    Err(e) => room.refuse(session, req, &e),
                }),
        );
    }

    fn close_sale(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        sale: SaleHandle,
        req: Option<u64>,
    ) {
        let (sink, answer) = reply_channel();
        if let Some(reply) = sale.admit(sink) {
            sale.addr.do_send(CloseSale { reply });
        }
        ctx.spawn(
            answer
                .into_actor(self)
                .map(move |answer, room, _| match answer {
                    Ok(()) => room.send(
                        session,
                        &ServerMsg::Ack {
                            id: req,
                            comment_id: None,
                        },
                    ),
                    Err(e) => room.refuse(session, req, &e),
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

impl Handler<ViewAs> for Room {
    type Result = MessageResult<ViewAs>;

    fn handle(&mut self, msg: ViewAs, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.core
                .may_view(msg.user.as_deref())
                .map(|()| self.core.snapshot()),
        )
    }
}

impl Handler<SetMedia> for Room {
    type Result = ();

    fn handle(&mut self, msg: SetMedia, ctx: &mut Context<Self>) {
        self.guarded(ctx, |core| core.set_media(msg.0));
    }
}
