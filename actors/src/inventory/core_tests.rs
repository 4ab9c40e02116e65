//! The inventory core against a deliberately simple reference model (linear scans, no
//! indexes), under random sequences of reserve / confirm / cancel / expiry / close.

use lockstep_protocol::OrderOutcome;
use proptest::prelude::*;

use super::core::{CoreLimits, Effect, InventoryCore, Reply, ReserveReply};
use super::model::{OrderState, SaleRules};

const TTL: u64 = 1_000;

fn rules(allotted: u32, limit: u32, fair_window_ms: u64) -> SaleRules {
    SaleRules {
        sale_id: "s1".into(),
        allotted,
        per_buyer_limit: limit,
        reservation_ttl_ms: TTL,
        fair_window_ms,
        end_at: None,
    }
}

fn replies(core: &mut InventoryCore) -> Vec<(u64, Reply)> {
    core.drain_effects()
        .filter_map(|e| match e {
            Effect::Reply(req, r) => Some((req, r)),
            _ => None,
        })
        .collect()
}

fn reserve_reply(core: &mut InventoryCore) -> ReserveReply {
    match replies(core).pop() {
        Some((_, Reply::Reserve(r))) => r,
        other => panic!("expected a reserve reply, got {other:?}"),
    }
}

/// The reference: a list of orders, everything recomputed by scanning.
#[derive(Debug, Default)]
struct Reference {
    allotted: u32,
    limit: u32,
    released: u32,
    ended: bool,
    orders: Vec<(String, String, u32, OrderState, u64)>,
    keys: Vec<(String, String, u32, OrderOutcome, Option<String>)>,
    max_orders: u32,
    max_refused: usize,
}

impl Reference {
    fn held(&self) -> u32 {
        self.orders
            .iter()
            .filter(|o| o.3.is_active())
            .map(|o| o.2)
            .sum()
    }
    fn remaining(&self) -> u32 {
        if self.ended {
            0
        } else {
            self.allotted - self.held() - self.released
        }
    }
    fn expire(&mut self, now: u64) {
        let ended = self.ended;
        let mut freed = 0;
        for o in &mut self.orders {
            if o.3 == OrderState::Reserved && o.4 <= now {
                o.3 = OrderState::Expired;
                freed += o.2;
            }
        }
        if ended {
            self.released += freed;
        }
    }
    fn reserve(
        &mut self,
        now: u64,
        buyer: &str,
        qty: u32,
        key: &str,
    ) -> (OrderOutcome, Option<String>) {
        if qty == 0 {
            return (OrderOutcome::Invalid, None);
        }
        if let Some(k) = self.keys.iter().find(|k| k.0 == buyer && k.1 == key) {
            return if k.2 == qty {
                (k.3, k.4.clone())
            } else {
                (OrderOutcome::Invalid, None)
            };
        }
        if self.ended {
            return (OrderOutcome::Closed, None);
        }
        let active: u32 = self
            .orders
            .iter()
            .filter(|o| o.1 == buyer && o.3.is_active())
            .map(|o| o.2)
            .sum();
        let created = self.orders.iter().filter(|o| o.1 == buyer).count() as u32;
        let result = if created >= self.max_orders
            || u64::from(active) + u64::from(qty) > u64::from(self.limit)
        {
            (OrderOutcome::LimitExceeded, None)
        } else if self.remaining() < qty {
            (OrderOutcome::SoldOut, None)
        } else {
            let id = format!("s1-{}", self.orders.len() + 1);
            self.orders.push((
                id.clone(),
                buyer.to_owned(),
                qty,
                OrderState::Reserved,
                now + TTL,
            ));
            (OrderOutcome::Accepted, Some(id))
        };
        if result.0 != OrderOutcome::Accepted {
            // Refused keys: a FIFO of at most `max_refused`.
            if self.max_refused == 0 {
                return result;
            }
            let refused: Vec<usize> = (0..self.keys.len())
                .filter(|&i| self.keys[i].3 != OrderOutcome::Accepted)
                .collect();
            if refused.len() >= self.max_refused {
                self.keys.remove(refused[0]);
            }
        }
        self.keys.push((
            buyer.to_owned(),
            key.to_owned(),
            qty,
            result.0,
            result.1.clone(),
        ));
        result
    }
    fn finish(&mut self, idx: usize, to: OrderState, merchant: bool) -> bool {
        let Some(o) = self.orders.get_mut(idx) else {
            return false;
        };
        let ok = o.3 == OrderState::Reserved
            || (merchant && o.3 == OrderState::Confirmed && to == OrderState::Cancelled);
        if ok {
            let qty = o.2;
            o.3 = to;
            if to == OrderState::Cancelled && self.ended {
                self.released += qty;
            }
        }
        ok
    }
}

