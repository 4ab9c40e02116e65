//! The WGL search itself: the model state it replays (orders, stock, per-buyer holds,
//! idempotency answers) with an incremental 128-bit hash for memoization, Lowe's linked
//! list of pending call/return entries, and the sound pruning rules described in the
//! parent module. Only [`Search::new`] and [`Search::run`] are used from outside.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::*;

/// A model answer or recorded result, with order ids interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ans {
    Accepted {
        order: u32,
        remaining: u32,
    },
    SoldOut,
    LimitExceeded,
    Cancelled {
        remaining: u32,
    },
    Confirmed,
    Rejected,
    /// The model would accept, but the order id is already used by another order.
    DuplicateId,
}

/// An operation with buyers, (buyer, key) pairs and order ids interned.
#[derive(Clone, Copy)]
enum Act {
    /// `order`: the id this reservation gets if it creates an order;
    /// `shared`: other reserves use the same pair, so the idempotency entry matters.
    Reserve {
        buyer: usize,
        qty: u32,
        pair: usize,
        shared: bool,
        order: usize,
    },
    Cancel {
        order: usize,
    },
    Confirm {
        order: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Reserved,
    Confirmed,
    Cancelled,
}

#[derive(Clone, Copy)]
struct Order {
    buyer: usize,
    qty: u32,
    pair: usize,
    status: Status,
}

/// The state change an op makes (its operands come from the op itself).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    Idem,
    Create,
    Cancel,
    Confirm,
}

/// A stock move that pending ops must still make: from `hi` down to `lo`
/// (an Accepted reservation) or from `lo` up to `hi` (a Cancelled cancel).
#[derive(Clone, Copy)]
struct Crossing {
    lo: usize,
    hi: usize,
    down: bool,
    event: usize,
}

/// Why a configuration cannot lead to a linearization.
#[derive(Clone, Copy)]
enum Prune {
    /// A crossing needs a stock level that can no longer be reached.
    Need(usize),
    /// Some stock boundary's crossings cannot alternate properly.
    Levels,
    /// A SoldOut op needs a stock level that can no longer be reached.
    SoldOut(usize),
    /// An op needs its buyer's active quantity to reach a level it no longer can.
    Buyer(usize),
}

/// What is needed to undo one linearization step.
struct Applied {
    event: usize,
    change: Change,
    hash: u128,
    rise: u64,
    bad: usize,
    opt: (i64, i64),
    /// A buyer whose cancellable quantity changed, and its previous value.
    buyer_rise: Option<(usize, u64)>,
}

struct Frame {
    choices: Vec<usize>,
    next: usize,
    applied: Option<Applied>,
}

/// Hasher for keys that are already uniformly distributed hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 128-bit hash of one state component; a configuration hashes to the XOR of its components.
fn comp(tag: u64, a: u64, b: u64) -> u128 {
    let lo = mix(mix(mix(tag) ^ a) ^ b);
    let hi = mix(mix(mix(tag ^ 0x5BD1_E995_3C6E_F372) ^ a.rotate_left(23)) ^ b.rotate_left(41));
    (u128::from(hi) << 64) | u128::from(lo)
}

const T_REM: u64 = 1;
const T_LIN: u64 = 2;
const T_ORDER: u64 = 3; // + status
const T_IDEM: u64 = 8; // + kind of stored result

fn order_comp(order: usize, o: &Order) -> u128 {
    comp(
        T_ORDER + o.status as u64,
        order as u64,
        ((o.pair as u64) << 32) | u64::from(o.qty),
    )
}

fn idem_comp(pair: usize, ans: Ans) -> u128 {
    match ans {
        Ans::Accepted { order, remaining } => comp(
            T_IDEM,
            pair as u64,
            (u64::from(order) << 32) | u64::from(remaining),
        ),
        Ans::SoldOut => comp(T_IDEM + 1, pair as u64, 0),
        _ => comp(T_IDEM + 2, pair as u64, 0),
    }
}

fn intern<'a>(map: &mut HashMap<&'a str, usize>, s: &'a str) -> usize {
    let next = map.len();
    *map.entry(s).or_insert(next)
}

