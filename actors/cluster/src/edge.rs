//! An edge of a cluster room: on a node that holds sessions of a room another node owns,
//! this actor stands where the room's actor would. Sessions join, speak and leave
//! through it exactly as through a local room; it forwards all of that up to the owner
//! and delivers what comes down — each broadcast to every local session, once, through
//! a fan-out of its own; frames and closes to the session they name.
//!
//! If the subscription connection drops, frames may have been missed: once it is back,
//! every local session joins again and gets a fresh snapshot; its socket stays up. A
//! request Redis does not take is answered `unavailable` at once.
//!
//! The owner says it is alive on the down channel. When it falls silent for longer than
//! a lease, the edge asks its node to take the room over; when a new owner speaks (a
//! higher epoch), the edge joins every local session again to it — the sessions stay
//! connected and get a fresh welcome.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use lockstep_actors::inventory::{Buy, BuyerRequest};
use lockstep_actors::metrics::Metrics;
use lockstep_actors::outbound::{Outbound, Push};
use lockstep_actors::room::{
    Fanout, Identity, Inbound, Join, Leave, RoomError, RoomInput, SessionId,
};
use lockstep_actors::sync::Arc;
use lockstep_protocol::{CloseCode, ErrorCode, ServerMsg, WireError};
use tokio::sync::oneshot;

use crate::envelope::{Down, Up};
use crate::hub::{Delivered, Hub, Reconnected, Route};
use crate::keys;
use crate::publisher::Publisher;

/// Called when an edge stops, with its room and address, so the node forgets it.
pub type OnStop = Box<dyn Fn(&str, &Addr<EdgeRoom>) + Send>;

/// Asks the node to take the room over (its owner fell silent).
pub type TakeOver = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// What an edge needs from its node.
pub struct EdgeWiring {
    pub node: String,
    pub metrics: Metrics,
    pub likes: LikeRules,
    pub hub: Hub,
    pub publisher: Publisher,
    pub alive_every: Duration,
    pub join_timeout: Duration,
    /// How long the owner may be silent before this node tries to take the room over.
    pub owner_timeout: Duration,
    pub take_over: TakeOver,
    pub on_stop: OnStop,
}

/// How an edge gathers its sessions' likes: the room's per-message maximum and how often
/// the tally goes up (the room tick).
#[derive(Debug, Clone, Copy)]
pub struct LikeRules {
    pub max_per_msg: u32,
    pub every: Duration,
}

/// A join waiting for the owner's answer.
struct Pending {
    outbound: Arc<Outbound>,
    answer: oneshot::Sender<Result<(), RoomError>>,
}

/// This node's sessions of a room owned by another node.
pub struct EdgeRoom {
    room_id: String,
    wiring: EdgeWiring,
    fanout: Fanout,
    pending: HashMap<SessionId, Pending>,
    /// Who each local session is, to join it again to a new owner.
    identities: HashMap<SessionId, Identity>,
    /// Sessions joined again to a new owner, waiting for its answer, and when they were
    /// last sent (a join published while the owner was not subscribed is lost: sent again
    /// on the next alive tick).
    rejoining: HashSet<SessionId>,
    rejoin_sent: Instant,
    /// The epoch of the owner last heard, and when.
    owner: Option<u64>,
    owner_seen: Instant,
    take_over_asked: Option<Instant>,
    /// Consecutive alive ticks with no session: the edge stops after a few.
    idle_ticks: u32,
    /// Likes tapped here since the last report.
    likes: u64,
}

impl EdgeRoom {
    /// An edge of `room_id`, whose owner holds the lease under `epoch`.
    pub fn new(room_id: String, epoch: u64, wiring: EdgeWiring) -> Self {
        Self {
            room_id,
            wiring,
            fanout: Fanout::default(),
            pending: HashMap::new(),
            identities: HashMap::new(),
            rejoining: HashSet::new(),
            rejoin_sent: Instant::now(),
            owner: Some(epoch),
            owner_seen: Instant::now(),
            take_over_asked: None,
            idle_ticks: 0,
            likes: 0,
        }
    }

    /// A new owner took the room (or messages may have been missed): every local session
    /// joins it again.
    fn rejoin_all(&mut self) {
        let sessions: Vec<SessionId> = self
            .identities
            .keys()
            .copied()
            .filter(|s| self.holds(*s))
            .collect();
        tracing::info!(room = %self.room_id, sessions = sessions.len(), "joining this node's sessions to the room's owner again");
        self.rejoining.extend(sessions);
        self.send_rejoins();
    }

    /// Whether `session` is this node's: joined, or its join waiting for an answer.
    fn holds(&self, session: SessionId) -> bool {
        self.fanout.get(session).is_some() || self.pending.contains_key(&session)
    }

    /// Sends the join of every session still waiting to be joined again.
    fn send_rejoins(&mut self) {
        let node = self.wiring.node.clone();
        let holds = |s: &SessionId| self.fanout.get(*s).is_some() || self.pending.contains_key(s);
        self.rejoining.retain(holds);
        for session in &self.rejoining {
            if let Some(identity) = self.identities.get(session) {
                self.up(&Up::Join {
                    node: node.clone(),
                    session: *session,
                    identity: identity.clone(),
                });
            }
        }
        self.rejoin_sent = Instant::now();
    }