#[derive(Debug, Clone)]
enum Op {
    Reserve { buyer: u8, qty: u32, key: u8 },
    Confirm(usize),
    Cancel { order: usize, merchant: bool },
    Advance(u64),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u32..4, 0u8..6).prop_map(|(buyer, qty, key)| Op::Reserve { buyer, qty, key }),
        1 => (0u8..4, prop_oneof![Just(u32::MAX), Just(u32::MAX - 1), Just(u32::MAX / 2 + 1)], 0u8..6)
            .prop_map(|(buyer, qty, key)| Op::Reserve { buyer, qty, key }),
        2 => (0usize..12).prop_map(Op::Confirm),
        2 => (0usize..12, any::<bool>()).prop_map(|(order, merchant)| Op::Cancel { order, merchant }),
        2 => (1u64..600).prop_map(Op::Advance),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every answer and every count matches the reference, and units are conserved:
    /// remaining + reserved + sold + released == allotted at every step.
    #[test]
    fn matches_reference_model(
        allotted in 1u32..12,
        limit in prop_oneof![1u32..5, Just(u32::MAX)],
        max_orders in 1u32..8,
        max_refused in 0usize..6,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let limits = CoreLimits { max_refused_keys: max_refused, max_orders_per_buyer: max_orders };
        let mut core = InventoryCore::new(rules(allotted, limit, 0)).with_limits(limits);
        core.reveal(0, 0, 7);
        replies(&mut core);
        let mut reference = Reference { allotted, limit, max_orders, max_refused, ..Default::default() };
        let mut now = 0u64;
        for (req, op) in ops.into_iter().enumerate() {
            let req = req as u64 + 1;
            match op {
                Op::Reserve { buyer, qty, key } => {
                    let (buyer, key) = (format!("b{buyer}"), format!("k{key}"));
                    core.reserve(now, req, &buyer, qty, &key);
                    let got = reserve_reply(&mut core);
                    reference.expire(now);
                    let want = reference.reserve(now, &buyer, qty, &key);
                    prop_assert_eq!((got.outcome, got.order_id.clone()), want);
                }
                Op::Confirm(i) => {
                    let id = format!("s1-{}", i + 1);
                    core.confirm(now, req, &id);
                    reference.expire(now);
                    let ok = reference.finish(i, OrderState::Confirmed, false);
                    let got = replies(&mut core);
                    prop_assert!(matches!(&got[..], [(_, Reply::Order(r))] if r.is_ok() == ok));
                }
                Op::Cancel { order, merchant } => {
                    let id = format!("s1-{}", order + 1);
                    let owner = reference.orders.get(order).map(|o| o.1.clone()).unwrap_or_default();
                    let by = (!merchant).then_some(owner.as_str());
                    core.cancel(now, req, &id, by);
                    reference.expire(now);
                    let ok = reference.finish(order, OrderState::Cancelled, merchant);
                    let got = replies(&mut core);
                    prop_assert!(matches!(&got[..], [(_, Reply::Order(r))] if r.is_ok() == ok), "{:?}", got);
                }
                Op::Advance(dt) => {
                    now += dt;
                    core.tick(now);
                    replies(&mut core);
                    reference.expire(now);
                }
                Op::Close => {
                    core.close(req);
                    replies(&mut core);
                    reference.expire(now);
                    if !reference.ended {
                        reference.released += reference.remaining();
                        reference.ended = true;
                    }
                }
            }
            let s = core.summary();
            prop_assert_eq!(s.remaining, reference.remaining());
            prop_assert_eq!(s.remaining + s.reserved + s.sold + s.released, allotted);
            prop_assert!(core.refused_keys() <= max_refused);
        }
    }

    /// Rebuilding from the persisted orders gives back the same counts and answers.
    #[test]
    fn restore_rebuilds_the_same_sale(ops in proptest::collection::vec((0u8..4, 1u32..3, 0u8..6), 1..40)) {
        let mut core = InventoryCore::new(rules(10, 3, 0));
        core.reveal(0, 0, 1);
        let mut persisted = std::collections::BTreeMap::new();
        for (i, (buyer, qty, key)) in ops.iter().enumerate() {
            core.reserve(1, i as u64, &format!("b{buyer}"), *qty, &format!("k{key}"));
            for e in core.drain_effects() {
                if let Effect::Persist(super::core::Write::Order(o)) = e {
                    persisted.insert(o.id.clone(), o);
                }
            }
        }
        let restored = InventoryCore::restore(rules(10, 3, 0), core.phase(), 0, persisted.into_values().collect());
        prop_assert_eq!(restored.summary(), core.summary());
    }
}

