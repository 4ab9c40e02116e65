//! The inventory of one flash sale, as a pure state machine. Every stock decision is a
//! method call with `now` passed in, made in the order calls arrive — one caller (the
//! inventory actor's mailbox) makes the sale linearizable. What must be persisted,
//! answered or broadcast comes out of [`InventoryCore::drain_effects`], in order; the shell
//! answers a request only once every `Persist` before its `Reply` is durable.
//!
//! Rules, in the order they are checked for a reservation:
//! 1. the request is well formed (qty ≥ 1, a key of 1–128 bytes);
//! 2. a known `(buyer, key)` returns its first result (a different qty is `invalid`);
//! 3. the sale is open (`not_open` before `reveal_at`, `closed` after the end);
//! 4. inside the fair window the request is pooled, then decided in seeded random order;
//! 5. the buyer has created fewer than `max_orders_per_buyer` orders in this sale, and
//!    their active units (reserved + confirmed) plus qty ≤ the per-buyer limit (checked
//!    arithmetic: no quantity can wrap around the limit);
//! 6. enough units remain.
//!
//! Accepted, sold-out and limit results are remembered for the key; `not_open`, `closed`
//! and `invalid` are not, so a retry after the reveal can still succeed. Accepted keys
//! live as long as their orders; refused keys are bounded (`max_refused_keys`, oldest
//! forgotten first: a forgotten key is decided again, as after a restart).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher, RandomState};

use hashbrown::Equivalent;

use lockstep_protocol::{OrderOutcome, SaleState};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::SmallRng};

use super::client_keyed::ClientKeyed;
use super::error::SaleError;
use super::model::{Order, OrderOrigin, OrderState, Phase, SaleRules, SaleSummary, order_id};

/// Longest idempotency key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// The answer to a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveReply {
    pub outcome: OrderOutcome,
    pub order_id: Option<String>,
    /// Units left after the decision.
    pub remaining: u32,
    pub expires_at: Option<u64>,
    pub message: Option<String>,
}

/// The link's reveal time (the existing one if it was already revealed) and the units
/// remaining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revealed {
    pub reveal_at: u64,
    pub remaining: u32,
}

/// The core's answer to one request, by the request's kind: each kind of request is
/// answered with its own variant, which the shell hands to that request's typed sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Reserve(ReserveReply),
    /// Confirm or cancel: the order as it is now, or why not.
    Order(Result<Order, SaleError>),
    Reveal(Result<Revealed, SaleError>),
    Close(Result<(), SaleError>),
}

/// A durable change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or update this order.
    Order(Order),
    /// The sale's own state changed; `returned` units go back to the SKU's free stock.
    Sale {
        phase: Phase,
        released: u32,
        returned: u32,
    },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Persist(Write),
    /// Answer request `req` — after every earlier `Persist` is durable.
    Reply(u64, Reply),
    /// The stock or state changed (for the room's broadcast, coalesced per tick).
    Stock {
        remaining: u32,
        state: SaleState,
    },
}

/// Server-side bounds on one sale's memory (`[sales]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreLimits {
    /// Refused idempotency keys remembered; the oldest are forgotten first.
    pub max_refused_keys: usize,
    /// Orders one buyer may create in the sale (cancelled and expired included).
    pub max_orders_per_buyer: u32,
}

impl Default for CoreLimits {
    fn default() -> Self {
        Self {
            max_refused_keys: 100_000,
            max_orders_per_buyer: 100,
        }
    }
}

type KeyId = (String, String);

/// A `(buyer, key)` looked up without copying either: it hashes as the [`KeyId`] tuple
/// does, field after field.
struct KeyRef<'a>(&'a str, &'a str);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<KeyId> for KeyRef<'_> {
    fn equivalent(&self, id: &KeyId) -> bool {
        self.0 == id.0 && self.1 == id.1
    }
}

type KeyMap = ClientKeyed<KeyId, (u32, ReserveReply)>;