    /// Asks the node to take the room over when its owner has been silent too long.
    fn check_owner(&mut self) {
        let timeout = self.wiring.owner_timeout;
        if self.owner_seen.elapsed() < timeout
            || self
                .take_over_asked
                .is_some_and(|at| at.elapsed() < timeout)
        {
            return;
        }
        tracing::warn!(room = %self.room_id, "the room's owner is silent; trying to take the room over");
        self.take_over_asked = Some(Instant::now());
        (self.wiring.take_over)(self.room_id.clone());
    }

    fn up(&self, envelope: &Up) {
        self.wiring
            .publisher
            .publish(keys::up(&self.room_id), envelope.encode());
    }

    /// Removes sessions whose queue overflowed (their writers close them with 4001) and
    /// tells the owner they left.
    fn cut(&mut self, sessions: Vec<SessionId>) {
        for session in sessions {
            self.wiring.metrics.slow_viewer_cuts.inc();
            if let Some(queue) = self.fanout.remove(session) {
                // The frames it held and the one that overflowed are lost to that viewer.
                self.wiring
                    .metrics
                    .queue_drops
                    .inc_by(queue.len() as u64 + 1);
            }
            self.identities.remove(&session);
            self.up(&Up::Leave { session });
        }
    }

    fn deliver_to(&mut self, session: SessionId, frame: ByteString) {
        if let Some(queue) = self.fanout.get(session) {
            match queue.push(frame) {
                Push::Queued => self.wiring.metrics.frames_out.inc(),
                Push::Overflowed => self.cut(vec![session]),
                Push::Closed => {}
            }
            return;
        }
        // The welcome of a join still waiting for its answer: the session is in from now,
        // so the broadcasts that follow reach it.
        if let Some(pending) = self.pending.get(&session) {
            let outbound = pending.outbound.clone();
            if outbound.push(frame) == Push::Queued {
                self.wiring.metrics.frames_out.inc();
                self.fanout.add(session, outbound);
            }
        }
    }

    fn close_all(&mut self, code: CloseCode) {
        for (_, queue) in self.fanout.take_all() {
            queue.close(code);
        }
        for (_, pending) in self.pending.drain() {
            pending.outbound.close(code);
            let _ = pending.answer.send(Err(RoomError::Restarted));
        }
    }
}

impl Actor for EdgeRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let route = Route::of(ctx.address());
        let (hub, channel) = (self.wiring.hub.clone(), keys::down(&self.room_id));
        // No join is forwarded before the subscription is confirmed, so no welcome is missed.
        ctx.wait(
            async move { hub.subscribe(&channel, route).await }
                .into_actor(self)
                .map(|result, this, ctx| {
                    if let Err(e) = result {
                        tracing::error!(room = %this.room_id, error = %e, "subscribing to the room's down channel failed");
                        ctx.stop();
                    }
                }),
        );
        ctx.run_interval(self.wiring.likes.every, |this, _| {
            if this.likes > 0 {
                let count = std::mem::take(&mut this.likes);
                this.up(&Up::Likes { count });
            }
        });
        ctx.run_interval(self.wiring.alive_every, |this, ctx| {
            if this.fanout.is_empty() && this.pending.is_empty() {
                this.idle_ticks += 1;
                if this.idle_ticks >= 3 {
                    return ctx.stop();
                }
            } else {
                this.idle_ticks = 0;
            }
            let node = this.wiring.node.clone();
            this.up(&Up::Alive { node });
            if !this.rejoining.is_empty() && this.rejoin_sent.elapsed() >= this.wiring.alive_every {
                this.send_rejoins();
            }
            this.check_owner();
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.close_all(CloseCode::Restarting);
        (self.wiring.on_stop)(&self.room_id, &ctx.address());
        let (hub, channel) = (self.wiring.hub.clone(), keys::down(&self.room_id));
        let route = Route::of(ctx.address());
        actix_rt::spawn(async move {
            let _ = hub.unsubscribe(&channel, &route).await;
        });
    }
}

impl Handler<Join> for EdgeRoom {
    type Result = ResponseFuture<Result<(), RoomError>>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let Some(outbound) = msg.outbound else {
            // Only sessions of this node join through its edge.
            return Box::pin(async { Err(RoomError::Restarted) });
        };
        let (tx, rx) = oneshot::channel();
        self.pending.insert(
            msg.session,
            Pending {
                outbound,
                answer: tx,
            },
        );
        self.identities.insert(msg.session, msg.identity.clone());
        self.idle_ticks = 0;
        self.up(&Up::Join {
            node: self.wiring.node.clone(),
            session: msg.session,
            identity: msg.identity,
        });
        let timeout = self.wiring.join_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                _ => Err(RoomError::Restarted),
            }
        })
    }
}

