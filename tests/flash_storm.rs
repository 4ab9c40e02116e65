//! 2,000 buyers over WebSocket against 100 units at the reveal: exactly the stock is sold,
//! limits hold, retries are idempotent, and the recorded history is linearizable.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use common::{Client, TestServer, test_config};
use lockstep_load::linearizability::{Event, Op, Ret, SaleSpec, check};
use lockstep_protocol::{OrderOutcome, ServerMsg};
use serde_json::json;

const BUYERS: usize = 2_000;
const UNITS: u32 = 100;
const LIMIT: u32 = 2;

struct Outcome {
    events: Vec<Event>,
    reveal_at: u64,
    retry_mismatch: bool,
}

async fn order(
    client: &mut Client,
    sale: &str,
    qty: u32,
    key: &str,
    id: u64,
    start: Instant,
    buyer: &str,
) -> Event {
    let invoke = start.elapsed().as_nanos() as u64;
    client
        .send(json!({"type":"order","sale_id":sale,"qty":qty,"key":key,"id":id}))
        .await;
    let (outcome, order_id, remaining) = client
        .recv_until(|m| match m {
            ServerMsg::OrderResult {
                id: Some(i),
                outcome,
                order_id,
                remaining,
                ..
            } if *i == id => Some((*outcome, order_id.clone(), *remaining)),
            _ => None,
        })
        .await;
    let complete = start.elapsed().as_nanos() as u64;
    let ret = match outcome {
        OrderOutcome::Accepted => Ret::Accepted {
            order_id: order_id.unwrap(),
            remaining: remaining.unwrap(),
        },
        OrderOutcome::SoldOut => Ret::SoldOut,
        OrderOutcome::LimitExceeded => Ret::LimitExceeded,
        other => panic!("unexpected outcome {other:?} for {buyer}"),
    };
    Event {
        op: Op::Reserve {
            buyer: buyer.into(),
            qty,
            key: key.into(),
        },
        invoke,
        complete: Some(complete),
        ret,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_buyers_one_hundred_units() {
    let mut cfg = test_config();
    // Far below the default, so the burst at the reveal is handed to the store in many
    // parts while it is decided: the history must stay linearizable across them.
    cfg.sales.max_writes_per_flush = 7;
    let server = Arc::new(TestServer::start(cfg));
    let sale = server
        .create_sale(
            "m1",
            "storm",
            UNITS,
            UNITS,
            json!({"per_buyer_limit": LIMIT}),
        )
        .await;
    let mut anchor = server.open_room("storm").await;
    let joined = Arc::new(tokio::sync::Barrier::new(BUYERS + 1));
    let connect_slots = Arc::new(tokio::sync::Semaphore::new(64));
    let start = Instant::now();
    let buyers: Vec<_> = (0..BUYERS)
        .map(|i| {
            let (server, sale, joined, slots) = (
                server.clone(),
                sale.clone(),
                joined.clone(),
                connect_slots.clone(),
            );
            tokio::spawn(async move {
                let buyer = format!("b{i}");
                let mut client = {
                    let _slot = slots.acquire().await.unwrap();
                    server.join_viewer("storm", Some(&buyer)).await.0
                };
                joined.wait().await;
                let reveal_at = client
                    .recv_until(|m| match m {
                        ServerMsg::Link { link } => Some(link.reveal_at),
                        _ => None,
                    })
                    .await;
                let now = lockstep_actors::clock::now_ms();
                tokio::time::sleep(std::time::Duration::from_millis(
                    reveal_at.saturating_sub(now) + 1,
                ))
                .await;
                let mut events = Vec::new();
                let qty = if i % 50 == 1 { 3 } else { 1 };
                events.push(order(&mut client, &sale, qty, "a", 1, start, &buyer).await);
                if i % 10 == 0 {
                    events.push(order(&mut client, &sale, 1, "b", 2, start, &buyer).await);
                }
                let mut retry_mismatch = false;
                if i % 25 == 2 {
                    let again = order(&mut client, &sale, qty, "a", 3, start, &buyer).await;
                    retry_mismatch = again.ret != events[0].ret;
                    events.push(again);
                }
                Outcome {
                    events,
                    reveal_at,
                    retry_mismatch,
                }
            })
        })
        .collect();
    joined.wait().await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 1_000).await;

    let mut history = Vec::new();
    let mut accepted_by_buyer: HashMap<String, u32> = HashMap::new();
    let mut order_ids = HashSet::new();
    for b in buyers {
        let outcome = b.await.unwrap();
        assert_eq!(
            outcome.reveal_at, reveal_at,
            "every buyer saw the same reveal time"
        );
        assert!(
            !outcome.retry_mismatch,
            "a retry with the same key returned a different result"
        );
        for e in &outcome.events {
            if let (Op::Reserve { buyer, qty, key }, Ret::Accepted { order_id, .. }) =
                (&e.op, &e.ret)
            {
                // Retries repeat an order id; new keys never do.
                if order_ids.insert((order_id.clone(), buyer.clone(), key.clone())) {
                    *accepted_by_buyer.entry(buyer.clone()).or_default() += qty;
                }
            }
        }
        history.extend(outcome.events);
    }
    let sold: u32 = accepted_by_buyer.values().sum();
    assert_eq!(sold, UNITS, "exactly the stock is sold");
    let distinct_ids: HashSet<_> = order_ids.iter().map(|(id, _, _)| id).collect();
    assert_eq!(
        distinct_ids.len(),
        order_ids.len(),
        "no order id given twice"
    );
    assert!(
        accepted_by_buyer.values().all(|&q| q <= LIMIT),
        "per-buyer limit held"
    );
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(
        (
            view["summary"]["reserved"].as_u64(),
            view["summary"]["remaining"].as_u64()
        ),
        (Some(100), Some(0))
    );
    let (_, orders) = server
        .merchant_get("m1", &format!("/api/v1/orders?sale_id={sale}&limit=500"))
        .await;
    assert_eq!(
        orders["orders"].as_array().unwrap().len(),
        distinct_ids.len(),
        "every accepted order is stored"
    );
    check(
        &SaleSpec {
            allotted: UNITS,
            per_buyer_limit: LIMIT,
        },
        &history,
    )
    .unwrap_or_else(|v| panic!("history not linearizable: {}", v.reason));
}