/// First answers per `(buyer, key)`: accepted ones for as long as their orders exist,
/// refused ones in a bounded FIFO. Both maps hash alike, so a request's key is hashed
/// once ([`Keys::hash`]) for every lookup and insert it needs.
#[derive(Debug)]
struct Keys {
    accepted: KeyMap,
    refused: KeyMap,
    refused_order: VecDeque<(u64, KeyId)>,
}

impl Default for Keys {
    fn default() -> Self {
        let hasher = RandomState::new();
        Self {
            accepted: KeyMap::with_hasher(hasher.clone()),
            refused: KeyMap::with_hasher(hasher),
            refused_order: VecDeque::new(),
        }
    }
}

impl Keys {
    fn hash(&self, buyer: &str, key: &str) -> u64 {
        self.accepted.hash(&KeyRef(buyer, key))
    }

    fn get(&self, hash: u64, buyer: &str, key: &str) -> Option<&(u32, ReserveReply)> {
        let id = KeyRef(buyer, key);
        self.accepted
            .get(hash, &id)
            .or_else(|| self.refused.get(hash, &id))
    }

    fn remember(
        &mut self,
        hash: u64,
        id: KeyId,
        qty: u32,
        reply: ReserveReply,
        max_refused: usize,
    ) {
        if reply.outcome == OrderOutcome::Accepted {
            self.accepted.insert(hash, id, (qty, reply));
            return;
        }
        if max_refused == 0 {
            return;
        }
        while self.refused.len() >= max_refused {
            let Some((oldest_hash, oldest)) = self.refused_order.pop_front() else {
                break;
            };
            self.refused.remove(oldest_hash, &oldest);
        }
        self.refused_order.push_back((hash, id.clone()));
        self.refused.insert(hash, id, (qty, reply));
    }

    fn refused_len(&self) -> usize {
        self.refused.len()
    }
}

/// What the sale counts per buyer.
#[derive(Debug, Default, Clone, Copy)]
struct BuyerCounts {
    /// Units reserved or confirmed.
    active: u32,
    /// Orders created in this sale, whatever became of them.
    created: u32,
}

#[derive(Debug)]
struct Pooled {
    req: u64,
    buyer: String,
    qty: u32,
    key: String,
    origin: OrderOrigin,
}

/// One sale's inventory.
#[derive(Debug)]
pub struct InventoryCore {
    rules: SaleRules,
    phase: Phase,
    remaining: u32,
    reserved: u32,
    sold: u32,
    released: u32,
    next_seq: u64,
    /// Every order, by its number in the sale.
    orders: BTreeMap<u64, Order>,
    buyers: ClientKeyed<String, BuyerCounts>,
    keys: Keys,
    limits: CoreLimits,
    /// Reservations by expiry time and order number.
    expiry: BTreeSet<(u64, u64)>,
    pool: Vec<Pooled>,
    effects: Vec<Effect>,
}

impl InventoryCore {
    /// A new sale, not yet revealed.
    pub fn new(rules: SaleRules) -> Self {
        Self::restore(rules, Phase::Scheduled, 0, Vec::new())
    }

    /// Rebuilds a sale from its durable record.
    pub fn restore(rules: SaleRules, phase: Phase, released: u32, orders: Vec<Order>) -> Self {
        let mut core = Self {
            remaining: 0,
            reserved: 0,
            sold: 0,
            released,
            next_seq: 1,
            orders: BTreeMap::new(),
            buyers: ClientKeyed::default(),
            keys: Keys::default(),
            limits: CoreLimits::default(),
            expiry: BTreeSet::new(),
            pool: Vec::new(),
            effects: Vec::new(),
            phase,
            rules,
        };
        for order in orders {
            core.next_seq = core.next_seq.max(order.seq + 1);
            let buyer_hash = core.buyers.hash(order.buyer.as_str());
            let counts = core.buyers.get_or_insert_with(
                buyer_hash,
                order.buyer.as_str(),
                str::to_owned,
                BuyerCounts::default,
            );
            counts.created += 1;
            if order.state.is_active() {
                counts.active += order.qty;
            }
            match order.state {
                OrderState::Reserved => {
                    core.reserved += order.qty;
                    core.expiry.insert((order.expires_at, order.seq));
                }
                OrderState::Confirmed => core.sold += order.qty,
                OrderState::Cancelled | OrderState::Expired => {}
            }
            let reply = ReserveReply {
                outcome: OrderOutcome::Accepted,
                order_id: Some(order.id.clone()),
                remaining: order.remaining_after,
                expires_at: Some(order.expires_at),
                message: None,
            };
            let key_hash = core.keys.hash(&order.buyer, &order.key);
            core.keys.accepted.insert(
                key_hash,
                (order.buyer.clone(), order.key.clone()),
                (order.qty, reply),
            );
            core.orders.insert(order.seq, order);
        }
        let held = core.reserved + core.sold + core.released;
        core.remaining = match core.phase {
            Phase::Ended => 0,
            _ => core.rules.allotted.saturating_sub(held),
        };
        core
    }

