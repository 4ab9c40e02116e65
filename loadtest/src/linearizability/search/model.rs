//! The sequential model the search replays: what a sale answers to each op from the
//! current state (orders, stock, per-buyer holds, idempotency answers), applying that
//! answer with the incremental hash kept up to date, and undoing it when the search
//! backtracks.

use super::hash::{T_LIN, T_REM, comp, idem_comp, order_comp};
use super::*;

/// A model answer or recorded result, with order ids interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ans {
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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Reserved,
    Confirmed,
    Cancelled,
}

#[derive(Clone, Copy)]
pub(super) struct Order {
    pub(super) buyer: usize,
    pub(super) qty: u32,
    pub(super) pair: usize,
    pub(super) status: Status,
}

/// The state change an op makes (its operands come from the op itself).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    Idem,
    Create,
    Cancel,
    Confirm,
}

/// What is needed to undo one linearization step.
pub(super) struct Applied {
    pub(super) event: usize,
    pub(super) change: Change,
    pub(super) hash: u128,
    pub(super) rise: u64,
    pub(super) bad: usize,
    pub(super) opt: (i64, i64),
    /// A buyer whose cancellable quantity changed, and its previous value.
    pub(super) buyer_rise: Option<(usize, u64)>,
}

impl Search<'_> {
    /// What the sequential model answers for event `e` now, and the change it makes.
    pub(super) fn step(&self, e: usize) -> (Ans, Change) {
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

    pub(super) fn contrib(&self, order: usize) -> u64 {
        match self.orders[order] {
            Some(o) if o.status == Status::Reserved && self.pend_cancels[order] > 0 => {
                u64::from(o.qty)
            }
            _ => 0,
        }
    }

    pub(super) fn set_remaining(&mut self, r: u32) {
        self.hash ^= comp(T_REM, u64::from(self.remaining), 0) ^ comp(T_REM, u64::from(r), 0);
        self.remaining = r;
    }

    pub(super) fn set_status(&mut self, order: usize, status: Status) {
        if let Some(mut o) = self.orders[order] {
            self.hash ^= order_comp(order, &o);
            o.status = status;
            self.hash ^= order_comp(order, &o);
            self.orders[order] = Some(o);
        }
    }

    pub(super) fn set_idem(&mut self, pair: usize, ans: Ans) {
        self.idem[pair] = Some(ans);
        self.hash ^= idem_comp(pair, ans);
    }

    /// Linearizes event `e` (whose model answer is `ans`) and returns its undo record.
    pub(super) fn apply(&mut self, e: usize, ans: Ans, change: Change) -> Applied {
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
    pub(super) fn undo(&mut self, a: Applied) {
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

    pub(super) fn consumed(&self, e: usize, change: Change) -> Option<usize> {
        self.crossing_of[e].filter(|_| matches!(change, Change::Create | Change::Cancel))
    }
}