/// The WGL search: model state, Lowe's entry list, pruning bounds, memo table and diagnostics.
pub(super) struct Search<'a> {
    spec: SaleSpec,
    history: &'a [Event],
    acts: Vec<Act>,
    /// Recorded result; `None` for timed-out ops.
    rec: Vec<Option<Ans>>,
    /// The only result an op may produce when it takes effect: its recorded one, or for a
    /// timed-out reserve the one its completed retries recorded (they replay it).
    expect: Vec<Option<Ans>>,
    /// Sort key among choices: completion time (of the retries, for a timed-out reserve).
    deadline: Vec<u64>,
    crossings: Vec<Crossing>,
    /// The crossing an op consumes when it creates or cancels an order.
    crossing_of: Vec<Option<usize>>,
    /// Per event: +1 a timed-out reserve that may take stock at any level, -1 a timed-out
    /// cancel that may return stock at any level, 0 otherwise.
    opt_kind: Vec<i8>,
    /// Per event: the quantity of a completed SoldOut whose pair is used once.
    sold_out_qty: Vec<Option<u32>>,
    /// Per order: the completed op that recorded it leaving the Reserved state.
    finalizer: Vec<Option<usize>>,
    /// Per order: (buyer, qty) of the reservation that recorded it as Accepted.
    order_info: Vec<Option<(usize, u32)>>,
    order_names: Vec<String>,
    // Model state.
    remaining: u32,
    orders: Vec<Option<Order>>,
    active: Vec<u64>,
    idem: Vec<Option<Ans>>,
    // Pruning bounds.
    /// Per order: pending cancels that may still succeed.
    pend_cancels: Vec<u32>,
    /// Units that cancels of existing reserved orders may still return.
    rise: u64,
    /// Per buyer: the part of `rise` from that buyer's orders.
    buyer_rise: Vec<u64>,
    /// Per buyer: units that pending reserves of the buyer may still take.
    room: Vec<u64>,
    /// Pending completed one-off reserves needing their buyer under the limit (Accepted,
    /// SoldOut) or at it (LimitExceeded), as (buyer, qty, event).
    unders: BTreeSet<(usize, u32, usize)>,
    overs: BTreeSet<(usize, u32, usize)>,
    /// Pending crossings as (highest stock level involved, crossing).
    needs: BTreeSet<(usize, usize)>,
    /// Pending one-off SoldOut ops as (qty, event).
    soldouts: BTreeSet<(u32, usize)>,
    /// Per stock boundary `b` (between `b` and `b + 1`): pending downward minus upward crossings.
    cross: Vec<i32>,
    /// Per stock boundary: pending downward crossings.
    downs: Vec<u32>,
    /// Pending optional (downward, upward) movers: timed-out reserves and cancels.
    opt: (i64, i64),
    /// Boundaries whose pending crossings can no longer alternate properly.
    bad: usize,
    // Lowe's list of call and return entries; node 0 is the head, `tail` the tail.
    next: Vec<usize>,
    prev: Vec<usize>,
    node_event: Vec<usize>,
    node_call: Vec<bool>,
    call_node: Vec<usize>,
    ret_node: Vec<Option<usize>>,
    tail: usize,
    lin: Vec<bool>,
    pending: usize,
    total: usize,
    hash: u128,
    memo: HashSet<u128, BuildHasherDefault<PreHashed>>,
    best: Option<(usize, String)>,
}