#[test]
fn orders_before_reveal_are_not_open_and_not_remembered() {
    let mut core = InventoryCore::new(rules(5, 1, 0));
    core.reserve(0, 1, "b", 1, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::NotOpen);
    core.reveal(2, 1_000, 9);
    replies(&mut core);
    core.reserve(999, 3, "b", 1, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::NotOpen);
    core.reserve(1_000, 4, "b", 1, "k");
    assert_eq!(
        reserve_reply(&mut core).outcome,
        OrderOutcome::Accepted,
        "the same key succeeds after the reveal"
    );
}

#[test]
fn idempotent_retry_returns_first_result_even_after_sell_out() {
    let mut core = InventoryCore::new(rules(1, 1, 0));
    core.reveal(0, 0, 1);
    core.reserve(1, 1, "alice", 1, "k1");
    let first = reserve_reply(&mut core);
    core.reserve(2, 2, "bob", 1, "k9");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::SoldOut);
    core.reserve(3, 3, "alice", 1, "k1");
    assert_eq!(reserve_reply(&mut core), first);
    core.reserve(4, 4, "alice", 2, "k1");
    assert_eq!(
        reserve_reply(&mut core).outcome,
        OrderOutcome::Invalid,
        "same key, other qty"
    );
}

#[test]
fn expiry_returns_units() {
    let mut core = InventoryCore::new(rules(1, 1, 0));
    core.reveal(0, 0, 1);
    core.reserve(0, 1, "a", 1, "k");
    assert_eq!(reserve_reply(&mut core).remaining, 0);
    core.tick(TTL - 1);
    assert_eq!(core.remaining(), 0);
    core.tick(TTL);
    assert_eq!(core.remaining(), 1);
    core.reserve(TTL, 2, "b", 1, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Accepted);
}

#[test]
fn fair_window_serves_pooled_requests_in_seeded_random_order() {
    let order_for = |seed: u64| {
        let mut core = InventoryCore::new(rules(3, 1, 100));
        core.reveal(0, 1_000, seed);
        replies(&mut core);
        for i in 0..20u64 {
            core.reserve(1_000 + i, i, &format!("b{i}"), 1, "k");
        }
        assert!(replies(&mut core).is_empty(), "requests in the window wait");
        assert_eq!(core.window_closes_at(), Some(1_100));
        core.reserve(1_100, 99, "late", 1, "k");
        let mut winners: Vec<u64> = replies(&mut core)
            .into_iter()
            .filter(|(_, r)| matches!(r, Reply::Reserve(r) if r.outcome == OrderOutcome::Accepted))
            .map(|(req, _)| req)
            .collect();
        winners.sort_unstable();
        winners
    };
    let a = order_for(1);
    assert_eq!(a.len(), 3);
    assert!(
        !a.contains(&99),
        "a request after the window never beats pooled ones"
    );
    assert_eq!(order_for(1), a, "the recorded seed reproduces the order");
    assert!(
        (2..40).any(|s| order_for(s) != a),
        "arrival order inside the window does not decide"
    );
    assert_ne!(a, vec![0, 1, 2], "not first come first served");
}

