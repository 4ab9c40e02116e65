//! Tests of the checker: valid histories pass (including a 2,000-buyer storm), and
//! deliberately broken ones are rejected with a reason.

use super::*;

const SPEC: SaleSpec = SaleSpec {
    allotted: 100,
    per_buyer_limit: 1,
};

fn reserve(buyer: &str, key: &str) -> Op {
    Op::Reserve {
        buyer: buyer.into(),
        qty: 1,
        key: key.into(),
    }
}
fn cancel(order_id: &str) -> Op {
    Op::Cancel {
        order_id: order_id.into(),
    }
}
fn confirm(order_id: &str) -> Op {
    Op::Confirm {
        order_id: order_id.into(),
    }
}
fn accepted(order_id: &str, remaining: u32) -> Ret {
    Ret::Accepted {
        order_id: order_id.into(),
        remaining,
    }
}
fn ev(op: Op, invoke: u64, complete: u64, ret: Ret) -> Event {
    Event {
        op,
        invoke,
        complete: Some(complete),
        ret,
    }
}
fn timeout(op: Op, invoke: u64) -> Event {
    Event {
        op,
        invoke,
        complete: None,
        ret: Ret::Unknown,
    }
}
/// Lays out `ops` one after another in real time.
fn sequential(ops: Vec<(Op, Ret)>) -> Vec<Event> {
    (0u64..)
        .zip(ops)
        .map(|(t, (op, ret))| ev(op, 10 * t, 10 * t + 5, ret))
        .collect()
}
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let (mut v, mut s) = ((0..n).collect::<Vec<_>>(), seed);
    for i in (1..n).rev() {
        v.swap(i, lcg(&mut s) as usize % (i + 1));
    }
    v
}
fn rejected_with(spec: &SaleSpec, h: &[Event], needle: &str) -> String {
    let reason = check(spec, h).expect_err("history must be rejected").reason;
    assert!(
        reason.contains(needle),
        "reason {reason:?} should mention {needle:?}"
    );
    reason
}

/// 2,000 single-unit reserves, all in flight at once, against 100 units.
fn crowd(buyers: usize, seed: u64) -> Vec<Event> {
    let winners = shuffled(buyers, seed);
    let finish = shuffled(buyers, seed ^ 0xABCD);
    let mut h: Vec<Event> = (0..buyers)
        .map(|i| {
            ev(
                reserve(&format!("b{i}"), &format!("k{i}")),
                i as u64,
                0,
                Ret::SoldOut,
            )
        })
        .collect();
    for (rank, &i) in finish.iter().enumerate() {
        h[i].complete = Some(1_000_000 + rank as u64);
    }
    for (k, &i) in winners.iter().take(100).enumerate() {
        h[i].ret = accepted(&format!("o{i}"), 99 - k as u32);
    }
    h
}

#[test]
fn sequential_history_passes_in_recorded_order() {
    let spec = SaleSpec {
        allotted: 2,
        per_buyer_limit: 1,
    };
    let h = sequential(vec![
        (reserve("ann", "a1"), accepted("o1", 1)),
        (reserve("bob", "b1"), accepted("o2", 0)),
        (reserve("cat", "c1"), Ret::SoldOut),
        (reserve("ann", "a2"), Ret::LimitExceeded),
        (cancel("o1"), Ret::Cancelled { remaining: 1 }),
        (reserve("cat", "c2"), accepted("o3", 0)),
        (confirm("o2"), Ret::Confirmed),
        (confirm("o2"), Ret::Rejected),
        (cancel("o2"), Ret::Rejected),
        (reserve("dan", "d1"), Ret::Rejected),
    ]);
    assert_eq!(check(&spec, &h), Ok((0..h.len()).collect()));
}