impl EdgeRoom {
    /// Sends a session's request up; if Redis does not take it, the session is told at
    /// once (`unavailable`, nothing was done) instead of waiting for an answer that
    /// cannot come.
    fn request_up(
        &mut self,
        ctx: &mut Context<Self>,
        session: SessionId,
        id: Option<u64>,
        envelope: &Up,
    ) {
        let taken = self
            .wiring
            .publisher
            .publish_confirmed(keys::up(&self.room_id), envelope.encode());
        ctx.spawn(
            async move { taken.await.unwrap_or(false) }
                .into_actor(self)
                .map(move |taken, this, _| {
                    if !taken && let Some(queue) = this.fanout.get(session) {
                        let refusal = ServerMsg::refusal(id, &Unreachable);
                        let _ = queue.push(ByteString::from(refusal.to_json()));
                    }
                }),
        );
    }
}

/// The cluster's Redis did not take a request: nothing was done.
#[derive(Debug, thiserror::Error)]
#[error("the cluster cannot be reached; nothing was done; retry")]
struct Unreachable;

impl WireError for Unreachable {
    fn code(&self) -> ErrorCode {
        ErrorCode::Unavailable
    }
}

impl Handler<Inbound> for EdgeRoom {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        // Likes that need no answer add up here and go up once per room tick; the rest
        // (an id to acknowledge, a count the room refuses, a session not joined yet) go
        // up as they came, for the owner to answer.
        if let RoomInput::Like { count, id: None } = msg.input
            && (1..=self.wiring.likes.max_per_msg).contains(&count)
            && self.fanout.get(msg.session).is_some()
        {
            self.likes += u64::from(count);
            return;
        }
        let id = match &msg.input {
            RoomInput::Comment { id, .. }
            | RoomInput::Like { id, .. }
            | RoomInput::Control { id, .. } => *id,
            RoomInput::Funnel { .. } => None,
        };
        let envelope = Up::Input {
            session: msg.session,
            input: msg.input,
        };
        self.request_up(ctx, msg.session, id, &envelope);
    }
}

impl Handler<Buy> for EdgeRoom {
    type Result = ();

    fn handle(&mut self, msg: Buy, ctx: &mut Context<Self>) {
        let id = match &msg.request {
            BuyerRequest::Order { id, .. } | BuyerRequest::Cancel { id, .. } => *id,
        };
        let envelope = Up::Buy {
            session: msg.session,
            buyer: msg.buyer,
            request: msg.request,
        };
        self.request_up(ctx, msg.session, id, &envelope);
    }
}

impl Handler<Leave> for EdgeRoom {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.fanout.remove(msg.session);
        self.pending.remove(&msg.session);
        self.identities.remove(&msg.session);
        self.rejoining.remove(&msg.session);
        self.up(&Up::Leave {
            session: msg.session,
        });
    }
}

impl Handler<Delivered> for EdgeRoom {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        let (epoch, down) = match Down::decode(&msg.0) {
            Ok(down) => down,
            Err(e) => return tracing::warn!(room = %self.room_id, error = %e, "dropping a message"),
        };
        // A deposed owner that has not noticed yet: what it says no longer counts. A newer
        // owner than the one known: from now on only it counts, and this node's sessions
        // join it.
        match self.owner {
            Some(known) if epoch < known => return,
            Some(known) if epoch > known => {
                self.owner = Some(epoch);
                self.owner_seen = Instant::now();
                self.take_over_asked = None;
                self.rejoin_all();
            }
            _ => {}
        }
        match down {
            Down::Frame(frame) => {
                let delivery = self.fanout.broadcast(&frame);
                self.wiring.metrics.frames_out.inc_by(delivery.queued);
                if !delivery.cut.is_empty() {
                    self.cut(delivery.cut);
                }
            }
            Down::To { session, frame } => self.deliver_to(session, frame),
            Down::Close {
                session: Some(session),
                code,
            } => {
                if let Some(queue) = self.fanout.remove(session) {
                    queue.close(code);
                }
            }
            Down::Close {
                session: None,
                code,
            } => {
                self.close_all(code);
                ctx.stop();
            }
            Down::Joined { session, result } => {
                if let Some(pending) = self.pending.remove(&session) {
                    self.rejoining.remove(&session);
                    if result.is_err() {
                        self.fanout.remove(session);
                        self.identities.remove(&session);
                    }
                    let _ = pending.answer.send(result);
                } else if self.rejoining.remove(&session) && result.is_err() {
                    // The new owner refused it (banned meanwhile, room full): the page
                    // reconnects and is told why.
                    if let Some(queue) = self.fanout.remove(session) {
                        queue.close(CloseCode::Restarting);
                    }
                    self.identities.remove(&session);
                }
            }
            Down::Owner { .. } => {
                self.owner_seen = Instant::now();
                self.take_over_asked = None;
                self.owner.get_or_insert(epoch);
            }
        }
    }
}

impl Handler<Reconnected> for EdgeRoom {
    type Result = ();

    /// Frames may have been lost while Redis was away: every local session joins the
    /// room again and gets a fresh welcome (its socket stays up).
    fn handle(&mut self, _: Reconnected, _: &mut Context<Self>) {
        tracing::warn!(room = %self.room_id, "the subscription connection dropped; joining this node's sessions again for a fresh snapshot");
        self.owner_seen = Instant::now();
        self.rejoin_all();
    }
}
