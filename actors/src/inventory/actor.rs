//! The inventory actor: one per sale, a thin shell around [`InventoryCore`]. Its single
//! mailbox is the sale's decision order. After each burst of messages it flushes: the
//! decisions' writes go to the store as one batch (group-committed with every other
//! sale's), and only when that batch is durable are the buyers answered. A long burst is
//! flushed in parts of `sales.max_writes_per_flush` writes, so the store commits one part
//! while the actor decides the next. Answers that wrote nothing (refusals after a
//! sell-out, a repeated key) cost the store nothing: they are given at once when no
//! flush is in flight, or ride on the latest flush in flight (flushes commit in order,
//! so it holds everything they depend on). Stock changes are pushed to the sale's room,
//! coalesced per flush.
//!
//! It also supervises its core. If a commit fails, or the core panics, memory may be
//! ahead of the database: every request not yet durable is answered `unavailable`, the
//! sale refuses new requests, and it rebuilds its core from the database — retrying with
//! exponential backoff (`sales.recovery_backoff_*`) until the database takes writes
//! again. An ended sale with no reservation left retires (stops) after
//! `sales.retire_after_secs` and is loaded again on demand.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use lockstep_protocol::SaleState;

use super::core::{CoreLimits, Effect, InventoryCore, Reply, ReserveReply, Revealed, Write};
use super::directory::SaleDirectory;
use super::model::{Order, OrderOrigin, SaleSummary};
use super::sink::{Answer, ReplySink};
use crate::boundary::contain;
use crate::clock::now_ms;
use crate::config::SalesConfig;
use crate::directory::RoomDirectory;
use crate::metrics::Metrics;
use crate::room::SaleUpdate;
use crate::store::{SaleWrites, Storage, StoredSale};
use crate::sync::plain::{Arc, Weak};

const REBUILDING: &str = "the sale is being rebuilt after a failure; retry with the same key";

/// Reserve units for a buyer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reserve {
    pub buyer: String,
    pub qty: u32,
    pub key: String,
    /// Where the buyer ordered (kept on the order).
    pub origin: OrderOrigin,
    pub reply: ReplySink<ReserveReply>,
}

/// Confirm (pay) an order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Confirm {
    pub order_id: String,
    pub reply: ReplySink<Order>,
}

/// Cancel an order; `buyer` set when the buyer (not the merchant) asks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub order_id: String,
    pub buyer: Option<String>,
    pub reply: ReplySink<Order>,
}

/// Drop the link: open at `reveal_at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reveal {
    pub reveal_at: u64,
    pub seed: u64,
    pub reply: ReplySink<Revealed>,
}

/// End the sale.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSale {
    pub reply: ReplySink<()>,
}

/// The sale's counts; `None` while the sale is being rebuilt (its memory may be ahead
/// of the database).
#[derive(Message)]
#[rtype(result = "Option<SaleSummary>")]
pub struct Summary;

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// The sinks of requests the core has not answered yet, by request number and kind.
#[derive(Default)]
struct Waiting {
    reserve: HashMap<u64, ReplySink<ReserveReply>>,
    order: HashMap<u64, ReplySink<Order>>,
    reveal: HashMap<u64, ReplySink<Revealed>>,
    close: HashMap<u64, ReplySink<()>>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.reserve.is_empty()
            && self.order.is_empty()
            && self.reveal.is_empty()
            && self.close.is_empty()
    }

    /// The answer to request `req`, ready to send once it is durable (`None` if nobody
    /// waits for it any more).
    fn take(&mut self, req: u64, reply: Reply) -> Option<Decided> {
        fn pair<T: 'static>(sink: Option<ReplySink<T>>, answer: Answer<T>) -> Option<Decided> {
            sink.map(|sink| {
                Decided(Box::new(move |durable| match durable {
                    Ok(()) => sink.send(answer),
                    Err(why) => sink.unavailable(why),
                }))
            })
        }
        match reply {
            Reply::Reserve(r) => pair(self.reserve.remove(&req), Ok(r)),
            Reply::Order(r) => pair(self.order.remove(&req), r),
            Reply::Reveal(r) => pair(self.reveal.remove(&req), r),
            Reply::Close(r) => pair(self.close.remove(&req), r),
        }
    }

    /// Answers every waiting request `unavailable`.
    fn refuse_all(&mut self, why: &'static str) {
        self.reserve.drain().for_each(|(_, s)| s.unavailable(why));
        self.order.drain().for_each(|(_, s)| s.unavailable(why));
        self.reveal.drain().for_each(|(_, s)| s.unavailable(why));
        self.close.drain().for_each(|(_, s)| s.unavailable(why));
    }
}

