//! The owner's side of a cluster room: the room runs here as on one node; this actor
//! takes what other nodes send up the room's up channel — joins of their sessions,
//! leaves, inputs, orders, liveness — and hands it to the room or its sales, answers
//! joins on the down channel, drops the sessions of a node that went silent, tells the
//! edges it is alive (under its epoch), and renews the lease. If the lease was lost —
//! this node stalled and another took the room over — it steps down: the room here stops
//! without ending, its sales here retire, and nothing more is written under its epoch.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use lockstep_actors::inventory::SaleDirectory;
use lockstep_actors::room::{
    Inbound, Join, Leave, NodeLikes, Room, RoomError, SessionId, StepDown,
};
use lockstep_actors::sync::plain::Arc;

use crate::envelope::{Down, Up};
use crate::hub::{Delivered, Hub, Reconnected, Route};
use crate::keys;
use crate::lease::Leases;
use crate::publisher::Publisher;

/// Another node's sessions in this room, and when it last spoke.
struct Node {
    seen: Instant,
    sessions: HashSet<SessionId>,
}

/// What an owner link needs from its node.
pub struct OwnerWiring {
    pub alive_every: Duration,
    /// The epoch under which this node runs each room now.
    pub epochs: lockstep_actors::inventory::Epochs,
    pub sales: Arc<SaleDirectory>,
    pub hub: Hub,
    pub publisher: Publisher,
    pub leases: Leases,
    pub node_timeout: Duration,
    pub renew_every: Duration,
}

/// Serves one owned room to the other nodes.
pub struct OwnerLink {
    room_id: String,
    epoch: u64,
    room: Addr<Room>,
    wiring: OwnerWiring,
    nodes: HashMap<String, Node>,
}

impl OwnerLink {
    pub fn new(room_id: String, epoch: u64, room: Addr<Room>, wiring: OwnerWiring) -> Self {
        Self {
            room_id,
            epoch,
            room,
            wiring,
            nodes: HashMap::new(),
        }
    }

    fn down(&self, envelope: &Down) {
        self.wiring
            .publisher
            .publish(keys::down(&self.room_id), envelope.encode(self.epoch));
    }

    fn node(&mut self, node: String) -> &mut Node {
        let node = self.nodes.entry(node).or_insert_with(|| Node {
            seen: Instant::now(),
            sessions: HashSet::new(),
        });
        node.seen = Instant::now();
        node
    }

    /// Drops the sessions of nodes not heard from for `node_timeout`.
    fn drop_silent_nodes(&mut self) {
        let timeout = self.wiring.node_timeout;
        let silent: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.seen.elapsed() >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            if let Some(node) = self.nodes.remove(&id) {
                tracing::warn!(room = %self.room_id, node = %id, sessions = node.sessions.len(), "a node went silent; dropping its sessions");
                for session in node.sessions {
                    self.room.do_send(Leave { session });
                }
            }
        }
    }
}

impl Actor for OwnerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let route = Route::of(ctx.address());
        let (hub, channel) = (self.wiring.hub.clone(), keys::up(&self.room_id));
        // Nothing is handled until the subscription is confirmed.
        ctx.wait(
            async move { hub.subscribe(&channel, route).await }
                .into_actor(self)
                .map(|result, this, _| {
                    if let Err(e) = result {
                        tracing::error!(room = %this.room_id, error = %e, "subscribing to the room's up channel failed");
                    }
                }),
        );
        ctx.run_interval(self.wiring.node_timeout / 4, |this, ctx| {
            if !this.room.connected() {
                return ctx.stop();
            }
            this.drop_silent_nodes();
        });
        // Edges learn the owner is alive (and, after a takeover, that it changed).
        self.down(&Down::Owner { epoch: self.epoch });
        ctx.run_interval(self.wiring.alive_every, |this, _| {
            this.down(&Down::Owner { epoch: this.epoch });
        });
        ctx.run_interval(self.wiring.renew_every, |this, ctx| {
            let (leases, room, epoch) = (this.wiring.leases.clone(), this.room_id.clone(), this.epoch);
            ctx.spawn(async move { leases.renew(&room, epoch).await }.into_actor(this).map(
                |renewed, this, ctx| match renewed {
                    Ok(true) => {}
                    // A newer run of the room on this very node holds the lease: this link
                    // is stale and leaves that run alone.
                    Ok(false) if (this.wiring.epochs)(&this.room_id).is_some_and(|e| e > this.epoch) => ctx.stop(),
                    Ok(false) => {
                        tracing::error!(room = %this.room_id, epoch = this.epoch, "this node lost the room's lease; stepping down");
                        this.room.do_send(StepDown);
                        this.wiring.sales.retire_room(&this.room_id);
                        ctx.stop();
                    }
                    Err(e) => tracing::warn!(room = %this.room_id, error = %e, "renewing the room's lease failed"),
                },
            ));
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        let (hub, leases) = (self.wiring.hub.clone(), self.wiring.leases.clone());
        let (room, epoch) = (self.room_id.clone(), self.epoch);
        let route = Route::of(ctx.address());
        actix_rt::spawn(async move {
            let _ = hub.unsubscribe(&keys::up(&room), &route).await;
            let _ = leases.release(&room, epoch).await;
        });
    }
}

impl Handler<Delivered> for OwnerLink {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        let up = match Up::decode(&msg.0) {
            Ok(up) => up,
            Err(e) => return tracing::warn!(room = %self.room_id, error = %e, "dropping a message"),
        };
        match up {
            Up::Join {
                node,
                session,
                identity,
            } => {
                // A session joining again (its node reconnected to Redis, or this node
                // took the room over) gets a fresh welcome: it leaves first.
                if !self.node(node).sessions.insert(session) {
                    self.room.do_send(Leave { session });
                }
                let join = Join {
                    session,
                    identity,
                    outbound: None,
                };
                ctx.spawn(
                    self.room
                        .send(join)
                        .into_actor(self)
                        .map(move |answer, this, _| {
                            let result = answer.unwrap_or(Err(RoomError::Restarted));
                            this.down(&Down::Joined { session, result });
                        }),
                );
            }
            Up::Leave { session } => {
                for node in self.nodes.values_mut() {
                    node.sessions.remove(&session);
                }
                self.room.do_send(Leave { session });
            }
            Up::Input { session, input } => self.room.do_send(Inbound { session, input }),
            Up::Alive { node } => {
                self.node(node);
            }
            Up::Likes { count } => self.room.do_send(NodeLikes { count }),
            Up::Buy {
                session,
                buyer,
                request,
            } => {
                let (publisher, channel, epoch) = (
                    self.wiring.publisher.clone(),
                    keys::down(&self.room_id),
                    self.epoch,
                );
                self.wiring.sales.buy(
                    &self.room_id,
                    buyer,
                    request,
                    Box::new(move |frame| {
                        publisher.publish(channel, Down::To { session, frame }.encode(epoch))
                    }),
                );
            }
        }
    }
}

impl Handler<Reconnected> for OwnerLink {
    type Result = ();

    /// Joins, inputs or leaves may have been lost: edges time out their joins, silent
    /// nodes are dropped, and a lost leave is reconciled when its node goes.
    fn handle(&mut self, _: Reconnected, _: &mut Context<Self>) {
        tracing::warn!(room = %self.room_id, "the subscription connection dropped; messages from other nodes may have been lost");
    }
}
