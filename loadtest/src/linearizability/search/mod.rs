//! The WGL search itself: the model state it replays (orders, stock, per-buyer holds,
//! idempotency answers) with an incremental 128-bit hash for memoization, Lowe's linked
//! list of pending call/return entries, and the sound pruning rules described in the
//! parent module. Only [`Search::new`] and [`Search::run`] are used from outside.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use super::*;

mod bounds;
mod describe;
mod hash;
mod model;

use bounds::{Crossing, Prune};
use hash::{PreHashed, T_REM, comp};
use model::{Ans, Applied, Change, Order, Status};

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

struct Frame {
    choices: Vec<usize>,
    next: usize,
    applied: Option<Applied>,
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
}