#[test]
fn closing_returns_unsold_units_and_later_cancels() {
    let mut core = InventoryCore::new(rules(5, 5, 0));
    core.reveal(0, 0, 1);
    core.reserve(0, 1, "a", 2, "k");
    replies(&mut core);
    core.close(2);
    let writes: Vec<_> = core.drain_effects().collect();
    assert!(writes.contains(&Effect::Persist(super::core::Write::Sale {
        phase: super::model::Phase::Ended,
        released: 3,
        returned: 3
    })));
    core.reserve(1, 3, "b", 1, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Closed);
    core.cancel(2, 4, "s1-1", Some("a"));
    let effects: Vec<_> = core.drain_effects().collect();
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Persist(super::core::Write::Sale {
            returned: 2,
            released: 5,
            ..
        })
    )));
}

#[test]
fn end_time_ends_the_sale_and_returns_unsold_units() {
    let mut core = InventoryCore::new(SaleRules {
        end_at: Some(5_000),
        ..rules(4, 4, 0)
    });
    core.reveal(0, 0, 1);
    // Still reserved at the end time (expires at 5,500): it stays held, the rest returns.
    core.reserve(4_500, 1, "a", 1, "k");
    replies(&mut core);
    core.tick(4_999);
    assert_eq!(core.state(), lockstep_protocol::SaleState::Open);
    core.tick(5_000);
    assert_eq!(core.state(), lockstep_protocol::SaleState::Ended);
    let effects: Vec<_> = core.drain_effects().collect();
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Persist(super::core::Write::Sale { returned: 3, .. })
    )));
    core.reserve(5_001, 2, "b", 1, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Closed);
}

#[test]
fn a_huge_quantity_cannot_wrap_past_the_per_buyer_limit() {
    let mut core = InventoryCore::new(rules(10, 2, 0));
    core.reveal(0, 0, 1);
    core.reserve(0, 1, "alice", 1, "k1");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Accepted);
    // 1 + u32::MAX wraps to 0 in unchecked u32 arithmetic, which is under the limit.
    core.reserve(0, 2, "alice", u32::MAX, "k2");
    assert_eq!(
        reserve_reply(&mut core).outcome,
        OrderOutcome::LimitExceeded
    );
    assert_eq!(core.summary().reserved, 1);
}

#[test]
fn reserve_cancel_loops_stop_at_the_orders_cap() {
    let limits = CoreLimits {
        max_orders_per_buyer: 3,
        ..CoreLimits::default()
    };
    let mut core = InventoryCore::new(rules(10, 1, 0)).with_limits(limits);
    core.reveal(0, 0, 1);
    for i in 0..3 {
        core.reserve(0, i, "looper", 1, &format!("k{i}"));
        let reply = reserve_reply(&mut core);
        assert_eq!(reply.outcome, OrderOutcome::Accepted);
        core.cancel(0, 100 + i, &reply.order_id.unwrap(), Some("looper"));
        replies(&mut core);
    }
    core.reserve(0, 9, "looper", 1, "k9");
    assert_eq!(
        reserve_reply(&mut core).outcome,
        OrderOutcome::LimitExceeded
    );
    assert_eq!(core.summary().orders, 3, "no fourth order was created");
    core.reserve(0, 10, "other", 1, "k0");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Accepted);
}

#[test]
fn refused_keys_are_forgotten_oldest_first() {
    let limits = CoreLimits {
        max_refused_keys: 2,
        ..CoreLimits::default()
    };
    let mut core = InventoryCore::new(rules(1, 1, 0)).with_limits(limits);
    core.reveal(0, 0, 1);
    core.reserve(0, 1, "winner", 1, "w");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Accepted);
    for (i, buyer) in ["a", "b", "c"].iter().enumerate() {
        core.reserve(0, 2 + i as u64, buyer, 1, "k");
        assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::SoldOut);
    }
    assert_eq!(core.refused_keys(), 2);
    // `a` was forgotten: its key is decided again (a different qty is no longer invalid).
    core.reserve(0, 9, "a", 2, "k");
    assert_eq!(
        reserve_reply(&mut core).outcome,
        OrderOutcome::LimitExceeded
    );
    // `c` is remembered: a different qty for its key is still invalid.
    core.reserve(0, 10, "c", 2, "k");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Invalid);
    // The accepted key is never forgotten.
    core.reserve(0, 11, "winner", 1, "w");
    assert_eq!(reserve_reply(&mut core).outcome, OrderOutcome::Accepted);
}