/// A decided answer waiting for its writes to be durable: called with `Ok` once they
/// are, or with why not.
struct Decided(Box<dyn FnOnce(Result<(), &'static str>)>);

/// What the actor needs besides its core.
pub(super) struct Wiring {
    pub cfg: Arc<SalesConfig>,
    pub store: Arc<dyn Storage>,
    pub rooms: Weak<RoomDirectory>,
    pub sales: Weak<SaleDirectory>,
    pub metrics: Metrics,
    pub room_id: String,
    pub epochs: Option<super::directory::Epochs>,
}

/// One sale's inventory actor.
pub struct Inventory {
    core: InventoryCore,
    wiring: Wiring,
    next_req: u64,
    waiting: Waiting,
    writes: Vec<Write>,
    replies: Vec<Decided>,
    stock: Option<(u32, SaleState)>,
    flush_queued: bool,
    flushes_in_flight: usize,
    /// Number of the latest flush sent to the store.
    last_flush: u64,
    /// Answers that wrote nothing (refusals after a sell-out, repeats of a decided key),
    /// each waiting only for the flush in flight that holds what it depends on.
    riders: VecDeque<(u64, Vec<Decided>)>,
    window_timer: Option<SpawnHandle>,
    /// Set while the core is being rebuilt from the database (after a failed commit or
    /// a panic): memory may be ahead of disk, so every request is refused.
    rebuilding: bool,
    /// When the sale last became dormant (ended, nothing reserved, nothing waiting).
    dormant_since: Option<u64>,
    /// Wait before the next rebuild attempt; it keeps growing while failures come back
    /// soon after a rebuild (a disk with a little room fills again at once).
    backoff: Duration,
    rebuilt_at: Option<std::time::Instant>,
}

impl Inventory {
    pub(super) fn new(core: InventoryCore, wiring: Wiring) -> Self {
        Self {
            core,
            wiring,
            next_req: 1,
            waiting: Waiting::default(),
            writes: Vec::new(),
            replies: Vec::new(),
            stock: None,
            flush_queued: false,
            flushes_in_flight: 0,
            last_flush: 0,
            riders: VecDeque::new(),
            window_timer: None,
            rebuilding: false,
            dormant_since: None,
            backoff: Duration::ZERO,
            rebuilt_at: None,
        }
    }

    fn limits(cfg: &SalesConfig) -> CoreLimits {
        CoreLimits {
            max_refused_keys: cfg.max_refused_keys,
            max_orders_per_buyer: cfg.max_orders_per_buyer,
        }
    }

    /// Builds the core of a stored sale with the configured bounds.
    pub(super) fn core_of(sale: &StoredSale, cfg: &SalesConfig) -> InventoryCore {
        InventoryCore::restore(
            sale.rules.clone(),
            sale.phase,
            sale.released,
            sale.orders.clone(),
        )
        .with_limits(Self::limits(cfg))
    }

    fn sale_id(&self) -> &str {
        &self.core.rules().sale_id
    }

    /// Numbers a request and files its sink in `slot` (of [`Waiting`]); refuses it while
    /// the sale is being rebuilt.
    fn register<T>(
        &mut self,
        sink: ReplySink<T>,
        slot: impl FnOnce(&mut Waiting) -> &mut HashMap<u64, ReplySink<T>>,
    ) -> Option<u64> {
        if self.rebuilding {
            sink.unavailable(REBUILDING);
            return None;
        }
        let req = self.next_req;
        self.next_req += 1;
        slot(&mut self.waiting).insert(req, sink);
        Some(req)
    }

    /// Runs one input through the core, containing a panic: the core is then rebuilt
    /// from the database and nothing undecided is answered as if it were.
    fn decide(&mut self, ctx: &mut Context<Self>, input: impl FnOnce(&mut InventoryCore)) {
        let name = |core: &InventoryCore| format!("sale:{}", core.rules().sale_id);
        match contain(&mut self.core, name, input) {
            Some(()) => self.collect(ctx),
            None => {
                self.wiring
                    .metrics
                    .actor_panics
                    .with_label_values(&["inventory"])
                    .inc();
                tracing::error!(sale = %self.sale_id(), "the sale's core panicked; rebuilding it from the database");
                self.fail(ctx);
            }
        }
    }

    /// Moves the core's effects into the pending flush and makes sure a flush will run
    /// after the messages already in the mailbox.
    fn collect(&mut self, ctx: &mut Context<Self>) {
        for effect in self.core.drain_effects() {
            match effect {
                Effect::Persist(w) => self.writes.push(w),
                Effect::Reply(req, r) => {
                    if let Some(decided) = self.waiting.take(req, r) {
                        self.replies.push(decided);
                    }
                }
                Effect::Stock { remaining, state } => self.stock = Some((remaining, state)),
            }
        }
        if self.writes.len() >= self.wiring.cfg.max_writes_per_flush.max(1) {
            // A long burst: the store commits this part while the rest is decided.
            self.flush(ctx);
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
                if !inv.rebuilding {
                    inv.decide(ctx, |core| core.close_window(now_ms()));
                }
            }));
        }
    }

    /// Memory may be ahead of the database: answer everything not yet durable with
    /// `unavailable`, refuse new requests, and rebuild from the database.
    fn fail(&mut self, ctx: &mut Context<Self>) {
        if self.rebuilding {
            return;
        }
        self.rebuilding = true;
        let riders = self.riders.drain(..).flat_map(|(_, answers)| answers);
        for decided in self.replies.drain(..).chain(riders) {
            (decided.0)(Err(REBUILDING));
        }
        self.waiting.refuse_all(REBUILDING);
        self.writes.clear();
        self.stock = None;
        if let Some(timer) = self.window_timer.take() {
            ctx.cancel_future(timer);
        }
        let initial = Duration::from_millis(self.wiring.cfg.recovery_backoff_initial_ms);
        let max = Duration::from_millis(self.wiring.cfg.recovery_backoff_max_ms);
        // Failing again soon after a rebuild keeps the wait growing instead of restarting.
        let recent = self.rebuilt_at.is_some_and(|at| at.elapsed() < max * 2);
        self.backoff = if recent {
            (self.backoff * 2).clamp(initial, max.max(initial))
        } else {
            initial
        };
        self.rebuild_after(ctx, self.backoff);
    }

    fn rebuild_after(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        ctx.run_later(delay, move |inv, ctx| {
            let (store, id) = (inv.wiring.store.clone(), inv.sale_id().to_owned());
            ctx.spawn(async move { store.recover(id).await }.into_actor(inv).map(
                move |result, inv, ctx| match result {
                    Ok(Some(stored)) => inv.rebuilt(ctx, &stored),
                    Ok(None) => {
                        tracing::error!(sale = %inv.sale_id(), "the sale is gone from the database");
                        ctx.stop();
                    }
                    Err(e) => {
                        let max = Duration::from_millis(inv.wiring.cfg.recovery_backoff_max_ms);
                        let next = (delay * 2).min(max).max(Duration::from_millis(1));
                        tracing::warn!(sale = %inv.sale_id(), error = %e, retry_in_ms = next.as_millis() as u64, "sale not rebuilt yet");
                        inv.rebuild_after(ctx, next);
                    }
                },
            ));
        });
    }

    fn rebuilt(&mut self, ctx: &mut Context<Self>, stored: &StoredSale) {
        self.core = Self::core_of(stored, &self.wiring.cfg);
        self.rebuilding = false;
        self.rebuilt_at = Some(std::time::Instant::now());
        tracing::info!(sale = %self.sale_id(), remaining = self.core.remaining(), "sale rebuilt from the database");
        // The room may have shown counts that were never stored: send the true ones.
        self.stock = Some((self.core.remaining(), self.core.state()));
        self.flush_queued = true;
        ctx.notify(Flush);
        self.arm_window(ctx);
    }

    /// Retires a sale that stayed dormant for `sales.retire_after_secs`.
    fn maybe_retire(&mut self, ctx: &mut Context<Self>, now: u64) {
        let idle = self.core.is_dormant()
            && !self.rebuilding
            && self.waiting.is_empty()
            && self.replies.is_empty()
            && self.writes.is_empty()
            && self.flushes_in_flight == 0;
        if !idle {
            self.dormant_since = None;
            return;
        }
        let since = *self.dormant_since.get_or_insert(now);
        if now.saturating_sub(since) >= self.wiring.cfg.retire_after_secs * 1000 {
            tracing::info!(sale = %self.sale_id(), "sale retired from memory");
            ctx.stop();
        }
    }
}

