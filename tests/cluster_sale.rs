//! A flash sale across the nodes of a cluster, against a real Redis: the sale is created
//! through one node's merchant API, the room runs on another, buyers order through all
//! three — one buyer from two nodes at once, retries crossing nodes. Exactly the stock is
//! sold, limits hold across nodes, retries are idempotent across nodes, every accepted
//! order is in the shared store, and the recorded history is linearizable.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use common::redis::RedisServer;
use common::{Client, TestServer};
use lockstep_load::linearizability::{Event, Op, Ret, SaleSpec, check};
use lockstep_protocol::{OrderOutcome, ServerMsg};
use serde_json::json;

const BUYERS: usize = 300;
const UNITS: u32 = 50;
const LIMIT: u32 = 2;

fn nodes(redis: &RedisServer) -> Vec<Arc<TestServer>> {
    redis.three_nodes().into_iter().map(Arc::new).collect()
}

async fn order(
    client: &mut Client,
    sale: &str,
    key: &str,
    id: u64,
    start: Instant,
    buyer: &str,
) -> Event {
    let invoke = start.elapsed().as_nanos() as u64;
    client
        .send(json!({"type":"order","sale_id":sale,"qty":1,"key":key,"id":id}))
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
            ServerMsg::Error {
                id: Some(i),
                message,
                ..
            } if *i == id => panic!("order {id} of {buyer} refused: {message}"),
            _ => None,
        })
        .await;
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
            qty: 1,
            key: key.into(),
        },
        invoke,
        complete: Some(start.elapsed().as_nanos() as u64),
        ret,
    }
}

async fn wait_for_reveal(client: &mut Client) -> u64 {
    let reveal_at = client
        .recv_until(|m| match m {
            ServerMsg::Link { link } => Some(link.reveal_at),
            _ => None,
        })
        .await;
    let wait = reveal_at.saturating_sub(lockstep_actors::clock::now_ms()) + 1;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    reveal_at
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    buyers_on_three_nodes_buy_exactly_the_stock_linearizably => buyers_on_three_nodes_buy_exactly_the_stock_linearizably
);

async fn buyers_on_three_nodes_buy_exactly_the_stock_linearizably(redis: RedisServer) {
    let nodes = nodes(&redis);
    let mut anchor = nodes[0].open_room("sale").await;
    // The merchant works through another node than the room's.
    let sale = nodes[1]
        .create_sale(
            "m1",
            "sale",
            UNITS,
            UNITS,
            json!({"per_buyer_limit": LIMIT}),
        )
        .await;
    let joined = Arc::new(tokio::sync::Barrier::new(BUYERS + 2));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..BUYERS {
        let (node, sale, joined) = (nodes[i % 3].clone(), sale.clone(), joined.clone());
        tasks.push(tokio::spawn(async move {
            let buyer = format!("b{i}");
            let mut client = node.join_viewer("sale", Some(&buyer)).await.0;
            joined.wait().await;
            wait_for_reveal(&mut client).await;
            let mut events = vec![order(&mut client, &sale, "a", 1, start, &buyer).await];
            if i % 5 == 0 {
                events.push(order(&mut client, &sale, "b", 2, start, &buyer).await);
            }
            events
        }));
    }
    // One buyer with sockets on two nodes: the limit holds across them, and a retry of
    // the same key through the other node gets the first answer.
    let (dual_b, dual_c) = (nodes[1].clone(), nodes[2].clone());
    let (sale_d, joined_d) = (sale.clone(), joined.clone());
    let dual = tokio::spawn(async move {
        let mut on_b = dual_b.join_viewer("sale", Some("dual")).await.0;
        let mut on_c = dual_c.join_viewer("sale", Some("dual")).await.0;
        joined_d.wait().await;
        wait_for_reveal(&mut on_b).await;
        let mut events = Vec::new();
        for (n, key) in ["k1", "k2", "k3"].iter().enumerate() {
            let client = if n % 2 == 0 { &mut on_b } else { &mut on_c };
            events.push(order(client, &sale_d, key, 10 + n as u64, start, "dual").await);
        }
        let retry = order(&mut on_c, &sale_d, "k1", 20, start, "dual").await;
        assert_eq!(
            retry.ret, events[0].ret,
            "a retry through another node gets the first answer"
        );
        events.push(retry);
        events
    });
    joined.wait().await;
    TestServer::drop_link(&mut anchor, &sale, 500).await;

    let mut history = Vec::new();
    for task in tasks {
        history.extend(task.await.unwrap());
    }
    history.extend(dual.await.unwrap());
    let mut accepted: HashMap<String, u32> = HashMap::new();
    let mut ids = HashSet::new();
    for e in &history {
        if let (Op::Reserve { buyer, key, .. }, Ret::Accepted { order_id, .. }) = (&e.op, &e.ret)
            && ids.insert((order_id.clone(), key.clone()))
        {
            *accepted.entry(buyer.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        accepted.values().sum::<u32>(),
        UNITS,
        "exactly the stock is sold"
    );
    assert!(
        accepted.values().all(|&n| n <= LIMIT),
        "limits held across nodes"
    );
    // Every accepted order is in the shared store, seen through a third node.
    let (_, orders) = nodes[2]
        .merchant_get("m1", &format!("/api/v1/orders?sale_id={sale}&limit=500"))
        .await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), UNITS as usize);
    let (_, view) = nodes[2]
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(view["summary"]["remaining"], 0, "{view}");
    check(
        &SaleSpec {
            allotted: UNITS,
            per_buyer_limit: LIMIT,
        },
        &history,
    )
    .unwrap_or_else(|v| panic!("history not linearizable: {}", v.reason));
}