impl<'a> Search<'a> {
    pub(super) fn new(spec: SaleSpec, history: &'a [Event]) -> Self {
        let n = history.len();
        let (mut order_ids, mut buyer_ids, mut pair_ids) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        let (mut rec, mut target) = (Vec::with_capacity(n), vec![0; n]);
        let mut pair_of = vec![usize::MAX; n];
        for (i, ev) in history.iter().enumerate() {
            rec.push(match &ev.ret {
                Ret::Accepted {
                    order_id,
                    remaining,
                } => Some(Ans::Accepted {
                    order: intern(&mut order_ids, order_id) as u32,
                    remaining: *remaining,
                }),
                Ret::SoldOut => Some(Ans::SoldOut),
                Ret::LimitExceeded => Some(Ans::LimitExceeded),
                Ret::Cancelled { remaining } => Some(Ans::Cancelled {
                    remaining: *remaining,
                }),
                Ret::Confirmed => Some(Ans::Confirmed),
                Ret::Rejected => Some(Ans::Rejected),
                Ret::Unknown => None,
            });
            match &ev.op {
                Op::Reserve { buyer, key, .. } => {
                    let next = pair_ids.len();
                    pair_of[i] = *pair_ids
                        .entry((buyer.as_str(), key.as_str()))
                        .or_insert(next);
                }
                Op::Cancel { order_id } | Op::Confirm { order_id } => {
                    target[i] = intern(&mut order_ids, order_id)
                }
            }
        }
        let mut order_names = vec![String::new(); order_ids.len()];
        for (s, &i) in &order_ids {
            order_names[i] = (*s).to_owned();
        }
        // Per pair: uses that read or write the idempotency entry, the result its completed
        // ops recorded (all equal, see `precheck`), and their earliest completion.
        let mut uses = vec![0u32; pair_ids.len()];
        let mut pair_rec: Vec<Option<(Ans, usize)>> = vec![None; pair_ids.len()];
        let mut pair_deadline = vec![u64::MAX; pair_ids.len()];
        for (i, &p) in pair_of
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != usize::MAX)
        {
            if rec[i] != Some(Ans::Rejected) {
                uses[p] += 1;
                if let (Some(r), Some(c)) = (rec[i], history[i].complete) {
                    pair_rec[p].get_or_insert((r, i));
                    pair_deadline[p] = pair_deadline[p].min(c);
                }
            }
        }
        let mut acts = Vec::with_capacity(n);
        for (i, ev) in history.iter().enumerate() {
            acts.push(match &ev.op {
                Op::Reserve { buyer, qty, .. } => {
                    let pair = pair_of[i];
                    let order = match pair_rec[pair] {
                        Some((Ans::Accepted { order, .. }, _)) => order as usize,
                        _ => {
                            order_names.push(format!("<unobserved order of event #{i}>"));
                            order_names.len() - 1
                        }
                    };
                    let buyer = intern(&mut buyer_ids, buyer);
                    Act::Reserve {
                        buyer,
                        qty: *qty,
                        pair,
                        shared: uses[pair] > 1,
                        order,
                    }
                }
                Op::Cancel { .. } => Act::Cancel { order: target[i] },
                Op::Confirm { .. } => Act::Confirm { order: target[i] },
            });
        }
        // Lowe's list: head, call/return entries by time (calls first on ties), tail.
        let mut entries: Vec<(u64, bool, usize)> = Vec::new();
        for (i, ev) in history.iter().enumerate() {
            entries.push((ev.invoke, false, i));
            if let Some(c) = ev.complete {
                entries.push((c, true, i));
            }
        }
        entries.sort_unstable();
        let tail = entries.len() + 1;
        let mut s = Search {
            spec,
            history,
            rec,
            expect: vec![None; n],
            deadline: vec![u64::MAX; n],
            crossings: Vec::new(),
            crossing_of: vec![None; n],
            opt_kind: vec![0; n],
            sold_out_qty: vec![None; n],
            finalizer: vec![None; order_names.len()],
            order_info: vec![None; order_names.len()],
            remaining: spec.allotted,
            orders: vec![None; order_names.len()],
            active: vec![0; buyer_ids.len()],
            idem: vec![None; pair_ids.len()],
            pend_cancels: vec![0; order_names.len()],
            order_names,
            rise: 0,
            buyer_rise: vec![0; buyer_ids.len()],
            room: vec![0; buyer_ids.len()],
            unders: BTreeSet::new(),
            overs: BTreeSet::new(),
            needs: BTreeSet::new(),
            soldouts: BTreeSet::new(),
            cross: Vec::new(),
            downs: Vec::new(),
            opt: (0, 0),
            bad: 0,
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|k| k.saturating_sub(1)).collect(),
            node_event: vec![usize::MAX; tail + 1],
            node_call: vec![false; tail + 1],
            call_node: vec![0; n],
            ret_node: vec![None; n],
            tail,
            lin: vec![false; n],
            pending: 0,
            total: 0,
            hash: comp(T_REM, u64::from(spec.allotted), 0),
            memo: HashSet::default(),
            best: None,
            acts,
        };
        for (k, &(_, is_ret, e)) in entries.iter().enumerate() {
            s.node_event[k + 1] = e;
            s.node_call[k + 1] = !is_ret;
            if is_ret {
                s.ret_node[e] = Some(k + 1);
            } else {
                s.call_node[e] = k + 1;
            }
        }
        s.init_bounds(&pair_rec, &pair_deadline);
        s
    }

    /// Classifies every op for the pruning rules and sets up the bounds.
    fn init_bounds(&mut self, pair_rec: &[Option<(Ans, usize)>], pair_deadline: &[u64]) {
        let mut pair_crossing = vec![None; pair_rec.len()];
        for (p, r) in pair_rec.iter().enumerate() {
            if let Some((Ans::Accepted { order, remaining }, e)) = *r {
                let Act::Reserve { buyer, qty, .. } = self.acts[e] else {
                    continue;
                };
                self.order_info[order as usize] = Some((buyer, qty));
                let (lo, hi) = (remaining as usize, (remaining + qty) as usize);
                pair_crossing[p] = Some(self.crossings.len());
                self.crossings.push(Crossing {
                    lo,
                    hi,
                    down: true,
                    event: e,
                });
            }
        }
        for e in 0..self.acts.len() {
            let completed = self.history[e].complete.is_some();
            self.total += usize::from(completed);
            if let Some(o) = self.counted_cancel(e) {
                self.pend_cancels[o] += 1;
            }
            match (self.acts[e], self.rec[e]) {
                (
                    Act::Reserve {
                        buyer,
                        pair,
                        qty,
                        shared,
                        ..
                    },
                    rec,
                ) => {
                    self.crossing_of[e] = pair_crossing[pair];
                    self.expect[e] = rec.or(pair_rec[pair].map(|(a, _)| a));
                    self.deadline[e] = self.history[e].complete.unwrap_or(pair_deadline[pair]);
                    self.opt_kind[e] = i8::from(self.expect[e].is_none());
                    if rec == Some(Ans::SoldOut) && !shared && qty > 0 {
                        self.sold_out_qty[e] = Some(qty);
                        self.soldouts.insert((qty, e));
                    }
                    if let Some(set) = self.limit_set(e) {
                        set.insert((buyer, qty, e));
                    }
                    if self.may_create(e) {
                        self.room[buyer] += u64::from(qty);
                    }
                }
                (Act::Cancel { order }, Some(Ans::Cancelled { remaining })) => {
                    let (hi, q) = (
                        remaining as usize,
                        self.order_info[order].map_or(0, |(_, q)| q as usize),
                    );
                    self.crossing_of[e] = Some(self.crossings.len());
                    self.crossings.push(Crossing {
                        lo: hi.saturating_sub(q),
                        hi,
                        down: false,
                        event: e,
                    });
                    self.finalizer[order] = Some(e);
                }
                (Act::Cancel { order } | Act::Confirm { order }, rec) => {
                    if rec == Some(Ans::Confirmed) {
                        self.finalizer[order] = Some(e);
                    }
                    self.opt_kind[e] =
                        -i8::from(rec.is_none() && matches!(self.acts[e], Act::Cancel { .. }));
                }
            }
            self.expect[e] = self.expect[e].or(self.rec[e]);
            if completed {
                self.deadline[e] = self.history[e].complete.unwrap_or_default();
            }
            match self.opt_kind[e] {
                1 => self.opt.0 += 1,
                -1 => self.opt.1 += 1,
                _ => {}
            }
        }
        self.pending = self.total;
        self.inherit_deadlines(pair_rec, pair_deadline);
        let allotted = self.spec.allotted as usize;
        if allotted <= LEVEL_CAP {
            self.cross = vec![0; allotted];
            self.downs = vec![0; allotted];
        }
        for c in 0..self.crossings.len() {
            self.needs.insert((self.crossings[c].hi, c));
            self.shift(c, 1);
        }
        self.recount_levels();
    }

    /// A timed-out cancel/confirm of an order that a later completed op found already final
    /// must take effect before that op completes: use that as its deadline.
    fn inherit_deadlines(&mut self, pair_rec: &[Option<(Ans, usize)>], pair_deadline: &[u64]) {
        let mut created = vec![u64::MAX; self.orders.len()];
        for (p, r) in pair_rec.iter().enumerate() {
            if let Some((Ans::Accepted { order, .. }, _)) = r {
                created[*order as usize] = pair_deadline[p];
            }
        }
        let mut due = vec![u64::MAX; self.orders.len()];
        for (e, ev) in self.history.iter().enumerate() {
            if let (Act::Cancel { order } | Act::Confirm { order }, Some(Ans::Rejected), Some(c)) =
                (self.acts[e], self.rec[e], ev.complete)
                && ev.invoke > created[order]
            {
                due[order] = due[order].min(c);
            }
        }
        for e in 0..self.acts.len() {
            if let (Act::Cancel { order } | Act::Confirm { order }, None) =
                (self.acts[e], self.rec[e])
            {
                self.deadline[e] = due[order];
            }
        }
    }

    /// Adds (`sign` = 1) or removes (-1) a pending crossing from the boundary balances.
    fn shift(&mut self, c: usize, sign: i32) {
        let Crossing { lo, hi, down, .. } = self.crossings[c];
        if self.cross.is_empty() {
            return;
        }
        let dir = if down { sign } else { -sign };
        for b in lo..hi {
            self.cross[b] += dir;
            self.downs[b] = self.downs[b].wrapping_add_signed(sign * i32::from(down));
        }
    }

    /// Whether boundary `b` with balance `d` is unrealizable: from above it the crossings
    /// must alternate down, up, down... (so down - up is 0 or 1); from below, up - down is
    /// 0 or 1. Timed-out ops may add crossings in either direction.
    fn level_bad(&self, b: usize, d: i32, remaining: u32) -> bool {
        let (d, (down, up)) = (i64::from(d), self.opt);
        if remaining as usize > b {
            d < -down || d > 1 + up
        } else {
            d < -1 - down || d > up
        }
    }

    fn recount_levels(&mut self) {
        self.bad = (0..self.cross.len())
            .filter(|&b| self.level_bad(b, self.cross[b], self.remaining))
            .count();
    }

    /// Removes consumed crossing `c` after the stock moved from `old` to `remaining`.
    fn consume(&mut self, c: usize, old: u32, recount: bool) {
        let Crossing { lo, hi, down, .. } = self.crossings[c];
        self.needs.remove(&(hi, c));
        let moved = (old as usize, self.remaining as usize);
        if recount || self.cross.is_empty() || moved != if down { (hi, lo) } else { (lo, hi) } {
            self.shift(c, -1);
            self.recount_levels();
            return;
        }
        for b in lo..hi {
            let was = self.level_bad(b, self.cross[b], old);
            self.cross[b] -= if down { 1 } else { -1 };
            self.downs[b] -= u32::from(down);
            let now = self.level_bad(b, self.cross[b], self.remaining);
            self.bad = self.bad + usize::from(now) - usize::from(was);
        }
    }

    /// Which per-buyer requirement set a completed one-off reserve belongs to.
    fn limit_set(&mut self, e: usize) -> Option<&mut BTreeSet<(usize, u32, usize)>> {
        match (self.acts[e], self.rec[e]) {
            (Act::Reserve { shared: false, .. }, Some(Ans::Accepted { .. } | Ans::SoldOut)) => {
                Some(&mut self.unders)
            }
            (Act::Reserve { shared: false, .. }, Some(Ans::LimitExceeded)) => Some(&mut self.overs),
            _ => None,
        }
    }

    /// Whether reserve `e` may create an order when it takes effect.
    fn may_create(&self, e: usize) -> bool {
        matches!(self.acts[e], Act::Reserve { .. })
            && matches!(self.expect[e], None | Some(Ans::Accepted { .. }))
    }

    /// A pending op whose buyer's active quantity can no longer reach what it needs.
    fn buyer_stuck(&self, b: usize) -> Option<usize> {
        let (limit, active) = (u64::from(self.spec.per_buyer_limit), self.active[b]);
        let of_buyer = (b, 0, 0)..=(b, u32::MAX, usize::MAX);
        if let Some(&(_, q, e)) = self.unders.range(of_buyer.clone()).next_back()
            && active.saturating_sub(self.buyer_rise[b]) + u64::from(q) > limit
        {
            return Some(e);
        }
        let &(_, q, e) = self.overs.range(of_buyer).next()?;
        (active + self.room[b] + u64::from(q) <= limit).then_some(e)
    }

    /// The order of a cancel that may still succeed (recorded Cancelled or timed out).
    fn counted_cancel(&self, e: usize) -> Option<usize> {
        match (self.acts[e], self.rec[e]) {
            (Act::Cancel { order }, None | Some(Ans::Cancelled { .. })) => Some(order),
            _ => None,
        }
    }

    /// What the sequential model answers for event `e` now, and the change it makes.
    fn step(&self, e: usize) -> (Ans, Change) {
        match self.acts[e] {
            Act::Reserve {
                buyer,
                qty,
                pair,
                shared,
                order,
            } => {
                if self.rec[e] == Some(Ans::Rejected) {
                    return (Ans::Rejected, Change::None);
                }
                if let Some(stored) = self.idem[pair] {
                    return (stored, Change::None);
                }
                let store = if shared { Change::Idem } else { Change::None };
                if self.active[buyer] + u64::from(qty) > u64::from(self.spec.per_buyer_limit) {
                    (Ans::LimitExceeded, store)
                } else if self.remaining < qty {
                    (Ans::SoldOut, store)
                } else if self.orders[order].is_some() {
                    (Ans::DuplicateId, Change::None)
                } else {
                    (
                        Ans::Accepted {
                            order: order as u32,
                            remaining: self.remaining - qty,
                        },
                        Change::Create,
                    )
                }
            }
            Act::Cancel { order } => match self.orders[order] {
                Some(o) if o.status == Status::Reserved => (
                    Ans::Cancelled {
                        remaining: self.remaining + o.qty,
                    },
                    Change::Cancel,
                ),
                _ => (Ans::Rejected, Change::None),
            },
            Act::Confirm { order } => match self.orders[order] {
                Some(o) if o.status == Status::Reserved => (Ans::Confirmed, Change::Confirm),
                _ => (Ans::Rejected, Change::None),
            },
        }
    }

    fn contrib(&self, order: usize) -> u64 {
        match self.orders[order] {
            Some(o) if o.status == Status::Reserved && self.pend_cancels[order] > 0 => {
                u64::from(o.qty)
            }
            _ => 0,
        }
    }

    fn set_remaining(&mut self, r: u32) {
        self.hash ^= comp(T_REM, u64::from(self.remaining), 0) ^ comp(T_REM, u64::from(r), 0);
        self.remaining = r;
    }

    fn set_status(&mut self, order: usize, status: Status) {
        if let Some(mut o) = self.orders[order] {
            self.hash ^= order_comp(order, &o);
            o.status = status;
            self.hash ^= order_comp(order, &o);
            self.orders[order] = Some(o);
        }
    }

    fn set_idem(&mut self, pair: usize, ans: Ans) {
        self.idem[pair] = Some(ans);
        self.hash ^= idem_comp(pair, ans);
    }

    /// Linearizes event `e` (whose model answer is `ans`) and returns its undo record.
    fn apply(&mut self, e: usize, ans: Ans, change: Change) -> Applied {
        let (old, act) = (self.remaining, self.acts[e]);
        let mut undo = Applied {
            event: e,
            change,
            hash: self.hash,
            rise: self.rise,
            bad: self.bad,
            opt: self.opt,
            buyer_rise: None,
        };
        let touched = match act {
            Act::Reserve { order, .. } => (change == Change::Create).then_some(order),
            Act::Cancel { order } | Act::Confirm { order } => Some(order),
        };
        let before = touched.map_or(0, |o| self.contrib(o));
        match (change, act) {
            (Change::Idem, Act::Reserve { pair, .. }) => self.set_idem(pair, ans),
            (
                Change::Create,
                Act::Reserve {
                    buyer,
                    qty,
                    pair,
                    shared,
                    order,
                },
            ) => {
                self.set_remaining(self.remaining - qty);
                self.active[buyer] += u64::from(qty);
                let o = Order {
                    buyer,
                    qty,
                    pair,
                    status: Status::Reserved,
                };
                self.hash ^= order_comp(order, &o);
                self.orders[order] = Some(o);
                if shared {
                    self.set_idem(pair, ans);
                }
            }
            (Change::Cancel, Act::Cancel { order }) => {
                if let Some(o) = self.orders[order] {
                    self.set_status(order, Status::Cancelled);
                    self.set_remaining(self.remaining + o.qty);
                    self.active[o.buyer] -= u64::from(o.qty);
                }
            }
            (Change::Confirm, Act::Confirm { order }) => self.set_status(order, Status::Confirmed),
            _ => {}
        }
        if let Some(o) = self.counted_cancel(e) {
            self.pend_cancels[o] -= 1;
        }
        let after = touched.map_or(0, |o| self.contrib(o));
        self.rise = self.rise - before + after;
        if let Some(b) = touched.and_then(|o| Some(self.orders[o]?.buyer)) {
            undo.buyer_rise = Some((b, self.buyer_rise[b]));
            self.buyer_rise[b] = self.buyer_rise[b] - before + after;
        }
        if let Act::Reserve { buyer, qty, .. } = act {
            if self.may_create(e) {
                self.room[buyer] -= u64::from(qty);
            }
            if let Some(set) = self.limit_set(e) {
                set.remove(&(buyer, qty, e));
            }
        }
        match self.opt_kind[e] {
            1 => self.opt.0 -= 1,
            -1 => self.opt.1 -= 1,
            _ => {}
        }
        if let Some(c) = self.consumed(e, change) {
            self.consume(c, old, self.opt != undo.opt);
        } else if self.opt != undo.opt || old != self.remaining {
            self.recount_levels();
        }
        if let Some(q) = self.sold_out_qty[e] {
            self.soldouts.remove(&(q, e));
        }
        self.hash ^= comp(T_LIN, e as u64, 0);
        self.lin[e] = true;
        self.unlink(self.call_node[e]);
        if let Some(r) = self.ret_node[e] {
            self.unlink(r);
            self.pending -= 1;
        }
        undo
    }

    /// Reverts the most recent [`Search::apply`].
    fn undo(&mut self, a: Applied) {
        let e = a.event;
        if let Some(r) = self.ret_node[e] {
            self.relink(r);
            self.pending += 1;
        }
        self.relink(self.call_node[e]);
        self.lin[e] = false;
        if let Some(q) = self.sold_out_qty[e] {
            self.soldouts.insert((q, e));
        }
        if let Some(c) = self.consumed(e, a.change) {
            self.needs.insert((self.crossings[c].hi, c));
            self.shift(c, 1);
        }
        if let Some(o) = self.counted_cancel(e) {
            self.pend_cancels[o] += 1;
        }
        match (a.change, self.acts[e]) {
            (Change::Idem, Act::Reserve { pair, .. }) => self.idem[pair] = None,
            (
                Change::Create,
                Act::Reserve {
                    buyer,
                    qty,
                    pair,
                    order,
                    ..
                },
            ) => {
                self.orders[order] = None;
                self.remaining += qty;
                self.active[buyer] -= u64::from(qty);
                self.idem[pair] = None;
            }
            (Change::Cancel, Act::Cancel { order }) | (Change::Confirm, Act::Confirm { order }) => {
                if let Some(o) = self.orders[order].as_mut() {
                    if o.status == Status::Cancelled {
                        self.remaining -= o.qty;
                        self.active[o.buyer] += u64::from(o.qty);
                    }
                    o.status = Status::Reserved;
                }
            }
            _ => {}
        }
        if let Some((b, r)) = a.buyer_rise {
            self.buyer_rise[b] = r;
        }
        if let Act::Reserve { buyer, qty, .. } = self.acts[e] {
            if self.may_create(e) {
                self.room[buyer] += u64::from(qty);
            }
            if let Some(set) = self.limit_set(e) {
                set.insert((buyer, qty, e));
            }
        }
        (self.hash, self.rise, self.bad, self.opt) = (a.hash, a.rise, a.bad, a.opt);
    }

    fn consumed(&self, e: usize, change: Change) -> Option<usize> {
        self.crossing_of[e].filter(|_| matches!(change, Change::Create | Change::Cancel))
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        self.prev[x] = p;
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        self.prev[x] = n;
    }

    /// Pending ops that may be linearized next (calls before the first pending
    /// return), and the op of that return.
    fn candidates(&self) -> (Vec<usize>, Option<usize>) {
        let (mut out, mut n) = (Vec::new(), self.next[HEAD]);
        while n != self.tail && self.node_call[n] {
            out.push(self.node_event[n]);
            n = self.next[n];
        }
        (out, (n != self.tail).then(|| self.node_event[n]))
    }

    /// Ops to try from the current configuration, most urgent first. A completed op
    /// that fits and neither creates nor cancels an order is returned alone: it
    /// commutes with everything that could precede it, so linearizing it now is safe.
    fn choices(&self) -> Vec<usize> {
        let (mut out, mut moves) = (Vec::new(), (0, 0));
        let mut n = self.next[HEAD];
        while n != self.tail && self.node_call[n] {
            let e = self.node_event[n];
            n = self.next[n];
            let (down, up) = self.movement(e);
            moves = (moves.0 + down, moves.1 + up);
            let (ans, change) = self.step(e);
            if self.expect[e].is_some_and(|x| x != ans) {
                continue;
            }
            if self.rec[e].is_some() {
                if !matches!(change, Change::Create | Change::Cancel) {
                    return vec![e];
                }
                out.push(e);
            } else if change != Change::None && !self.dooms_finalizer(e, change) {
                out.push(e);
            }
        }
        let urgent = (n != self.tail).then(|| self.node_event[n]);
        if urgent.is_some_and(|x| !self.window_ok(x, moves)) {
            return Vec::new();
        }
        // Head for the stock level the most urgent op needs; then earliest deadline first.
        let target = urgent.and_then(|x| self.target_level(x));
        let stock = i64::from(self.remaining);
        out.sort_by_key(|&e| {
            let away = target.is_some_and(|t| {
                let after = match self.step(e).0 {
                    Ans::Accepted { remaining, .. } | Ans::Cancelled { remaining } => {
                        i64::from(remaining)
                    }
                    _ => stock,
                };
                Some(e) != urgent && (after - t).abs() > (stock - t).abs()
            });
            (away, self.deadline[e])
        });
        out
    }

    /// The stock level op `x` needs just before it to get its recorded result, if it needs one.
    fn target_level(&self, x: usize) -> Option<i64> {
        match (self.acts[x], self.rec[x]?) {
            (Act::Reserve { qty, pair, .. }, r) if self.idem[pair].is_none() => match r {
                Ans::Accepted { remaining, .. } => Some(i64::from(remaining) + i64::from(qty)),
                Ans::SoldOut => Some(i64::from(self.remaining).min(i64::from(qty) - 1)),
                _ => None,
            },
            (Act::Cancel { order }, Ans::Cancelled { remaining }) => {
                Some(i64::from(remaining) - self.order_qty(order) as i64)
            }
            _ => None,
        }
    }

    /// Upper bounds on how far pending op `e` may still move the stock (down, up).
    fn movement(&self, e: usize) -> (u64, u64) {
        match self.acts[e] {
            Act::Reserve { qty, pair, .. } if self.idem[pair].is_none() => match self.expect[e] {
                None | Some(Ans::Accepted { .. }) => (u64::from(qty), 0),
                _ => (0, 0),
            },
            Act::Cancel { order } if self.counted_cancel(e).is_some() => (0, self.order_qty(order)),
            _ => (0, 0),
        }
    }

    fn order_of(&self, order: usize) -> Option<(usize, u32)> {
        self.orders[order]
            .map(|o| (o.buyer, o.qty))
            .or(self.order_info[order])
    }

    fn order_qty(&self, order: usize) -> u64 {
        self.order_of(order).map_or(0, |(_, q)| u64::from(q))
    }

    /// Whether op `x`, the pending op that completes first, can still get its recorded
    /// result: until it is linearized, only ops invoked before it completed (the current
    /// candidates) can run, and together they move the stock by at most `moves`.
    fn window_ok(&self, x: usize, (down, up): (u64, u64)) -> bool {
        let stock = u64::from(self.remaining);
        let reach = stock.saturating_sub(down)..=stock + up;
        match (self.acts[x], self.rec[x]) {
            (
                Act::Reserve {
                    buyer,
                    qty,
                    pair,
                    shared,
                    ..
                },
                Some(r),
            ) if r != Ans::Rejected => {
                if let Some(stored) = self.idem[pair] {
                    return stored == r;
                }
                if shared {
                    return true;
                }
                let (q, limit) = (u64::from(qty), u64::from(self.spec.per_buyer_limit));
                let (lo, hi) = self.buyer_window(buyer);
                match r {
                    Ans::Accepted { remaining, .. } => {
                        lo + q <= limit && reach.contains(&(u64::from(remaining) + q))
                    }
                    Ans::SoldOut => lo + q <= limit && *reach.start() < q,
                    Ans::LimitExceeded => hi + q > limit,
                    _ => true,
                }
            }
            (Act::Cancel { order }, Some(Ans::Cancelled { remaining })) => u64::from(remaining)
                .checked_sub(self.order_qty(order))
                .is_some_and(|pre| reach.contains(&pre)),
            (Act::Cancel { order } | Act::Confirm { order }, Some(Ans::Rejected))
                if self.orders[order].is_some_and(|o| o.status == Status::Reserved) =>
            {
                self.candidates()
                    .0
                    .into_iter()
                    .any(|e| match (self.acts[e], self.rec[e]) {
                        (Act::Cancel { order: o } | Act::Confirm { order: o }, r) => {
                            o == order
                                && matches!(r, None | Some(Ans::Cancelled { .. } | Ans::Confirmed))
                        }
                        _ => false,
                    })
            }
            _ => true,
        }
    }

    /// Bounds on the active quantity of `buyer` while only the current candidates run.
    fn buyer_window(&self, buyer: usize) -> (u64, u64) {
        let (mut lo, mut hi) = (self.active[buyer], self.active[buyer]);
        let mut n = self.next[HEAD];
        while n != self.tail && self.node_call[n] {
            let e = self.node_event[n];
            n = self.next[n];
            match self.acts[e] {
                Act::Reserve { buyer: b, .. } if b == buyer => hi += self.movement(e).0,
                Act::Cancel { order } if self.order_of(order).is_some_and(|(b, _)| b == buyer) => {
                    lo = lo.saturating_sub(self.movement(e).1);
                }
                _ => {}
            }
        }
        (lo, hi)
    }

    /// A timed-out cancel/confirm finalizing an order whose recorded finalizer is still pending.
    fn dooms_finalizer(&self, e: usize, change: Change) -> bool {
        let (Act::Cancel { order } | Act::Confirm { order }) = self.acts[e] else {
            return false;
        };
        matches!(change, Change::Cancel | Change::Confirm)
            && self.finalizer[order].is_some_and(|f| !self.lin[f])
    }

    /// A sound reason why no linearization extends the current configuration, if one is cheap to see.
    fn prune(&self, last: Option<usize>) -> Option<Prune> {
        let buyers: Vec<usize> = match last.map(|e| self.acts[e]) {
            None => self
                .unders
                .iter()
                .chain(&self.overs)
                .map(|&(b, _, _)| b)
                .collect(),
            Some(Act::Reserve { buyer, .. }) => vec![buyer],
            Some(Act::Cancel { order } | Act::Confirm { order }) => {
                self.order_of(order).map(|(b, _)| b).into_iter().collect()
            }
        };
        if let Some(e) = buyers.into_iter().find_map(|b| self.buyer_stuck(b)) {
            return Some(Prune::Buyer(e));
        }
        if let Some(&(hi, c)) = self.needs.last()
            && hi as u64 > u64::from(self.remaining) + self.rise
        {
            return Some(Prune::Need(c));
        }
        if self.bad > 0 {
            return Some(Prune::Levels);
        }
        if self.opt.0 > 0 || self.cross.is_empty() {
            return None;
        }
        // A pending SoldOut of qty q needs the stock to drop below q again.
        let mut from = (0, 0);
        while let Some(&(q, e)) = self.soldouts.range(from..).next() {
            if self.remaining >= q && self.downs[q as usize - 1] == 0 {
                return Some(Prune::SoldOut(e));
            }
            from = (q.checked_add(1)?, 0);
        }
        None
    }

    pub(super) fn run(mut self, budget: u64) -> Result<Vec<usize>, Violation> {
        if let Some(p) = self.prune(None) {
            return violation(self.describe_prune(p));
        }
        if self.pending == 0 {
            return Ok(Vec::new());
        }
        let mut explored = 0u64;
        let mut stack = vec![Frame {
            choices: self.choices(),
            next: 0,
            applied: None,
        }];
        while let Some(top) = stack.last_mut() {
            if let Some(a) = top.applied.take() {
                self.undo(a);
            }
            let Some(&e) = top.choices.get(top.next) else {
                self.note(Self::describe_stuck);
                stack.pop();
                continue;
            };
            top.next += 1;
            explored += 1;
            if explored > budget {
                let best = self
                    .best
                    .map_or_else(String::new, |(_, r)| format!("; deepest dead end: {r}"));
                return violation(format!(
                    "search budget exhausted after exploring {budget} states{best}"
                ));
            }
            let (ans, change) = self.step(e);
            let applied = self.apply(e, ans, change);
            if self.pending == 0 {
                top.applied = Some(applied);
                return Ok(stack
                    .iter()
                    .filter_map(|f| Some(f.applied.as_ref()?.event))
                    .collect());
            }
            if let Some(p) = self.prune(Some(e)) {
                self.note(|s| s.describe_prune(p));
                self.undo(applied);
                continue;
            }
            if self.memo.len() < MEMO_CAP && !self.memo.insert(self.hash) {
                self.undo(applied);
                continue;
            }
            top.applied = Some(applied);
            let choices = self.choices();
            stack.push(Frame {
                choices,
                next: 0,
                applied: None,
            });
        }
        violation(
            self.best
                .map_or_else(|| "not linearizable".to_owned(), |(_, r)| r),
        )
    }

    /// Keeps the explanation of the deepest dead end seen so far.
    fn note(&mut self, describe: impl FnOnce(&Self) -> String) {
        let depth = self.total - self.pending;
        if self.best.as_ref().is_none_or(|(d, _)| depth > *d) {
            let reason = describe(self);
            self.best = Some((depth, reason));
        }
    }

    fn describe_op(&self, e: usize) -> String {
        format!(
            "op #{e} {:?} recorded {:?}",
            self.history[e].op, self.history[e].ret
        )
    }

    fn describe_stuck(&self) -> String {
        let mut msg = self.prefix();
        let (cands, blocking) = self.candidates();
        if let Some(b) = blocking {
            let at = self.history[b].complete.unwrap_or_default();
            let _ = write!(
                msg,
                "; {} and must take effect before it completes at {at}",
                self.describe_op(b)
            );
            let moves = cands.iter().fold((0, 0), |(d, u), &e| {
                (d + self.movement(e).0, u + self.movement(e).1)
            });
            if !self.window_ok(b, moves) {
                msg.push_str(
                    ", but no op invoked before then can bring about a state giving that result",
                );
            }
        }
        let mut shown = 0;
        for &e in &cands {
            let (ans, _) = self.step(e);
            if self.rec[e].is_some_and(|r| r != ans) {
                if shown < 4 {
                    let _ = write!(
                        msg,
                        "; {} but the model answers {}",
                        self.describe_op(e),
                        self.show(ans)
                    );
                }
                shown += 1;
            }
        }
        match shown {
            0 => msg.push_str("; every op that fits here leads to a dead end"),
            1..=4 => {}
            _ => {
                let _ = write!(msg, "; and {} more mismatching ops", shown - 4);
            }
        }
        msg
    }

    fn describe_prune(&self, p: Prune) -> String {
        let mut msg = self.prefix();
        let _ = match p {
            Prune::Need(c) => {
                let Crossing {
                    hi, down, event, ..
                } = self.crossings[c];
                let when = if down {
                    "just before it"
                } else {
                    "right after it"
                };
                let top = u64::from(self.remaining) + self.rise;
                write!(
                    msg,
                    "; then {}, which needs a stock of {hi} {when}, but the stock can rise to at most {top}",
                    self.describe_op(event)
                )
            }
            Prune::Buyer(e) => {
                let Act::Reserve { buyer, .. } = self.acts[e] else {
                    return msg;
                };
                let (active, limit) = (self.active[buyer], self.spec.per_buyer_limit);
                let want = if self.rec[e] == Some(Ans::LimitExceeded) {
                    "rise"
                } else {
                    "drop"
                };
                write!(
                    msg,
                    "; then {}, but its buyer's active quantity ({active}, limit {limit}) can no longer {want} enough for that",
                    self.describe_op(e)
                )
            }
            Prune::SoldOut(e) => {
                write!(
                    msg,
                    "; then {}, but the stock can no longer drop below its quantity",
                    self.describe_op(e)
                )
            }
            Prune::Levels => {
                let b = (0..self.cross.len())
                    .find(|&b| self.level_bad(b, self.cross[b], self.remaining))
                    .unwrap_or_default();
                let d = self.cross[b];
                let steps = if d >= 0 {
                    format!("down from {} to {b} {d}", b + 1)
                } else {
                    format!("up from {b} to {} {}", b + 1, -d)
                };
                let _ = write!(
                    msg,
                    "; the pending Accepted/Cancelled results cannot be chained: they step the stock {steps} more time(s) than back"
                );
                let covering = self
                    .needs
                    .iter()
                    .map(|&(_, c)| self.crossings[c])
                    .filter(|c| (c.lo..c.hi).contains(&b));
                for c in covering.take(4) {
                    let _ = write!(msg, "; {}", self.describe_op(c.event));
                }
                Ok(())
            }
        };
        msg
    }

    fn prefix(&self) -> String {
        format!(
            "not linearizable: the longest consistent prefix linearizes {} of {} completed ops (remaining = {})",
            self.total - self.pending,
            self.total,
            self.remaining
        )
    }

    fn show(&self, ans: Ans) -> String {
        match ans {
            Ans::Accepted { order, remaining } => {
                format!(
                    "Accepted {{ order_id: {:?}, remaining: {remaining} }}",
                    self.order_names[order as usize]
                )
            }
            Ans::DuplicateId => {
                "Accepted, but with an order id already used by another order".to_owned()
            }
            other => format!("{other:?}"),
        }
    }
}