impl Actor for Inventory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.wiring.metrics.sales_loaded.inc();
        // Sessions use `do_send`, which the mailbox capacity does not bound; the sale's
        // admission gate bounds how many requests can be waiting here instead.
        let tick = Duration::from_millis(self.wiring.cfg.tick_ms.max(1));
        ctx.run_interval(tick, |inv, ctx| {
            if inv.rebuilding {
                return;
            }
            let now = now_ms();
            inv.decide(ctx, |core| core.tick(now));
            inv.maybe_retire(ctx, now);
        });
        self.arm_window(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.wiring.metrics.sales_loaded.dec();
        if let Some(sales) = self.wiring.sales.upgrade() {
            sales.forget(self.sale_id(), &ctx.address());
        }
    }
}

impl Handler<Flush> for Inventory {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_queued = false;
        self.flush(ctx);
    }
}

impl Inventory {
    /// Sends the decisions' writes to the store and files their answers to go out once
    /// they are durable (answers that wrote nothing go at once, or ride on the latest
    /// flush in flight); pushes the stock to the room.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some((remaining, state)) = self.stock.take()
            && let Some(room) = self
                .wiring
                .rooms
                .upgrade()
                .and_then(|d| d.get(&self.wiring.room_id))
        {
            room.do_send(SaleUpdate {
                sale_id: self.sale_id().to_owned(),
                remaining,
                state,
            });
        }
        let replies = std::mem::take(&mut self.replies);
        let writes = std::mem::take(&mut self.writes);
        if writes.is_empty() {
            // Nothing to persist: these answers depend only on decisions already durable
            // or in the latest flush in flight (flushes commit in order). No store work.
            if self.flushes_in_flight == 0 {
                replies.into_iter().for_each(|decided| (decided.0)(Ok(())));
            } else if !replies.is_empty() {
                match self.riders.back_mut() {
                    Some((flush, answers)) if *flush == self.last_flush => answers.extend(replies),
                    _ => self.riders.push_back((self.last_flush, replies)),
                }
            }
            return;
        }
        let epoch = self
            .wiring
            .epochs
            .as_ref()
            .map_or(0, |epoch_of| epoch_of(&self.wiring.room_id).unwrap_or(0));
        let batch = SaleWrites {
            sale_id: self.sale_id().to_owned(),
            writes,
            epoch,
        };
        let written = self.wiring.store.write(batch);
        self.flushes_in_flight += 1;
        self.last_flush += 1;
        let flush = self.last_flush;
        ctx.spawn(written.into_actor(self).map(
            move |result, inv, ctx| {
                inv.flushes_in_flight -= 1;
                // Commits are in order, so this flush being durable makes every earlier
                // one durable too, whatever order their completions are seen in.
                let mut riders = Vec::new();
                while inv.riders.front().is_some_and(|(after, _)| *after <= flush) {
                    riders.extend(inv.riders.pop_front().map(|r| r.1).unwrap_or_default());
                }
                let answers = replies.into_iter().chain(riders);
                match result {
                    // Durable, and so is everything this sale decided before it.
                    Ok(()) => answers.for_each(|decided| (decided.0)(Ok(()))),
                    Err(e) => {
                        tracing::error!(sale = %inv.sale_id(), error = %e, "sale write failed; rebuilding the sale from the database");
                        for decided in answers {
                            (decided.0)(Err(REBUILDING));
                        }
                        inv.fail(ctx);
                    }
                }
            },
        ));
    }
}