#[test]
fn two_thousand_concurrent_buyers_pass_quickly() {
    let h = crowd(2_000, 7);
    let started = std::time::Instant::now();
    let order = check(&SPEC, &h).expect("linearizable");
    eprintln!(
        "2,000-op concurrent history checked in {:?}",
        started.elapsed()
    );
    assert_eq!(order.len(), 2_000);
    let stock: Vec<u32> = order[..100]
        .iter()
        .map(|&i| match h[i].ret {
            Ret::Accepted { remaining, .. } => remaining,
            _ => panic!("sold out before the stock ran out"),
        })
        .collect();
    assert_eq!(stock, (0..100).rev().collect::<Vec<_>>());
}

#[test]
fn concurrent_history_with_cancels_and_retries_passes() {
    // Start from the crowd, then cancel 20 winners and resell the units to
    // retries (same key) of losing buyers' second attempts, all concurrently.
    let mut h = crowd(2_000, 11);
    let winners: Vec<usize> = (0..h.len())
        .filter(|&i| matches!(h[i].ret, Ret::Accepted { .. }))
        .collect();
    let mut next_remaining = 0;
    for (n, &w) in winners.iter().take(20).enumerate() {
        let Ret::Accepted {
            order_id,
            remaining,
        } = h[w].ret.clone()
        else {
            unreachable!()
        };
        next_remaining = next_remaining.max(remaining);
        // Cancel happens after the winner's reserve; it returns one unit.
        let t = 2_000_000 + 10 * n as u64;
        h.push(ev(
            cancel(&order_id),
            t,
            t + 1,
            Ret::Cancelled { remaining: 1 },
        ));
        let (buyer, key) = (format!("late{n}"), format!("lk{n}"));
        h.push(ev(
            reserve(&buyer, &key),
            t + 2,
            t + 3,
            accepted(&format!("re{n}"), 0),
        ));
        h.push(ev(
            reserve(&buyer, &key),
            t + 2,
            t + 4,
            accepted(&format!("re{n}"), 0),
        ));
    }
    assert!(next_remaining <= 99);
    let order = check(&SPEC, &h).expect("linearizable");
    assert_eq!(order.len(), h.len());
}

#[test]
fn oversell_is_rejected() {
    let mut h = crowd(150, 3);
    let loser = h.iter().position(|e| e.ret == Ret::SoldOut).unwrap();
    h[loser].ret = accepted("extra", 0);
    rejected_with(&SPEC, &h, "oversell");
}

#[test]
fn stale_sold_out_is_rejected() {
    let spec = SaleSpec {
        allotted: 1,
        per_buyer_limit: 1,
    };
    let h = vec![
        ev(reserve("ann", "a"), 0, 1, Ret::SoldOut),
        ev(reserve("bob", "b"), 2, 3, accepted("o1", 0)),
    ];
    rejected_with(&spec, &h, "op #0");
    // Overlapping in time, the same results are fine.
    let h = vec![
        ev(reserve("ann", "a"), 0, 3, Ret::SoldOut),
        ev(reserve("bob", "b"), 1, 2, accepted("o1", 0)),
    ];
    assert_eq!(check(&spec, &h), Ok(vec![1, 0]));
}

#[test]
fn duplicate_or_wrong_remaining_is_rejected() {
    let h = vec![
        ev(reserve("ann", "a"), 0, 10, accepted("o1", 99)),
        ev(reserve("bob", "b"), 1, 11, accepted("o2", 99)),
    ];
    rejected_with(&SPEC, &h, "cannot be chained");
    let h = sequential(vec![
        (reserve("ann", "a"), accepted("o1", 99)),
        (reserve("bob", "b"), accepted("o2", 97)),
    ]);
    rejected_with(&SPEC, &h, "remaining: 98");
}

#[test]
fn per_buyer_limit_violation_is_rejected() {
    let h = vec![
        ev(reserve("ann", "a1"), 0, 10, accepted("o1", 99)),
        ev(reserve("ann", "a2"), 1, 11, accepted("o2", 98)),
    ];
    rejected_with(&SPEC, &h, "(1, limit 1) can no longer drop");
}

