//! Linearizability checking for recorded flash-sale histories.
//!
//! This module owns the sequential reference model of a single flash sale
//! (stock, orders, per-buyer limits, idempotency keys) and a Wing & Gong /
//! Lowe (WGL) search deciding whether a client-recorded history of concurrent
//! operations can be explained by one total order that respects real time and
//! replays exactly against that model. Timed-out operations (`Ret::Unknown`)
//! may be placed anywhere after their invocation or dropped.
//!
//! The search keeps the pending operations in Lowe's linked list of call and
//! return entries, memoizes visited configurations by a 128-bit incremental
//! hash of (model state, set of linearized ops), and prunes soundly:
//! * a pending op whose recorded result matches the model and which changes
//!   nothing (a `SoldOut`, a `Rejected` cancel, an idempotent replay...) is
//!   linearized greedily without branching — moving such an op earlier never
//!   invalidates a linearization, so the interchangeable "sold out" crowd
//!   costs linear time;
//! * timed-out ops are only tried where they would change the state;
//! * a branch is cut when a pending op records a stock level that the stock
//!   can no longer reach (only cancels of existing orders can raise it).
//!
//! Candidates are tried in order of completion time, completed ops before
//! timed-out ones. A static pre-pass reports the obvious violations
//! (oversell, idempotency, unknown orders...) with a specific reason.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

mod search;
#[cfg(test)]
mod tests;

use search::Search;

/// Static parameters of the sale the history was recorded against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleSpec {
    /// Units of stock when the sale opens.
    pub allotted: u32,
    /// Maximum units one buyer may hold in reserved or confirmed orders.
    pub per_buyer_limit: u32,
}

/// An operation a client invoked against the sale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reserve `qty` units for `buyer`; `key` is the idempotency key.
    Reserve {
        /// Buyer identity.
        buyer: String,
        /// Units requested.
        qty: u32,
        /// Idempotency key: a retry with the same (buyer, key) replays the first result.
        key: String,
    },
    /// Cancel a reserved order, returning its units to stock.
    Cancel {
        /// Order to cancel.
        order_id: String,
    },
    /// Confirm (pay for) a reserved order.
    Confirm {
        /// Order to confirm.
        order_id: String,
    },
}

/// The result a client recorded for an operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// Reservation succeeded; `remaining` is the stock left after it.
    Accepted {
        /// Opaque id of the created order.
        order_id: String,
        /// Stock after the reservation.
        remaining: u32,
    },
    /// Not enough stock left.
    SoldOut,
    /// The buyer would exceed the per-buyer limit.
    LimitExceeded,
    /// Cancel succeeded; `remaining` is the stock after the units returned.
    Cancelled {
        /// Stock after the cancellation.
        remaining: u32,
    },
    /// Confirm succeeded.
    Confirmed,
    /// Refused without any state change (not open, closed, invalid, unknown order, order already final...).
    Rejected,
    /// No reply was received (timeout): the op may have taken effect or not.
    Unknown,
}

/// One operation of a history as seen by its client.
#[derive(Debug, Clone)]
pub struct Event {
    /// What was invoked.
    pub op: Op,
    /// When it was invoked.
    pub invoke: u64,
    /// When the reply arrived; `None` exactly when `ret` is [`Ret::Unknown`].
    pub complete: Option<u64>,
    /// The recorded result.
    pub ret: Ret,
}

/// Why a history is not linearizable (or could not be decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Human-readable explanation naming the offending events.
    pub reason: String,
}

/// Ok(order of event indices) when linearizable (ops with Unknown results that were judged not to have taken effect are omitted).
pub fn check(spec: &SaleSpec, history: &[Event]) -> Result<Vec<usize>, Violation> {
    check_with_budget(spec, history, STATE_BUDGET)
}

/// Maximum number of search states explored before giving up.
const STATE_BUDGET: u64 = 50_000_000;
/// Maximum number of memoized configurations (16 bytes each) kept in memory.
const MEMO_CAP: usize = 1 << 21;
/// Largest stock for which per-level crossing balances are tracked.
const LEVEL_CAP: usize = 1 << 16;
const HEAD: usize = 0;

fn check_with_budget(
    spec: &SaleSpec,
    history: &[Event],
    budget: u64,
) -> Result<Vec<usize>, Violation> {
    precheck(spec, history)?;
    Search::new(*spec, history).run(budget)
}

fn violation<T>(reason: String) -> Result<T, Violation> {
    Err(Violation { reason })
}

