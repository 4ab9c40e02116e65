//! The pruning rules (described in the parent module): per stock boundary, the crossings
//! pending ops must still make and whether they can still alternate; per buyer, the
//! room left under the limit; the deadlines that order the choices. Each rule only
//! cuts configurations from which no linearization exists.

use super::*;

/// A stock move that pending ops must still make: from `hi` down to `lo`
/// (an Accepted reservation) or from `lo` up to `hi` (a Cancelled cancel).
#[derive(Clone, Copy)]
pub(super) struct Crossing {
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) down: bool,
    pub(super) event: usize,
}

/// Why a configuration cannot lead to a linearization.
#[derive(Clone, Copy)]
pub(super) enum Prune {
    /// A crossing needs a stock level that can no longer be reached.
    Need(usize),
    /// Some stock boundary's crossings cannot alternate properly.
    Levels,
    /// A SoldOut op needs a stock level that can no longer be reached.
    SoldOut(usize),
    /// An op needs its buyer's active quantity to reach a level it no longer can.
    Buyer(usize),
}

impl Search<'_> {
    /// Classifies every op for the pruning rules and sets up the bounds.
    pub(super) fn init_bounds(&mut self, pair_rec: &[Option<(Ans, usize)>], pair_deadline: &[u64]) {
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
    pub(super) fn inherit_deadlines(
        &mut self,
        pair_rec: &[Option<(Ans, usize)>],
        pair_deadline: &[u64],
    ) {
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
    pub(super) fn shift(&mut self, c: usize, sign: i32) {
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
    pub(super) fn level_bad(&self, b: usize, d: i32, remaining: u32) -> bool {
        let (d, (down, up)) = (i64::from(d), self.opt);
        if remaining as usize > b {
            d < -down || d > 1 + up
        } else {
            d < -1 - down || d > up
        }
    }

    pub(super) fn recount_levels(&mut self) {
        self.bad = (0..self.cross.len())
            .filter(|&b| self.level_bad(b, self.cross[b], self.remaining))
            .count();
    }

    /// Removes consumed crossing `c` after the stock moved from `old` to `remaining`.
    pub(super) fn consume(&mut self, c: usize, old: u32, recount: bool) {
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
    pub(super) fn limit_set(&mut self, e: usize) -> Option<&mut BTreeSet<(usize, u32, usize)>> {
        match (self.acts[e], self.rec[e]) {
            (Act::Reserve { shared: false, .. }, Some(Ans::Accepted { .. } | Ans::SoldOut)) => {
                Some(&mut self.unders)
            }
            (Act::Reserve { shared: false, .. }, Some(Ans::LimitExceeded)) => Some(&mut self.overs),
            _ => None,
        }
    }

    /// Whether reserve `e` may create an order when it takes effect.
    pub(super) fn may_create(&self, e: usize) -> bool {
        matches!(self.acts[e], Act::Reserve { .. })
            && matches!(self.expect[e], None | Some(Ans::Accepted { .. }))
    }

    /// A pending op whose buyer's active quantity can no longer reach what it needs.
    pub(super) fn buyer_stuck(&self, b: usize) -> Option<usize> {
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
    pub(super) fn counted_cancel(&self, e: usize) -> Option<usize> {
        match (self.acts[e], self.rec[e]) {
            (Act::Cancel { order }, None | Some(Ans::Cancelled { .. })) => Some(order),
            _ => None,
        }
    }

    /// The stock level op `x` needs just before it to get its recorded result, if it needs one.
    pub(super) fn target_level(&self, x: usize) -> Option<i64> {
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
    pub(super) fn movement(&self, e: usize) -> (u64, u64) {
        match self.acts[e] {
            Act::Reserve { qty, pair, .. } if self.idem[pair].is_none() => match self.expect[e] {
                None | Some(Ans::Accepted { .. }) => (u64::from(qty), 0),
                _ => (0, 0),
            },
            Act::Cancel { order } if self.counted_cancel(e).is_some() => (0, self.order_qty(order)),
            _ => (0, 0),
        }
    }

    pub(super) fn order_of(&self, order: usize) -> Option<(usize, u32)> {
        self.orders[order]
            .map(|o| (o.buyer, o.qty))
            .or(self.order_info[order])
    }

    pub(super) fn order_qty(&self, order: usize) -> u64 {
        self.order_of(order).map_or(0, |(_, q)| u64::from(q))
    }

    /// Whether op `x`, the pending op that completes first, can still get its recorded
    /// result: until it is linearized, only ops invoked before it completed (the current
    /// candidates) can run, and together they move the stock by at most `moves`.
    pub(super) fn window_ok(&self, x: usize, (down, up): (u64, u64)) -> bool {
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
    pub(super) fn buyer_window(&self, buyer: usize) -> (u64, u64) {
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
    pub(super) fn dooms_finalizer(&self, e: usize, change: Change) -> bool {
        let (Act::Cancel { order } | Act::Confirm { order }) = self.acts[e] else {
            return false;
        };
        matches!(change, Change::Cancel | Change::Confirm)
            && self.finalizer[order].is_some_and(|f| !self.lin[f])
    }

    /// A sound reason why no linearization extends the current configuration, if one is cheap to see.
    pub(super) fn prune(&self, last: Option<usize>) -> Option<Prune> {
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
}