#[test]
fn cancel_of_unknown_order_is_rejected() {
    let h = sequential(vec![
        (reserve("ann", "a"), accepted("o1", 99)),
        (cancel("o9"), Ret::Cancelled { remaining: 100 }),
    ]);
    rejected_with(&SPEC, &h, "no Reserve ever returned");
}

#[test]
fn idempotency_violation_is_rejected() {
    let h = sequential(vec![
        (reserve("ann", "a"), accepted("o1", 99)),
        (reserve("ann", "a"), accepted("o2", 98)),
    ]);
    rejected_with(&SPEC, &h, "idempotency violated");
}

#[test]
fn timed_out_reserve_may_or_may_not_take_effect() {
    let took_effect = vec![
        ev(reserve("ann", "a"), 0, 1, accepted("o1", 99)),
        timeout(reserve("bob", "b"), 2),
        ev(reserve("cat", "c"), 3, 4, accepted("o3", 97)),
    ];
    assert_eq!(check(&SPEC, &took_effect), Ok(vec![0, 1, 2]));
    let no_effect = vec![
        ev(reserve("ann", "a"), 0, 1, accepted("o1", 99)),
        timeout(reserve("bob", "b"), 2),
        ev(reserve("cat", "c"), 3, 4, accepted("o3", 98)),
    ];
    assert_eq!(check(&SPEC, &no_effect), Ok(vec![0, 2]));
    // A timeout cannot take effect before it was invoked.
    let too_early = vec![
        ev(reserve("ann", "a"), 0, 1, accepted("o1", 98)),
        timeout(reserve("bob", "b"), 2),
    ];
    rejected_with(&SPEC, &too_early, "op #0");
}

#[test]
fn idempotent_retry_replays_result_even_when_sold_out() {
    let spec = SaleSpec {
        allotted: 1,
        per_buyer_limit: 1,
    };
    let h = sequential(vec![
        (reserve("ann", "a"), accepted("o1", 0)),
        (reserve("bob", "b"), Ret::SoldOut),
        (reserve("ann", "a"), accepted("o1", 0)),
    ]);
    assert_eq!(check(&spec, &h), Ok(vec![0, 1, 2]));
    // The first attempt timed out; the retry reveals that it took effect.
    let h = vec![
        timeout(reserve("ann", "a"), 0),
        ev(reserve("bob", "b"), 5, 6, Ret::SoldOut),
        ev(reserve("ann", "a"), 7, 8, accepted("o1", 0)),
    ];
    assert_eq!(check(&spec, &h), Ok(vec![0, 1, 2]));
}

#[test]
fn cancelled_stock_is_resold() {
    let spec = SaleSpec {
        allotted: 1,
        per_buyer_limit: 1,
    };
    let h = sequential(vec![
        (reserve("ann", "a"), accepted("o1", 0)),
        (reserve("bob", "b1"), Ret::SoldOut),
        (cancel("o1"), Ret::Cancelled { remaining: 1 }),
        (reserve("bob", "b2"), accepted("o2", 0)),
        (cancel("o1"), Ret::Rejected),
        (confirm("o2"), Ret::Confirmed),
    ]);
    assert_eq!(check(&spec, &h), Ok((0..6).collect()));
    // Resale overlapping the cancel must be ordered after it.
    let h = vec![
        ev(reserve("ann", "a"), 0, 1, accepted("o1", 0)),
        ev(reserve("bob", "b"), 2, 9, accepted("o2", 0)),
        ev(cancel("o1"), 3, 4, Ret::Cancelled { remaining: 1 }),
    ];
    assert_eq!(check(&spec, &h), Ok(vec![0, 2, 1]));
}

#[test]
fn search_budget_is_enforced() {
    let h = crowd(300, 5);
    let err = check_with_budget(&SPEC, &h, 10).expect_err("budget of 10 states is too small");
    assert!(err.reason.contains("budget exhausted"), "{}", err.reason);
}
