//! The inventory actor: one per sale, a thin shell around [`InventoryCore`]. Its single
//! mailbox is the sale's decision order. After each burst of messages it flushes: the
//! decisions' writes go to the store as one batch (group-committed with every other
//! sale's), and only when that batch is durable are the buyers answered. Stock changes
//! are pushed to the sale's room, coalesced per flush.

use std::sync::Weak;
use std::time::Duration;

use actix::prelude::*;
use lockstep_protocol::SaleState;
use tokio::sync::oneshot;

use super::core::{Effect, InventoryCore, Reply, Write};
use super::model::SaleSummary;
use crate::clock::now_ms;
use crate::directory::RoomDirectory;
use crate::room::SaleUpdate;
use crate::store::{SaleWrites, Store};

/// Called once with the answer to a request, after it is durable.
pub type ReplySink = Box<dyn FnOnce(Reply) + Send>;

/// A sink that hands the reply to a oneshot channel, for callers that await it.
pub fn reply_channel() -> (ReplySink, oneshot::Receiver<Reply>) {
    let (tx, rx) = oneshot::channel();
    (Box::new(move |r| drop(tx.send(r))), rx)
}

/// Reserve units for a buyer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reserve {
    pub buyer: String,
    pub qty: u32,
    pub key: String,
    pub reply: ReplySink,
}

/// Confirm (pay) an order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Confirm {
    pub order_id: String,
    pub reply: ReplySink,
}

/// Cancel an order; `buyer` set when the buyer (not the merchant) asks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub order_id: String,
    pub buyer: Option<String>,
    pub reply: ReplySink,
}

/// Drop the link: open at `reveal_at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reveal {
    pub reveal_at: u64,
    pub seed: u64,
    pub reply: ReplySink,
}

/// End the sale.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSale {
    pub reply: ReplySink,
}

/// The sale's counts.
#[derive(Message)]
#[rtype(result = "SaleSummary")]
pub struct Summary;

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// One sale's inventory actor.
pub struct Inventory {
    core: InventoryCore,
    store: Store,
    rooms: Weak<RoomDirectory>,
    room_id: String,
    next_req: u64,
    sinks: std::collections::HashMap<u64, ReplySink>,
    writes: Vec<Write>,
    replies: Vec<(ReplySink, Reply)>,
    stock: Option<(u32, SaleState)>,
    flush_queued: bool,
    window_timer: Option<SpawnHandle>,
    /// Set when a commit failed: memory is ahead of disk, so the sale refuses everything
    /// until a restart rebuilds it from the database.
    broken: bool,
}

impl Inventory {
    pub fn new(
        core: InventoryCore,
        store: Store,
        rooms: Weak<RoomDirectory>,
        room_id: String,
    ) -> Self {
        Self {
            core,
            store,
            rooms,
            room_id,
            next_req: 1,
            sinks: Default::default(),
            writes: Vec::new(),
            replies: Vec::new(),
            stock: None,
            flush_queued: false,
            window_timer: None,
            broken: false,
        }
    }

    fn register(&mut self, sink: ReplySink) -> Option<u64> {
        if self.broken {
            sink(Reply::Closed(Err((
                lockstep_protocol::ErrorCode::Unavailable,
                "sale unavailable after a storage failure".into(),
            ))));
            return None;
        }
        let req = self.next_req;
        self.next_req += 1;
        self.sinks.insert(req, sink);
        Some(req)
    }

    /// Moves the core's effects into the pending flush and makes sure a flush will run
    /// after the messages already in the mailbox.
    fn collect(&mut self, ctx: &mut Context<Self>) {
        for effect in self.core.drain_effects() {
            match effect {
                Effect::Persist(w) => self.writes.push(w),
                Effect::Reply(req, r) => {
                    if let Some(sink) = self.sinks.remove(&req) {
                        self.replies.push((sink, r));
                    }
                }
                Effect::Stock { remaining, state } => self.stock = Some((remaining, state)),
            }
        }
        if !self.flush_queued
            && (!self.replies.is_empty() || !self.writes.is_empty() || self.stock.is_some())
        {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
        self.arm_window(ctx);
    }

    fn arm_window(&mut self, ctx: &mut Context<Self>) {
        if self.window_timer.is_some() {
            return;
        }
        if let Some(at) = self.core.window_closes_at() {
            let wait = Duration::from_millis(at.saturating_sub(now_ms()));
            self.window_timer = Some(ctx.run_later(wait, |inv, ctx| {
                inv.window_timer = None;
                inv.core.close_window(now_ms());
                inv.collect(ctx);
            }));
        }
    }
}

impl Actor for Inventory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Sessions use `do_send`, which the mailbox capacity does not bound: a flash
        // sale's burst queues here rather than being refused at the door.
        ctx.run_interval(Duration::from_millis(100), |inv, ctx| {
            inv.core.tick(now_ms());
            inv.collect(ctx);
        });
        self.arm_window(ctx);
    }
}

impl Handler<Flush> for Inventory {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_queued = false;
        if let Some((remaining, state)) = self.stock.take()
            && let Some(room) = self.rooms.upgrade().and_then(|d| d.get(&self.room_id))
        {
            room.do_send(SaleUpdate {
                sale_id: self.core.rules().sale_id.clone(),
                remaining,
                state,
            });
        }
        let replies = std::mem::take(&mut self.replies);
        let writes = std::mem::take(&mut self.writes);
        if writes.is_empty() {
            // Nothing new to persist, but an earlier flush may still be committing and
            // these answers may depend on it: queue behind it with an empty batch.
            if replies.is_empty() {
                return;
            }
        }
        let batch = SaleWrites {
            sale_id: self.core.rules().sale_id.clone(),
            writes,
        };
        let store = self.store.clone();
        ctx.spawn(
            async move { store.write(batch).await }
                .into_actor(self)
                .map(move |result, inv, _| match result {
                    Ok(()) => replies.into_iter().for_each(|(sink, reply)| sink(reply)),
                    Err(e) => {
                        tracing::error!(error = %e, "sale write failed; refusing further requests");
                        inv.broken = true;
                        for (sink, _) in replies {
                            sink(Reply::Closed(Err((
                                lockstep_protocol::ErrorCode::Internal,
                                "the decision could not be stored".into(),
                            ))));
                        }
                    }
                }),
        );
    }
}

impl Handler<Reserve> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply) {
            self.core
                .reserve(now_ms(), req, &msg.buyer, msg.qty, &msg.key);
            self.collect(ctx);
        }
    }
}

impl Handler<Confirm> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Confirm, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply) {
            self.core.confirm(now_ms(), req, &msg.order_id);
            self.collect(ctx);
        }
    }
}

impl Handler<Cancel> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply) {
            self.core
                .cancel(now_ms(), req, &msg.order_id, msg.buyer.as_deref());
            self.collect(ctx);
        }
    }
}

impl Handler<Reveal> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Reveal, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply) {
            self.core.reveal(req, msg.reveal_at, msg.seed);
            self.collect(ctx);
        }
    }
}

impl Handler<CloseSale> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: CloseSale, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply) {
            self.core.close(req);
            self.collect(ctx);
        }
    }
}

impl Handler<Summary> for Inventory {
    type Result = MessageResult<Summary>;

    fn handle(&mut self, _: Summary, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.summary())
    }
}