impl Handler<Reserve> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply, |w| &mut w.reserve) {
            let (buyer, qty, key, origin) = (msg.buyer, msg.qty, msg.key, msg.origin);
            self.decide(ctx, |core| {
                core.reserve_from(now_ms(), req, &buyer, qty, &key, origin)
            });
        }
    }
}

impl Handler<Confirm> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Confirm, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply, |w| &mut w.order) {
            self.decide(ctx, |core| core.confirm(now_ms(), req, &msg.order_id));
        }
    }
}

impl Handler<super::batch::BuyerCalls> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: super::batch::BuyerCalls, ctx: &mut Context<Self>) {
        for call in msg.0 {
            match call {
                super::batch::BuyerCall::Reserve(m) => Handler::<Reserve>::handle(self, m, ctx),
                super::batch::BuyerCall::Cancel(m) => Handler::<Cancel>::handle(self, m, ctx),
            }
        }
    }
}

impl Handler<Cancel> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply, |w| &mut w.order) {
            let buyer = msg.buyer;
            self.decide(ctx, |core| {
                core.cancel(now_ms(), req, &msg.order_id, buyer.as_deref())
            });
        }
    }
}

impl Handler<Reveal> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: Reveal, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply, |w| &mut w.reveal) {
            self.decide(ctx, |core| core.reveal(req, msg.reveal_at, msg.seed));
        }
    }
}

impl Handler<CloseSale> for Inventory {
    type Result = ();

    fn handle(&mut self, msg: CloseSale, ctx: &mut Context<Self>) {
        if let Some(req) = self.register(msg.reply, |w| &mut w.close) {
            self.decide(ctx, |core| core.close(req));
        }
    }
}

/// Stops the sale's actor here (cluster mode: its room moved to another node, which
/// runs the sale from the shared store). Requests waiting are answered `unavailable`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for Inventory {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Summary> for Inventory {
    type Result = MessageResult<Summary>;

    fn handle(&mut self, _: Summary, _: &mut Context<Self>) -> Self::Result {
        MessageResult((!self.rebuilding).then(|| self.core.summary()))
    }
}