/// Cheap, history-wide necessary conditions, reported with a specific reason.
fn precheck(spec: &SaleSpec, h: &[Event]) -> Result<(), Violation> {
    let mut first_by_pair: HashMap<(&str, &str), usize> = HashMap::new();
    let mut accepted: HashMap<&str, (usize, u32)> = HashMap::new();
    for (i, ev) in h.iter().enumerate() {
        match (ev.complete, &ev.ret) {
            (None, Ret::Unknown) => {}
            (None, _) | (Some(_), Ret::Unknown) => {
                return violation(format!(
                    "malformed event #{i}: completion {:?} does not fit result {:?}",
                    ev.complete, ev.ret
                ));
            }
            (Some(c), _) if c < ev.invoke => {
                return violation(format!(
                    "malformed event #{i}: completes at {c}, before its invocation at {}",
                    ev.invoke
                ));
            }
            _ => {}
        }
        let shape_ok = matches!(
            (&ev.op, &ev.ret),
            (_, Ret::Unknown | Ret::Rejected)
                | (
                    Op::Reserve { .. },
                    Ret::Accepted { .. } | Ret::SoldOut | Ret::LimitExceeded
                )
                | (Op::Cancel { .. }, Ret::Cancelled { .. })
                | (Op::Confirm { .. }, Ret::Confirmed)
        );
        if !shape_ok {
            return violation(format!(
                "event #{i}: {:?} cannot return {:?}",
                ev.op, ev.ret
            ));
        }
        let Op::Reserve { buyer, qty, key } = &ev.op else {
            continue;
        };
        if matches!(ev.ret, Ret::Unknown | Ret::Rejected) {
            continue;
        }
        match first_by_pair.entry((buyer, key)) {
            Entry::Occupied(o) if h[*o.get()].ret != ev.ret => {
                let j = *o.get();
                return violation(format!(
                    "idempotency violated: buyer {buyer:?} with key {key:?} got {:?} (event #{j}) and then {:?} (event #{i})",
                    h[j].ret, ev.ret
                ));
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(v) => {
                v.insert(i);
            }
        }
        let Ret::Accepted {
            order_id,
            remaining,
        } = &ev.ret
        else {
            continue;
        };
        if *qty > spec.per_buyer_limit {
            return violation(format!(
                "event #{i}: accepted {qty} units for buyer {buyer:?}, above the per-buyer limit of {}",
                spec.per_buyer_limit
            ));
        }
        if u64::from(*remaining) + u64::from(*qty) > u64::from(spec.allotted) {
            return violation(format!(
                "event #{i}: accepted {qty} units leaving {remaining}, but only {} were allotted",
                spec.allotted
            ));
        }
        match accepted.entry(order_id) {
            Entry::Occupied(o) => {
                let j = o.get().0;
                if h[j].op != ev.op {
                    return violation(format!(
                        "order id {order_id:?} accepted for two different reservations (events #{j} and #{i})"
                    ));
                }
            }
            Entry::Vacant(v) => {
                v.insert((i, *qty));
            }
        }
    }
    let mut finalized: HashMap<&str, usize> = HashMap::new();
    let mut returnable: HashSet<&str> = HashSet::new();
    for (i, ev) in h.iter().enumerate() {
        let (Op::Cancel { order_id } | Op::Confirm { order_id }) = &ev.op else {
            continue;
        };
        let is_cancel = matches!(ev.op, Op::Cancel { .. });
        if is_cancel
            && matches!(ev.ret, Ret::Cancelled { .. } | Ret::Unknown)
            && accepted.contains_key(&**order_id)
        {
            returnable.insert(order_id);
        }
        if !matches!(ev.ret, Ret::Cancelled { .. } | Ret::Confirmed) {
            continue;
        }
        if !accepted.contains_key(&**order_id) {
            return violation(format!(
                "event #{i}: {:?} returned {:?} for order {order_id:?}, which no Reserve ever returned as Accepted",
                ev.op, ev.ret
            ));
        }
        if let Ret::Cancelled { remaining } = ev.ret {
            let qty = accepted[&**order_id].1;
            if remaining < qty || remaining > spec.allotted {
                return violation(format!(
                    "event #{i}: cancelling order {order_id:?} ({qty} units) cannot leave {remaining} in stock with {} allotted",
                    spec.allotted
                ));
            }
        }
        if let Some(j) = finalized.insert(order_id, i) {
            return violation(format!(
                "order {order_id:?} left the Reserved state twice (events #{j} and #{i})"
            ));
        }
    }
    let sold: u64 = accepted.values().map(|&(_, q)| u64::from(q)).sum();
    let back: u64 = returnable.iter().map(|o| u64::from(accepted[o].1)).sum();
    if sold > u64::from(spec.allotted) + back {
        return violation(format!(
            "oversell: {sold} units accepted across {} orders, but only {} were allotted and cancels can return at most {back}",
            accepted.len(),
            spec.allotted
        ));
    }
    Ok(())
}