    /// The same sale with these memory bounds.
    pub fn with_limits(mut self, limits: CoreLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn rules(&self) -> &SaleRules {
        &self.rules
    }

    /// Refused idempotency keys currently remembered.
    pub fn refused_keys(&self) -> usize {
        self.keys.refused_len()
    }

    /// Whether nothing can change in this sale unless someone asks: it ended and holds
    /// no reservation that could expire, and nothing is pooled. Such a sale may be
    /// unloaded and loaded again on demand.
    pub fn is_dormant(&self) -> bool {
        self.phase == Phase::Ended && self.reserved == 0 && self.pool.is_empty()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The public state of the sale.
    pub fn state(&self) -> SaleState {
        match self.phase {
            Phase::Scheduled => SaleState::Scheduled,
            Phase::Ended => SaleState::Ended,
            Phase::Open { .. } if self.remaining == 0 => SaleState::SoldOut,
            Phase::Open { .. } => SaleState::Open,
        }
    }

    /// Counts for the merchant's sale summary.
    pub fn summary(&self) -> SaleSummary {
        let buyers = self
            .orders
            .values()
            .filter(|o| o.state.is_active())
            .map(|o| &o.buyer);
        SaleSummary {
            state: self.state(),
            allotted: self.rules.allotted,
            remaining: self.remaining,
            reserved: self.reserved,
            sold: self.sold,
            released: self.released,
            buyers: buyers.collect::<std::collections::HashSet<_>>().len() as u32,
            orders: self.orders.len() as u32,
        }
    }

    /// When the fair window closes, if requests are pooled (the shell arms a timer).
    pub fn window_closes_at(&self) -> Option<u64> {
        match self.phase {
            Phase::Open { reveal_at, .. } if !self.pool.is_empty() => {
                Some(reveal_at + self.rules.fair_window_ms)
            }
            _ => None,
        }
    }

    /// Drains every pending effect, in order.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// Drops the link: orders are taken from `reveal_at`. Idempotent: a sale already
    /// revealed answers with its existing reveal time.
    pub fn reveal(&mut self, req: u64, reveal_at: u64, seed: u64) {
        let reply = match self.phase {
            Phase::Scheduled => {
                self.phase = Phase::Open { reveal_at, seed };
                self.remaining = self
                    .rules
                    .allotted
                    .saturating_sub(self.reserved + self.sold + self.released);
                self.persist_sale(0);
                self.note_stock();
                Ok(reveal_at)
            }
            Phase::Open { reveal_at, .. } => Ok(reveal_at),
            Phase::Ended => Err(SaleError::Ended),
        };
        let reply = reply.map(|reveal_at| Revealed {
            reveal_at,
            remaining: self.remaining,
        });
        self.effects.push(Effect::Reply(req, Reply::Reveal(reply)));
    }

    /// A reservation request from the live room.
    pub fn reserve(&mut self, now: u64, req: u64, buyer: &str, qty: u32, key: &str) {
        self.reserve_from(now, req, buyer, qty, key, OrderOrigin::default());
    }

    /// A reservation request; `origin` says where it was placed (kept on the order).
    pub fn reserve_from(
        &mut self,
        now: u64,
        req: u64,
        buyer: &str,
        qty: u32,
        key: &str,
        origin: OrderOrigin,
    ) {
        let key_hash = self.keys.hash(buyer, key);
        if let Some(reply) = self.precheck(now, key_hash, buyer, qty, key) {
            return self.reply_reserve(req, reply);
        }
        if let Phase::Open { reveal_at, .. } = self.phase
            && now < reveal_at + self.rules.fair_window_ms
        {
            self.pool.push(Pooled {
                req,
                buyer: buyer.to_owned(),
                qty,
                key: key.to_owned(),
                origin,
            });
            return;
        }
        // Pooled requests arrived first: they are decided before this one, and one of
        // them may have had the same key.
        if self.decide_pool(now)
            && let Some(reply) = self.precheck(now, key_hash, buyer, qty, key)
        {
            return self.reply_reserve(req, reply);
        }
        self.decide(now, req, key_hash, buyer, qty, key, origin);
    }

    /// Checks everything that does not depend on the stock; `Some` is the answer.
    fn precheck(
        &self,
        now: u64,
        key_hash: u64,
        buyer: &str,
        qty: u32,
        key: &str,
    ) -> Option<ReserveReply> {
        let refuse = |outcome, message: &str| {
            Some(ReserveReply {
                outcome,
                order_id: None,
                remaining: self.remaining,
                expires_at: None,
                message: Some(message.to_owned()),
            })
        };
        if qty == 0 {
            return refuse(OrderOutcome::Invalid, "qty must be at least 1");
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return refuse(OrderOutcome::Invalid, "key must be 1-128 bytes");
        }
        if let Some((first_qty, first)) = self.keys.get(key_hash, buyer, key) {
            if *first_qty != qty {
                return refuse(
                    OrderOutcome::Invalid,
                    "key already used with a different qty",
                );
            }
            return Some(first.clone());
        }
        match self.phase {
            Phase::Scheduled => refuse(OrderOutcome::NotOpen, "the link has not dropped yet"),
            Phase::Open { reveal_at, .. } if now < reveal_at => {
                refuse(OrderOutcome::NotOpen, "the link is not revealed yet")
            }
            Phase::Ended => refuse(OrderOutcome::Closed, "the sale has ended"),
            Phase::Open { .. } => None,
        }
    }

    /// Decides a request that passed [`Self::precheck`] with everything decided so far.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        now: u64,
        req: u64,
        key_hash: u64,
        buyer: &str,
        qty: u32,
        key: &str,
        origin: OrderOrigin,
    ) {
        let buyer_hash = self.buyers.hash(buyer);
        let BuyerCounts { active, created } = self
            .buyers
            .get(buyer_hash, buyer)
            .copied()
            .unwrap_or_default();
        let limit_exceeded = |message: String| ReserveReply {
            outcome: OrderOutcome::LimitExceeded,
            order_id: None,
            remaining: self.remaining,
            expires_at: None,
            message: Some(message),
        };
        let reply = if created >= self.limits.max_orders_per_buyer {
            limit_exceeded(format!(
                "at most {} orders per buyer in one sale",
                self.limits.max_orders_per_buyer
            ))
        } else if active
            .checked_add(qty)
            .is_none_or(|held| held > self.rules.per_buyer_limit)
        {
            limit_exceeded(format!("limit is {} per buyer", self.rules.per_buyer_limit))
        } else if self.remaining < qty {
            ReserveReply {
                outcome: OrderOutcome::SoldOut,
                order_id: None,
                remaining: self.remaining,
                expires_at: None,
                message: None,
            }
        } else {
            let (order_id, expires_at) = self.accept(now, buyer_hash, buyer, qty, key, origin);
            ReserveReply {
                outcome: OrderOutcome::Accepted,
                order_id: Some(order_id),
                remaining: self.remaining,
                expires_at: Some(expires_at),
                message: None,
            }
        };
        self.keys.remember(
            key_hash,
            (buyer.to_owned(), key.to_owned()),
            qty,
            reply.clone(),
            self.limits.max_refused_keys,
        );
        self.reply_reserve(req, reply);
    }

    /// Reserves `qty` for `buyer`: the new order's id and expiry.
    fn accept(
        &mut self,
        now: u64,
        buyer_hash: u64,
        buyer: &str,
        qty: u32,
        key: &str,
        origin: OrderOrigin,
    ) -> (String, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let order = Order {
            id: order_id(&self.rules.sale_id, seq),
            seq,
            sale_id: self.rules.sale_id.clone(),
            buyer: buyer.to_owned(),
            qty,
            key: key.to_owned(),
            state: OrderState::Reserved,
            created_at: now,
            expires_at: now + self.rules.reservation_ttl_ms,
            updated_at: now,
            remaining_after: self.remaining - qty,
            source: origin.source,
            replay: origin.replay,
        };
        self.remaining -= qty;
        self.reserved += qty;
        let counts =
            self.buyers
                .get_or_insert_with(buyer_hash, buyer, str::to_owned, BuyerCounts::default);
        counts.active += qty;
        counts.created += 1;
        let (id, expires_at) = (order.id.clone(), order.expires_at);
        self.expiry.insert((expires_at, seq));
        self.effects
            .push(Effect::Persist(Write::Order(order.clone())));
        self.orders.insert(seq, order);
        self.note_stock();
        (id, expires_at)
    }

    fn reply_reserve(&mut self, req: u64, reply: ReserveReply) {
        self.effects.push(Effect::Reply(req, Reply::Reserve(reply)));
    }

    /// Decides every pooled request in seeded random order once the window has closed.
    pub fn close_window(&mut self, now: u64) {
        self.decide_pool(now);
    }

    /// [`Self::close_window`]; whether it decided anything.
    fn decide_pool(&mut self, now: u64) -> bool {
        let Phase::Open { reveal_at, seed } = self.phase else {
            return false;
        };
        if self.pool.is_empty() || now < reveal_at + self.rules.fair_window_ms {
            return false;
        }
        let mut pool = std::mem::take(&mut self.pool);
        pool.shuffle(&mut SmallRng::seed_from_u64(seed));
        for p in pool {
            let key_hash = self.keys.hash(&p.buyer, &p.key);
            // A pooled duplicate of a key decided earlier in the same window.
            match self.precheck(now, key_hash, &p.buyer, p.qty, &p.key) {
                Some(reply) => self.reply_reserve(p.req, reply),
                None => self.decide(now, p.req, key_hash, &p.buyer, p.qty, &p.key, p.origin),
            }
        }
        true
    }

    /// The number of the order with id `order_id` in this sale, if there is one.
    fn seq_of(&self, order_id: &str) -> Option<u64> {
        let (sale, seq) = order_id.rsplit_once('-')?;
        let seq = seq.parse().ok().filter(|_| sale == self.rules.sale_id)?;
        // "s-007" parses as 7 but is not the id of order 7 ("s-7").
        (self.orders.get(&seq)?.id == order_id).then_some(seq)
    }

    /// Marks a reservation paid.
    pub fn confirm(&mut self, now: u64, req: u64, order_id: &str) {
        self.expire_due(now);
        let found = self
            .seq_of(order_id)
            .and_then(|seq| self.orders.get_mut(&seq));
        let result = match found {
            None => Err(SaleError::OrderNotFound(order_id.to_owned())),
            Some(order) if order.state == OrderState::Reserved => {
                order.state = OrderState::Confirmed;
                order.updated_at = now;
                let order = order.clone();
                self.reserved -= order.qty;
                self.sold += order.qty;
                self.expiry.remove(&(order.expires_at, order.seq));
                self.effects
                    .push(Effect::Persist(Write::Order(order.clone())));
                Ok(order)
            }
            Some(order) => Err(SaleError::OrderState(order.state)),
        };
        self.effects.push(Effect::Reply(req, Reply::Order(result)));
    }

    /// Cancels an order; its units go back on sale (or to stock once the sale ended).
    /// `buyer`: when the buyer cancels, only their own reservations; the merchant
    /// (`None`) may also cancel a confirmed order (a refund).
    pub fn cancel(&mut self, now: u64, req: u64, order_id: &str, buyer: Option<&str>) {
        self.expire_due(now);
        let found = self
            .seq_of(order_id)
            .and_then(|seq| Some((seq, self.orders.get(&seq)?)));
        let result = match found {
            Some((_, order)) if buyer.is_some_and(|b| b != order.buyer) => None,
            None => None,
            Some((seq, order)) => Some((seq, order.state)),
        };
        let result = match result {
            None => Err(SaleError::OrderNotFound(order_id.to_owned())),
            Some((seq, OrderState::Reserved)) => Ok(self.finish(now, seq, OrderState::Cancelled)),
            Some((seq, OrderState::Confirmed)) if buyer.is_none() => {
                Ok(self.finish(now, seq, OrderState::Cancelled))
            }
            Some((_, state)) => Err(SaleError::OrderState(state)),
        };
        self.effects.push(Effect::Reply(req, Reply::Order(result)));
    }

    /// Ends an active order (cancel or expiry) and releases its units.
    fn finish(&mut self, now: u64, seq: u64, to: OrderState) -> Order {
        let order = self
            .orders
            .get_mut(&seq)
            .expect("caller checked the order exists");
        let was = order.state;
        order.state = to;
        order.updated_at = now;
        let order = order.clone();
        match was {
            OrderState::Reserved => {
                self.reserved -= order.qty;
                self.expiry.remove(&(order.expires_at, seq));
            }
            OrderState::Confirmed => self.sold -= order.qty,
            OrderState::Cancelled | OrderState::Expired => {
                unreachable!("only active orders finish")
            }
        }
        let buyer_hash = self.buyers.hash(order.buyer.as_str());
        if let Some(counts) = self.buyers.get_mut(buyer_hash, order.buyer.as_str()) {
            counts.active -= order.qty;
        }
        self.effects
            .push(Effect::Persist(Write::Order(order.clone())));
        if self.phase == Phase::Ended {
            self.released += order.qty;
            self.persist_sale(order.qty);
        } else {
            self.remaining += order.qty;
        }
        self.note_stock();
        order
    }

    /// Time passes: reservations expire, the end time ends the sale, the window closes.
    pub fn tick(&mut self, now: u64) {
        self.close_window(now);
        self.expire_due(now);
        if let Some(end_at) = self.rules.end_at
            && now >= end_at
            && self.phase != Phase::Ended
        {
            self.end();
        }
    }

    fn expire_due(&mut self, now: u64) {
        while let Some(&(at, seq)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.finish(now, seq, OrderState::Expired);
        }
    }

    /// Closes the sale (anchor or merchant).
    pub fn close(&mut self, req: u64) {
        let result = if self.phase == Phase::Ended {
            Err(SaleError::AlreadyEnded)
        } else {
            self.end();
            Ok(())
        };
        self.effects.push(Effect::Reply(req, Reply::Close(result)));
    }

    fn end(&mut self) {
        // Requests still pooled in the fair window were never decided: they are refused.
        for p in std::mem::take(&mut self.pool) {
            self.reply_reserve(
                p.req,
                ReserveReply {
                    outcome: OrderOutcome::Closed,
                    order_id: None,
                    remaining: 0,
                    expires_at: None,
                    message: Some("the sale has ended".into()),
                },
            );
        }
        let returned = self.remaining;
        self.released += returned;
        self.remaining = 0;
        self.phase = Phase::Ended;
        self.persist_sale(returned);
        self.note_stock();
    }

    fn persist_sale(&mut self, returned: u32) {
        self.effects.push(Effect::Persist(Write::Sale {
            phase: self.phase,
            released: self.released,
            returned,
        }));
    }

    fn note_stock(&mut self) {
        self.effects.push(Effect::Stock {
            remaining: self.remaining,
            state: self.state(),
        });
    }
}
